"""The LightningDataModule for image classification on tensors held on the device."""

from __future__ import annotations

import logging

import lightning as L
import numpy as np
import torch

from batchgap.data import sources
from batchgap.data.batches import HeldTensors, evaluation_batches, training_batches
from batchgap.data.splits import carve_validation, channel_statistics, stratified_split
from batchgap.errors import ConfigError

log = logging.getLogger(__name__)

EMBEDDED = {"digits": sources.load_digits, "mnist5k": sources.load_mnist5k}
DATASETS = sorted([*EMBEDDED, *sources._TORCHVISION])
NUM_CLASSES = {"cifar100": 100}


def load_splits(cfg) -> dict[str, sources.ArraySplit]:
    """Standardized train/val/test arrays for the dataset named in `cfg` (the `data` group)."""
    if cfg.name not in DATASETS:
        raise ConfigError(f"data.name={cfg.name!r} is unknown; valid: {', '.join(DATASETS)}")
    if cfg.name in EMBEDDED:
        train, val, test = stratified_split(
            EMBEDDED[cfg.name](), cfg.val_fraction, cfg.test_fraction, cfg.split_seed
        )
    else:
        full_train, test = sources.load_torchvision(cfg.name, cfg.data_dir, cfg.download)
        train, val = carve_validation(full_train, cfg.val_fraction, cfg.split_seed)
    mean, std = channel_statistics(train.x)
    return {
        split: sources.ArraySplit((part.x - mean) / std, part.y)
        for split, part in (("train", train), ("val", val), ("test", test))
    }


class ClassificationData(L.LightningDataModule):
    """Holds every split as tensors on the training device and batches them by index."""

    def __init__(self, cfg, per_device_batch_size: int, eval_batch_size: int, shuffle_seed: int):
        super().__init__()
        self.cfg = cfg
        self.per_device_batch_size = per_device_batch_size
        self.eval_batch_size = eval_batch_size
        self.shuffle_seed = shuffle_seed
        self.splits = load_splits(cfg)
        self.held: dict[str, HeldTensors] = {}

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.splits["train"].x.shape[1:])

    @property
    def num_classes(self) -> int:
        return NUM_CLASSES.get(self.cfg.name, 10)

    @property
    def train_size(self) -> int:
        return len(self.splits["train"].y)

    def setup(self, stage: str) -> None:
        if self.held:
            return
        device = self.trainer.strategy.root_device if self.cfg.on_device else torch.device("cpu")
        for split, part in self.splits.items():
            x = torch.from_numpy(np.ascontiguousarray(part.x)).to(device)
            self.held[split] = HeldTensors(x, torch.from_numpy(part.y).to(device))
        log.debug("holding %s on %s", {k: len(v) for k, v in self.held.items()}, device)

    def _rank(self) -> tuple[int, int]:
        return self.trainer.global_rank, self.trainer.world_size

    def train_dataloader(self):
        rank, world = self._rank()
        return training_batches(
            self.held["train"], self.per_device_batch_size, rank, world, self.shuffle_seed
        )

    def val_dataloader(self):
        rank, world = self._rank()
        return evaluation_batches(self.held["val"], self.eval_batch_size, rank, world)

    def test_dataloader(self):
        """The final evaluation: train, val and test splits, all in eval mode."""
        rank, world = self._rank()
        return [
            evaluation_batches(self.held[split], self.eval_batch_size, rank, world)
            for split in ("train", "val", "test")
        ]
