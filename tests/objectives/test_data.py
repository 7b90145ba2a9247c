"""Reading a torchvision dataset: a download that fails leaves the data folder as it found it."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torchvision.datasets.mnist

from objectives import MNIST_FILES, ConfigError, DatasetConfig, load


@pytest.fixture
def offline(monkeypatch):
    """No network: every file torchvision fetches fails, the first one after writing half of it (a cut-off
    download)."""
    def fail(url, download_root, filename=None, md5=None, **kwargs):
        if filename == MNIST_FILES[0] + ".gz":
            Path(download_root, filename).write_bytes(b"\x1f\x8b half an archive")
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", fail)


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_a_failed_download_leaves_no_folder_it_created(tmp_path, offline, name, folder):
    root = tmp_path / "data"
    with pytest.raises(ConfigError, match=f"not in {root}/{folder}/raw and download failed"):
        load(DatasetConfig(name=name, root=str(root)))
    assert list(tmp_path.iterdir()) == []


def test_a_failed_download_removes_only_what_it_wrote(tmp_path, offline):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "README.txt").write_text("the user's own file")
    (tmp_path / "FashionMNIST").mkdir()
    with pytest.raises(ConfigError, match="download failed"):
        load(DatasetConfig(root=str(tmp_path)))
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == [
        "FashionMNIST", "MNIST", "MNIST/raw", "MNIST/raw/README.txt"]
