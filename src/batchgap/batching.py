"""Global batch semantics: the science fixes the global batch, the hardware splits it."""

from __future__ import annotations

import math
from dataclasses import dataclass

from batchgap.errors import ConfigError


@dataclass(frozen=True)
class BatchLayout:
    """How one optimizer update's global batch is spread over processes and micro-batches."""

    global_batch_size: int
    devices: int
    num_nodes: int
    accumulate_grad_batches: int

    @property
    def world_size(self) -> int:
        return self.devices * self.num_nodes

    @property
    def per_device_batch_size(self) -> int:
        return self.global_batch_size // (self.world_size * self.accumulate_grad_batches)

    def describe(self) -> str:
        return (
            f"global batch {self.global_batch_size} = {self.num_nodes} node(s) x "
            f"{self.devices} device(s) x {self.accumulate_grad_batches} micro-batch(es) x "
            f"{self.per_device_batch_size}"
        )


def batch_layout(
    global_batch_size, devices, num_nodes: int = 1, accumulate_grad_batches: int = 1
) -> BatchLayout:
    """Check that the global batch splits evenly and return the layout, or raise ConfigError."""
    for name, value in (
        ("data.global_batch_size", global_batch_size),
        ("trainer.devices", devices),
        ("trainer.num_nodes", num_nodes),
        ("trainer.accumulate_grad_batches", accumulate_grad_batches),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{name}={value!r} is invalid; it must be a positive integer")
    split = devices * num_nodes * accumulate_grad_batches
    if global_batch_size % split:
        raise ConfigError(
            f"data.global_batch_size={global_batch_size} does not divide evenly: "
            f"{global_batch_size} / ({devices} devices x {num_nodes} nodes x "
            f"{accumulate_grad_batches} accumulation) = {global_batch_size / split:g}; "
            f"use a multiple of {split}"
        )
    return BatchLayout(global_batch_size, devices, num_nodes, accumulate_grad_batches)


def updates_per_epoch(train_size: int, global_batch_size: int) -> int:
    """Optimizer updates in one epoch when incomplete batches are dropped."""
    return train_size // global_batch_size


def limited_updates_per_epoch(per_epoch: int, accumulate: int, limit: int | float | None) -> int:
    """Updates an epoch really makes when `trainer.limit_train_batches` cuts it short.

    Lightning limits per-device batches (an int caps them, a float keeps that fraction) and
    steps on an epoch's last batch even when its accumulation is incomplete.
    """
    batches = per_epoch * accumulate
    if limit is not None:
        batches = min(batches, limit) if isinstance(limit, int) else int(batches * limit)
    return math.ceil(batches / accumulate)
