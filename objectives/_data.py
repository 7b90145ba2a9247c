"""Datasets, read once into tensors on the training device; batches are index slices.

Images are scaled to [0, 1] once (the original code's ``Normalize((0,), (1,))``), which is
also what rate encoding needs: a pixel's value is its spike probability. Under
``dataset.normalize`` (the default for a direct encoding) they are then standardized
with the training split's mean and standard deviation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ._config import DATA_ENV, DatasetConfig
from ._errors import ConfigError

MNIST_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)

#: the validation split is the same for every trial of every study, whatever the
#: trial's training seed, so that validation accuracies are comparable
SPLIT_SEED = 20240101


@dataclass(frozen=True)
class Split:
    """Images ``x`` ``[N, C, H, W]`` in [0, 1] and labels ``y`` ``[N]``, on one device."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


@dataclass(frozen=True)
class Data:
    """Train, validation (carved from train) and test splits, plus the shape the model needs."""

    train: Split
    val: Split
    test: Split
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        channels, height, width = self.train.x.shape[1:]
        return int(channels), int(height), int(width)


def _torchvision(cls_name: str, folder: str) -> Callable[[DatasetConfig], tuple[torch.Tensor, ...]]:
    def read(cfg: DatasetConfig):
        import torchvision

        cls = getattr(torchvision.datasets, cls_name)
        root = cfg.resolved_root
        raw = Path(root) / folder / "raw"
        created = [p for p in (raw, *raw.parents) if not p.exists()]  # deepest first
        before = set(raw.iterdir()) if raw.is_dir() else set()
        try:
            train = cls(root, train=True, download=cfg.download)
            test = cls(root, train=False, download=cfg.download)
        except Exception as exc:  # torchvision raises RuntimeError or URLError, depending on what failed
            _undo_download(raw, before, created)
            reason = "download failed" if cfg.download else "download is off"
            raise ConfigError(
                "dataset.root",
                root,
                f"{cfg.name} is not in {raw} and {reason} ({type(exc).__name__}); put "
                f"{', '.join(MNIST_FILES)} there, or point dataset.root or ${DATA_ENV} at the folder holding {folder}/",
            ) from None
        return train.data, train.targets, test.data, test.targets

    return read


def _undo_download(raw: Path, before: set[Path], created: list[Path]) -> None:
    """Remove what a failed download left behind: the dataset's files that were not in ``raw`` ``before`` (a
    download cut off mid-file), then the folders it ``created`` while they are empty. An empty ``MNIST/raw``
    would look like a dataset that is there, and a user's own files there stay."""
    if raw.is_dir():
        for path in set(raw.iterdir()) - before:
            if path.name.startswith(MNIST_FILES) and path.is_file():
                path.unlink(missing_ok=True)
    for path in created:
        try:
            path.rmdir()
        except FileNotFoundError:  # never made
            continue
        except OSError:  # not empty: another process put something there, and the folders above hold it
            break


def _synthetic(cfg: DatasetConfig) -> tuple[torch.Tensor, ...]:
    """Ten classes of 28x28 images: a fixed random stroke pattern per class, jittered and noisy.

    Small (1,200 training and 300 test images) and learnable in a few batches, for tests.
    """
    g = torch.Generator().manual_seed(7)
    templates = torch.zeros(10, 28, 28)
    for c in range(10):
        for _ in range(3):  # three strokes per class
            r0, c0 = torch.randint(4, 24, (2,), generator=g).tolist()
            horizontal = bool(torch.randint(0, 2, (1,), generator=g))
            length = int(torch.randint(8, 16, (1,), generator=g))
            if horizontal:
                templates[c, r0 : r0 + 2, max(0, c0 - length // 2) : c0 + length // 2] = 1.0
            else:
                templates[c, max(0, r0 - length // 2) : r0 + length // 2, c0 : c0 + 2] = 1.0

    def make(n):
        y = torch.randint(0, 10, (n,), generator=g)
        shift = torch.randint(-2, 3, (n, 2), generator=g)
        x = torch.stack([torch.roll(templates[int(c)], tuple(s.tolist()), (0, 1)) for c, s in zip(y, shift)])
        x = x * (0.6 + 0.4 * torch.rand(n, 1, 1, generator=g)) + 0.2 * torch.rand(n, 28, 28, generator=g)
        return (x.clamp(0, 1) * 255).to(torch.uint8), y

    train_x, train_y = make(1200)
    test_x, test_y = make(300)
    return train_x, train_y, test_x, test_y


DATASETS: dict[str, Callable[[DatasetConfig], tuple[torch.Tensor, ...]]] = {
    "mnist": _torchvision("MNIST", "MNIST"),
    "fashion_mnist": _torchvision("FashionMNIST", "FashionMNIST"),
    "synthetic": _synthetic,
}

# One process trains many trials on the same dataset: keep the last one read (bounded, so memory stays flat).
_last_read: tuple[tuple, tuple[torch.Tensor, ...]] | None = None


def _read(cfg: DatasetConfig) -> tuple[torch.Tensor, ...]:
    global _last_read
    key = (cfg.name, str(Path(cfg.resolved_root).resolve()))
    if _last_read is None or _last_read[0] != key:
        _last_read = (key, DATASETS[cfg.name](cfg))
    return _last_read[1]


def load(cfg: DatasetConfig, device: torch.device | str = "cpu") -> Data:
    """Read ``cfg``'s dataset, split off the validation set, cap the subsets and move it all to ``device``."""
    train_x, train_y, test_x, test_y = _read(cfg)
    n = len(train_y)
    if cfg.val_size >= n:
        raise ConfigError(
            "dataset.val_size", cfg.val_size, f"must be smaller than the {n} training images of {cfg.name!r}"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(SPLIT_SEED))
    val_idx, train_idx = order[: cfg.val_size], order[cfg.val_size :]
    if cfg.train_subset is not None:
        train_idx = train_idx[: cfg.train_subset]
    test_n = len(test_y) if cfg.test_subset is None else min(cfg.test_subset, len(test_y))

    def split(x, y, idx=None):
        if idx is not None:
            x, y = x[idx], y[idx]
        # uint8 -> float once, on the device: the training loop only slices
        x = x.to(device).unsqueeze(1).float().div_(255.0) if x.dim() == 3 else x.to(device).float().div_(255.0)
        return Split(x, y.to(device).long())

    train = split(train_x, train_y, train_idx)
    val = split(train_x, train_y, val_idx)
    test = split(test_x[:test_n], test_y[:test_n])
    # None: not resolved against the encoding (TrialConfig.resolved); the default encoding (direct) standardizes
    if cfg.normalize or cfg.normalize is None:
        # statistics of the training split only: validation and test must not leak into them
        mean, std = train.x.mean(), train.x.std()
        for s in (train, val, test):
            s.x.sub_(mean).div_(std)
    return Data(train=train, val=val, test=test, num_classes=int(max(train_y.max(), test_y.max())) + 1)
