"""Learning-rate scaling rules: how the lr follows the global batch size."""

from __future__ import annotations

import math
from collections.abc import Callable

from batchgap.errors import ConfigError

# Each rule maps (base lr, global batch, reference batch) to the lr used at that batch.
RULES: dict[str, Callable[[float, int, int], float]] = {
    # Keep the base lr whatever the batch: the "large batch" baseline.
    "none": lambda lr, batch, ref: lr,
    # Goyal et al. 2017: k times the batch, k times the lr.
    "linear": lambda lr, batch, ref: lr * batch / ref,
    # Hoffer et al. 2017: hold the covariance of one step, (lr^2 / B) Sigma, fixed.
    "sqrt": lambda lr, batch, ref: lr * math.sqrt(batch / ref),
}


def scaled_lr(base_lr: float, rule: str, global_batch_size: int, reference_batch_size: int):
    """The learning rate a run at `global_batch_size` uses under `rule`."""
    if rule not in RULES:
        raise ConfigError(f"scaling.rule={rule!r} is unknown; valid: {', '.join(sorted(RULES))}")
    if isinstance(base_lr, bool) or not (
        isinstance(base_lr, int | float) and math.isfinite(base_lr) and base_lr > 0
    ):
        raise ConfigError(f"optim.lr={base_lr!r} is invalid; it must be a finite positive number")
    if isinstance(reference_batch_size, bool) or not (
        isinstance(reference_batch_size, int) and reference_batch_size > 0
    ):
        raise ConfigError(
            f"scaling.reference_batch_size={reference_batch_size!r} is invalid; "
            "it must be a positive integer"
        )
    return RULES[rule](base_lr, global_batch_size, reference_batch_size)
