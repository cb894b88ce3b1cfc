"""Normalization layers selectable by name for every model that has one."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from batchgap.errors import ConfigError
from batchgap.models.ghost_norm import GhostBatchNorm, check_ghost_batch_size


def _none(num_features: int, dims: int, ghost_batch_size: int | None) -> nn.Module:
    return nn.Identity()


def _batch_norm(num_features: int, dims: int, ghost_batch_size: int | None) -> nn.Module:
    return nn.BatchNorm1d(num_features) if dims == 1 else nn.BatchNorm2d(num_features)


def _ghost_batch_norm(num_features: int, dims: int, ghost_batch_size: int | None) -> nn.Module:
    return GhostBatchNorm(num_features, ghost_batch_size)


def _sync_batch_norm(num_features: int, dims: int, ghost_batch_size: int | None) -> nn.Module:
    # Statistics over the whole global batch across processes: the opposite of ghost batch norm.
    return nn.SyncBatchNorm.convert_sync_batchnorm(_batch_norm(num_features, dims, None))


NORMS: dict[str, Callable[[int, int, int | None], nn.Module]] = {
    "none": _none,
    "bn": _batch_norm,
    "ghost_bn": _ghost_batch_norm,
    "sync_bn": _sync_batch_norm,
}


def _check_ghost(ghost_batch_size, per_device_batch_size: int, accelerator: str) -> None:
    check_ghost_batch_size(ghost_batch_size, per_device_batch_size)


def _check_bn(ghost_batch_size, per_device_batch_size: int, accelerator: str) -> None:
    if per_device_batch_size < 2:
        raise ConfigError(
            f"model.norm='bn' needs at least 2 examples per device batch to normalize over, "
            f"but the per-device batch is {per_device_batch_size}; raise data.global_batch_size "
            "or use model.norm=none"
        )


def _check_sync(ghost_batch_size, per_device_batch_size: int, accelerator: str) -> None:
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    if on_cpu:
        raise ConfigError(
            f"model.norm='sync_bn' needs GPUs but trainer.accelerator={accelerator!r} runs on "
            "the CPU; use model.norm=bn or ghost_bn, or trainer=gpu"
        )


# Norms whose validity depends on the batch layout or the hardware, checked before training.
_LAYOUT_CHECKS: dict[str, Callable[[int | None, int, str], None]] = {
    "bn": _check_bn,
    "ghost_bn": _check_ghost,
    "sync_bn": _check_sync,
}


def check_norm(norm, ghost_batch_size, per_device_batch_size: int, accelerator: str) -> None:
    """Raise ConfigError when `norm` is unknown or cannot run with this batch layout/hardware."""
    if norm is None:
        return
    if norm not in NORMS:
        raise ConfigError(f"model.norm={norm!r} is unknown; valid: {', '.join(sorted(NORMS))}")
    if norm in _LAYOUT_CHECKS:
        _LAYOUT_CHECKS[norm](ghost_batch_size, per_device_batch_size, accelerator)


def make_norm(norm: str, num_features: int, dims: int, ghost_batch_size: int | None = None):
    """A norm layer for `num_features` channels of 1-D (dims=1) or 2-D (dims=2) features."""
    if norm not in NORMS:
        raise ConfigError(f"model.norm={norm!r} is unknown; valid: {', '.join(sorted(NORMS))}")
    return NORMS[norm](num_features, dims, ghost_batch_size)
