"""Requeue a Slurm job before its time limit, from a checkpoint taken at an epoch end."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import lightning as L

from batchgap.slurm import requeue_job, started_by_slurm

log = logging.getLogger(__name__)


class JobRequeued(SystemExit):
    """Ends the process of a requeued job; the job's next start resumes from the checkpoint.

    A SystemExit, so neither Hydra nor submitit records it as the job's outcome.
    """


class RequeueOnSignal(L.Callback):
    """On the warning signal (sbatch --signal=USR1@90) save a checkpoint, requeue the job, exit.

    It acts at the end of the epoch in which the signal came: resuming at an epoch boundary
    keeps the data order, so the requeued run ends with the records of an uninterrupted one.
    batchgap's only owner of requeueing; Lightning's own auto-requeue is switched off.
    """

    # Limitation: an epoch longer than the signal's lead time never reaches this point before
    # the time limit; the job then times out unrequeued (give sbatch --signal more lead).
    def __init__(self, checkpoint_path: str | Path, signum: int = signal.SIGUSR1):
        self.checkpoint_path = Path(checkpoint_path)
        self.signum = signum
        self.requested = False
        self.armed = False

    def _request(self, signum, frame) -> None:
        # Only a flag: the handler may run in the middle of an optimizer step.
        self.requested = True

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # Kept after fit: a signal that comes during the final evaluation must not kill the
        # process (the default action), it is too late to requeue and the run ends normally.
        if (
            stage == "fit"
            and started_by_slurm()
            and threading.main_thread() is threading.current_thread()
        ):
            signal.signal(self.signum, self._request)
            self.armed = True

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.armed:
            return
        # Every rank must take the same branch, whichever of them the signal reached first.
        if not trainer.strategy.reduce_boolean_decision(self.requested, all=False):
            return
        trainer.save_checkpoint(self.checkpoint_path)
        if trainer.is_global_zero:
            # Limitation: Slurm answers the requeue with SIGTERM, which can end the process
            # before summary.json says `requeued`; the restarted job rewrites it anyway.
            log.info(
                "requeue signal: saved %s at update %d, requeueing",
                self.checkpoint_path,
                trainer.global_step,
            )
            requeue_job()
        raise JobRequeued(0)
