"""Where a study or a run trains, as ``run`` and ``train`` say it on their first line."""

from __future__ import annotations

import pytest
import torch

from study._limits import device_shown


def test_the_cpu_is_shown_as_cpu():
    assert device_shown("cpu") == "cpu"


@pytest.mark.parametrize("name, index", [("cuda", 0), ("cuda:1", 1), ("auto", 0)])
def test_a_gpu_is_shown_with_its_index_and_name(monkeypatch, name, index):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: f"GPU model {i}")
    assert device_shown(name) == f"cuda:{index} (GPU model {index})"
