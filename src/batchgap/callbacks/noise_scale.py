"""Measures the gradient noise scale B_simple = tr(Sigma) / |G|^2 while a classifier trains."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F

from batchgap.callbacks.schedule import log_spaced_updates
from batchgap.noise.estimator import NoiseScaleEMA

log = logging.getLogger(__name__)

COLUMNS = [
    "update",
    "batch_small",
    "batch_big",
    "sq_norm_small",
    "sq_norm_big",
    "grad_sq_ema",
    "trace_ema",
    "b_simple",
]


def squared_grad_norm(params) -> torch.Tensor:
    grads = [p.grad for p in params if p.grad is not None]
    return torch.stack(torch._foreach_norm(grads)).float().pow(2).sum()


class GradientNoiseScale(L.Callback):
    """Two squared gradient norms per estimate, at batch sizes B_small < B_big.

    Under DDP these are the per-device gradient (read in a comm hook before the all-reduce) and
    the all-reduced one: no extra backward pass, every update. On one device, every
    `every_n_updates` updates, extra backward passes on the two halves of the batch give the
    small one, with the RNG and the norm layers' running statistics restored so the run itself
    is unchanged.
    """

    def __init__(self, path: str | Path | None, decay: float = 0.95, every_n_updates: int = 10):
        self.path = Path(path) if path is not None else None
        self.every_n_updates = every_n_updates
        self.ema = NoiseScaleEMA(decay=decay)
        self._batch = None
        self._local_sq: torch.Tensor | None = None
        self._schedule: set[int] = set()
        self._distributed = False

    def state_dict(self) -> dict:
        return self.ema.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        self.ema.load_state_dict(state_dict)

    def on_train_start(self, trainer, pl_module) -> None:
        self._distributed = trainer.world_size > 1
        if self._distributed:
            self._register_comm_hook(trainer.strategy.model)
        self._schedule = log_spaced_updates(max(1, int(trainer.estimated_stepping_batches)))
        if trainer.is_global_zero and self.path is not None:
            keep = []
            if self.path.exists() and trainer.global_step > 0:
                with self.path.open(newline="") as handle:
                    keep = [
                        r
                        for r in csv.DictReader(handle)
                        if int(r["update"]) <= trainer.global_step
                    ]
            with self.path.open("w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=COLUMNS)
                writer.writeheader()
                writer.writerows(keep)

    def _register_comm_hook(self, ddp_model) -> None:
        from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

        def hook(state, bucket):
            # The bucket still holds this rank's own gradient: the small-batch estimate.
            local = bucket.buffer().detach().float().pow(2).sum()
            self._local_sq = local if self._local_sq is None else self._local_sq + local
            return default_hooks.allreduce_hook(None, bucket)

        ddp_model.register_comm_hook(state=None, hook=hook)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._batch = batch

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        update = trainer.global_step + 1
        params = [p for p in pl_module.parameters() if p.requires_grad]
        global_batch = trainer.datamodule.per_device_batch_size * trainer.world_size
        global_batch *= trainer.accumulate_grad_batches
        if self._distributed:
            if self._local_sq is None:
                return
            sq_small = trainer.strategy.reduce(self._local_sq, reduce_op="mean")
            self._local_sq = None
            batch_small = global_batch // trainer.world_size
        elif update % self.every_n_updates == 0 or update in self._schedule:
            sq_small, batch_small = self._half_batch_sq_norm(pl_module, params)
        else:
            return
        sq_big = squared_grad_norm(params)
        small, big = float(sq_small), float(sq_big)
        self.ema.update(small, big, batch_small, global_batch)
        if trainer.is_global_zero and update in self._schedule:
            self._write(update, batch_small, global_batch, small, big, trainer)

    def _half_batch_sq_norm(self, pl_module, params) -> tuple[torch.Tensor, int]:
        """Mean squared gradient norm of the two interleaved halves of the batch.

        Interleaved halves are the shards two DDP ranks would get, so one process and two
        measure the same thing on the same data.
        """
        x, y = self._batch
        buffers = {name: b.clone() for name, b in pl_module.named_buffers()}
        devices = [x.device.index or 0] if x.device.type == "cuda" else []
        sq_norms = []
        with torch.random.fork_rng(devices=devices), torch.enable_grad():
            for start in (0, 1):
                loss = F.cross_entropy(pl_module(x[start::2]), y[start::2])
                grads = torch.autograd.grad(loss, params, allow_unused=True)
                norms = torch._foreach_norm([g for g in grads if g is not None])
                sq_norms.append(torch.stack(norms).float().pow(2).sum())
        with torch.no_grad():
            for name, buffer in pl_module.named_buffers():
                buffer.copy_(buffers[name])
        return torch.stack(sq_norms).mean(), len(y) // 2

    def _write(self, update, batch_small, batch_big, small, big, trainer) -> None:
        row = {
            "update": update,
            "batch_small": batch_small,
            "batch_big": batch_big,
            "sq_norm_small": small,
            "sq_norm_big": big,
            "grad_sq_ema": self.ema.true_sq,
            "trace_ema": self.ema.trace,
            "b_simple": self.ema.b_simple,
        }
        for logger in trainer.loggers:
            metrics = {"noise/b_simple": row["b_simple"]} if row["b_simple"] is not None else {}
            logger.log_metrics(metrics, step=update)
        if self.path is not None:
            with self.path.open("a", newline="") as handle:
                csv.DictWriter(handle, fieldnames=COLUMNS).writerow(row)

    def summary(self) -> dict:
        """The run's final smoothed estimates, for summary.json."""
        return {
            "b_simple": self.ema.b_simple,
            "noise_trace": self.ema.trace,
            "noise_grad_sq": self.ema.true_sq,
        }
