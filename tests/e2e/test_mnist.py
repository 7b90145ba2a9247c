"""One short training on real MNIST, where the data is on this machine (`slow`)."""

from __future__ import annotations

import pytest
from support import mnist_root

from objectives import TrialConfig, train

pytestmark = pytest.mark.slow


def test_leaky_bptt_learns_real_mnist_in_one_short_epoch():
    root = mnist_root()
    if root is None:
        pytest.skip("MNIST not found: set SNN_STUDY_DATA to a folder holding MNIST/raw with the four idx files")
    cfg = TrialConfig.from_dict(
        {
            "dataset": {"root": str(root), "train_subset": 6000, "test_subset": 2000, "val_size": 1000,
                        "download": False, "normalize": True},
            "training": {"epochs": 1, "device": "cpu"},
        }
    )
    result = train(cfg)
    assert result.test_acc > 0.85, result
