"""Fixed, seeded, stratified splits and per-channel standardization."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from batchgap.data.sources import ArraySplit


def stratified_split(
    data: ArraySplit, val_fraction: float, test_fraction: float, seed: int
) -> tuple[ArraySplit, ArraySplit, ArraySplit]:
    """Shuffle, then split into train/val/test with every class in the same proportion in each."""
    indices = np.arange(len(data.y))
    train_val, test = train_test_split(
        indices, test_size=test_fraction, stratify=data.y, random_state=seed, shuffle=True
    )
    relative_val = val_fraction / (1.0 - test_fraction)
    train, val = train_test_split(
        train_val, test_size=relative_val, stratify=data.y[train_val], random_state=seed + 1
    )
    return tuple(ArraySplit(data.x[i], data.y[i]) for i in (train, val, test))


def carve_validation(
    train: ArraySplit, val_fraction: float, seed: int
) -> tuple[ArraySplit, ArraySplit]:
    """Hold out a stratified validation set from an official training set."""
    indices = np.arange(len(train.y))
    keep, val = train_test_split(
        indices, test_size=val_fraction, stratify=train.y, random_state=seed, shuffle=True
    )
    return ArraySplit(train.x[keep], train.y[keep]), ArraySplit(train.x[val], train.y[val])


def channel_statistics(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each channel over images and pixels, shaped (1, C, 1, 1)."""
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    std = x.std(axis=(0, 2, 3), keepdims=True)
    return mean, np.maximum(std, 1e-6)
