"""Log-spaced update counts at which the weight distance is recorded."""

from __future__ import annotations

import math


def log_spaced_updates(max_update: int, dense_until: int = 10, per_decade: int = 20) -> set[int]:
    """Every update up to `dense_until`, then about `per_decade` points per decade of updates."""
    updates = set(range(1, min(dense_until, max_update) + 1))
    if max_update <= dense_until:
        return updates
    start = math.log10(dense_until)
    stop = math.log10(max_update)
    steps = math.ceil((stop - start) * per_decade)
    for k in range(1, steps + 1):
        update = round(10 ** (start + k / per_decade))
        if update <= max_update:
            updates.add(update)
    updates.add(max_update)
    return updates
