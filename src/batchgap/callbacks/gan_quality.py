"""Scores the generator at fixed intervals, keeps the last good checkpoint, spots collapse."""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

import lightning as L

from batchgap.metrics.evaluator import QualityEvaluator

log = logging.getLogger(__name__)

COLUMNS = (
    "update",
    "fid",
    "inception_score",
    "mode_coverage",
    "classes_covered",
    "mode_kl",
    "inception_fid",
    "inception_is",
)


class QualityMonitor(L.Callback):
    """Every `every_n_updates` generator updates and at the end, rank zero appends one row of
    scores to `quality.csv` (row `update = 0` is real data's own reference).

    After an interval's scores are finite, every rank saves `last_good.ckpt`. Mode collapse is
    a mode coverage below `collapse_below` after the generator had reached it; it stops the run
    and sets the module's `collapsed_at_update`.
    """

    def __init__(
        self,
        evaluator: QualityEvaluator,
        path: Path,
        last_good_path: Path,
        every_n_updates: int,
        collapse_below: float | None,
    ):
        self.evaluator = evaluator
        self.path = Path(path)
        self.last_good_path = Path(last_good_path)
        self.every_n_updates = every_n_updates
        self.collapse_below = collapse_below
        self.reached_coverage = False
        self._last_update = -1

    def on_train_start(self, trainer, pl_module) -> None:
        self._last_update = trainer.global_step
        if trainer.is_global_zero and not self.path.exists():
            self._write({"update": "real", **self.evaluator.reference}, header=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        update = trainer.global_step
        if update == self._last_update or update % self.every_n_updates:
            return
        self._last_update = update
        verdict = self._score(trainer, pl_module, update) if trainer.is_global_zero else None
        # One decision for every rank: saving a checkpoint and stopping are collective.
        verdict = trainer.strategy.broadcast(verdict, src=0)
        if verdict == "good":
            trainer.save_checkpoint(self.last_good_path)
        elif verdict == "collapsed":
            pl_module.collapsed_at_update.fill_(update)
            trainer.should_stop = True

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero and trainer.global_step != self._last_update:
            verdict = self._score(trainer, pl_module, trainer.global_step)
            if verdict == "collapsed":
                pl_module.collapsed_at_update.fill_(trainer.global_step)

    def _score(self, trainer, pl_module, update: int) -> str:
        scores = self.evaluator.evaluate(pl_module.generator)
        self._write({"update": update, **scores})
        metrics = {f"generated/{k}": scores[k] for k in COLUMNS[1:] if k in scores}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=update)
        if not math.isfinite(scores["fid"]):
            return "bad"
        if self.collapse_below is None:
            return "good"
        if scores["mode_coverage"] >= self.collapse_below:
            self.reached_coverage = True
        elif self.reached_coverage:
            log.warning(
                "mode collapse at update %d: mode coverage %.2f < %.2f",
                update,
                scores["mode_coverage"],
                self.collapse_below,
            )
            return "collapsed"
        return "good"

    def _write(self, row: dict, header: bool = False) -> None:
        with self.path.open("w" if header else "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
            if header:
                writer.writeheader()
            writer.writerow(row)


def read_quality(path: Path) -> tuple[dict, dict]:
    """(real data's reference row, the last generated row) of a `quality.csv`, as floats."""
    if not Path(path).is_file():
        return {}, {}
    with Path(path).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    parse = {k: float for k in COLUMNS[1:]} | {"classes_covered": int}
    parsed = [{k: parse[k](v) for k, v in row.items() if k in parse and v != ""} for row in rows]
    reference = parsed[0] if rows and rows[0]["update"] == "real" else {}
    generated = [p for row, p in zip(rows, parsed) if row["update"] != "real"]
    return reference, generated[-1] if generated else {}
