"""Unbiased estimates of |G|^2 and tr(Sigma) from squared gradient norms at two batch sizes."""

from __future__ import annotations

from dataclasses import dataclass, field


def two_batch_estimates(
    sq_norm_small: float, sq_norm_big: float, batch_small: float, batch_big: float
) -> tuple[float, float]:
    """(|G|^2, tr(Sigma)) from E|G_B|^2 = |G|^2 + tr(Sigma)/B measured at two batch sizes."""
    if not batch_big > batch_small > 0:
        raise ValueError(f"need 0 < batch_small < batch_big, got {batch_small}, {batch_big}")
    true_sq = (batch_big * sq_norm_big - batch_small * sq_norm_small) / (batch_big - batch_small)
    trace = (sq_norm_small - sq_norm_big) / (1.0 / batch_small - 1.0 / batch_big)
    return true_sq, trace


@dataclass
class NoiseScaleEMA:
    """Exponential moving averages of |G|^2 and tr(Sigma); their ratio is B_simple.

    The two averages are smoothed separately and divided only at the end, because the ratio of
    two noisy single-step estimates is biased and often negative.
    """

    decay: float = 0.95
    true_sq: float | None = field(default=None)
    trace: float | None = field(default=None)
    steps: int = 0

    def update(self, sq_small: float, sq_big: float, batch_small: float, batch_big: float):
        true_sq, trace = two_batch_estimates(sq_small, sq_big, batch_small, batch_big)
        self.steps += 1
        if self.true_sq is None:
            self.true_sq, self.trace = true_sq, trace
        else:
            self.true_sq = self.decay * self.true_sq + (1 - self.decay) * true_sq
            self.trace = self.decay * self.trace + (1 - self.decay) * trace
        return self

    @property
    def b_simple(self) -> float | None:
        """tr(Sigma) / |G|^2, or None while |G|^2 is not yet positive."""
        if self.true_sq is None or self.true_sq <= 0:
            return None
        return self.trace / self.true_sq

    def state_dict(self) -> dict:
        return {"true_sq": self.true_sq, "trace": self.trace, "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.true_sq, self.trace, self.steps = state["true_sq"], state["trace"], state["steps"]
