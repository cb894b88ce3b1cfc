"""Callbacks that measure the science (weight distance) and protect a run (divergence)."""

from batchgap.callbacks.divergence import DivergenceGuard
from batchgap.callbacks.weight_distance import WeightDistance

__all__ = ["DivergenceGuard", "WeightDistance"]
