"""Per-update learning-rate multipliers: linear warmup, then steps at fractions of training."""

from __future__ import annotations

import bisect


def milestone_updates(milestones: list[float], total_updates: int) -> list[int]:
    """Update counts at which the lr drops, from milestones given as fractions of training."""
    return [max(1, round(fraction * total_updates)) for fraction in milestones]


def lr_multiplier(update: int, drops: list[int], gamma: float, warmup_updates: int) -> float:
    """The factor on the peak lr at `update` (0-based count of updates already made)."""
    factor = gamma ** bisect.bisect_right(drops, update)
    if warmup_updates and update < warmup_updates:
        factor *= (update + 1) / warmup_updates
    return factor
