"""The classification splits rescaled to [-1, 1], the output range of a tanh generator."""

from __future__ import annotations

import numpy as np
import torch

from batchgap.data.datamodule import ClassificationData
from batchgap.data.sources import ArraySplit


class GANData(ClassificationData):
    """Per-channel min/max of the standardized training split map every split onto [-1, 1].

    `to_standardized` maps images back to the classifier's standardized view, so a classifier
    trained by batchgap on the same data can score generated images.
    """

    def __init__(self, cfg, per_device_batch_size: int, eval_batch_size: int, shuffle_seed: int):
        super().__init__(cfg, per_device_batch_size, eval_batch_size, shuffle_seed)
        train = self.splits["train"].x
        self.low = train.min(axis=(0, 2, 3), keepdims=True)
        self.span = np.maximum(train.max(axis=(0, 2, 3), keepdims=True) - self.low, 1e-6)
        self.splits = {
            split: ArraySplit((2 * (part.x - self.low) / self.span - 1).astype(np.float32), part.y)
            for split, part in self.splits.items()
        }

    def to_standardized(self, images: torch.Tensor) -> torch.Tensor:
        """Images in [-1, 1] mapped to the standardized inputs a batchgap classifier expects."""
        low = torch.as_tensor(self.low, device=images.device, dtype=images.dtype)
        span = torch.as_tensor(self.span, device=images.device, dtype=images.dtype)
        return (images + 1) / 2 * span + low

    def val_dataloader(self):
        # A GAN has no validation loss; its quality metrics run on their own schedule.
        return []

    def test_dataloader(self):
        return []
