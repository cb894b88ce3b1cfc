"""Normalization layers selectable by name for every model that has one."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from batchgap.errors import ConfigError


def _none(num_features: int, dims: int, ghost_batch_size: int | None) -> nn.Module:
    return nn.Identity()


def _batch_norm(num_features: int, dims: int, ghost_batch_size: int | None) -> nn.Module:
    return nn.BatchNorm1d(num_features) if dims == 1 else nn.BatchNorm2d(num_features)


NORMS: dict[str, Callable[[int, int, int | None], nn.Module]] = {
    "none": _none,
    "bn": _batch_norm,
}


def make_norm(norm: str, num_features: int, dims: int, ghost_batch_size: int | None = None):
    """A norm layer for `num_features` channels of 1-D (dims=1) or 2-D (dims=2) features."""
    if norm not in NORMS:
        raise ConfigError(f"model.norm={norm!r} is unknown; valid: {', '.join(sorted(NORMS))}")
    return NORMS[norm](num_features, dims, ghost_batch_size)
