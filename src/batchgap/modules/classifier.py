"""The LightningModule that trains any classifier net with SGD (or Adam) and cross-entropy."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric

from batchgap.modules.lean import LeanModule
from batchgap.modules.schedule import lr_multiplier, milestone_updates

SPLITS = ("train", "val", "test")


class Classifier(LeanModule):
    """Owns the optimizer, the per-update lr schedule and the loss/error bookkeeping."""

    def __init__(
        self,
        net: nn.Module,
        optimizer: functools.partial,
        lr: float,
        lr_milestones: list[float],
        lr_gamma: float,
        warmup_updates: int = 0,
    ):
        super().__init__()
        self.net = net
        self.optimizer_factory = optimizer
        self.lr = lr
        self.lr_milestones = list(lr_milestones)
        self.lr_gamma = lr_gamma
        self.warmup_updates = warmup_updates
        self.lr_drop_updates: list[int] = []
        self._epoch_sums: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._epoch_examples = 0
        self.val_loss, self.val_err = MeanMetric(), MeanMetric()
        self.final_loss = nn.ModuleList(MeanMetric() for _ in SPLITS)
        self.final_err = nn.ModuleList(MeanMetric() for _ in SPLITS)

    def forward(self, x):
        return self.net(x)

    def _loss_and_mistakes(self, batch):
        x, y = batch
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        mistakes = (logits.argmax(dim=1) != y).float()
        return loss, mistakes

    def training_step(self, batch, batch_idx):
        loss, mistakes = self._loss_and_mistakes(batch)
        # Per-step metric updates cost ~8% of a small step: keep device-side sums, reduce once
        # at the epoch's end.
        self._epoch_sums.append((loss.detach() * mistakes.numel(), mistakes.sum()))
        self._epoch_examples += mistakes.numel()
        # At Lightning's cadence and step numbering: the update's index, from 0.
        if (self.global_step + 1) % self.trainer.log_every_n_steps == 0:
            self.log_to_loggers({"train/loss_step": loss.detach().item()}, self.global_step)
        return loss

    def on_train_epoch_start(self):
        self._epoch_sums, self._epoch_examples = [], 0

    def on_train_epoch_end(self):
        """Logs the epoch's mean training loss and error over every rank's examples."""
        if not self._epoch_sums:
            return
        sums = torch.stack([torch.stack(s) for s in self._epoch_sums]).sum(0)
        totals = torch.cat([sums, sums.new_tensor([self._epoch_examples])])
        totals = self.trainer.strategy.reduce(totals, reduce_op="sum")
        loss_sum, mistake_sum, count = totals.tolist()
        # Lightning logs an epoch's metrics at the index of its last update.
        self.log_to_loggers(
            {"train/loss": loss_sum / count, "train/err": mistake_sum / count},
            self.global_step - 1,
        )

    def validation_step(self, batch, batch_idx):
        loss, mistakes = self._loss_and_mistakes(batch)
        self.val_loss.update(loss, weight=mistakes.numel())
        self.val_err.update(mistakes)
        self.log("val/loss", self.val_loss, on_step=False, on_epoch=True)
        self.log("val/err", self.val_err, on_step=False, on_epoch=True)

    def test_step(self, batch, batch_idx, dataloader_idx: int = 0):
        """The final pass: every split in eval mode, logged as `<split>/final_loss|final_err`."""
        loss, mistakes = self._loss_and_mistakes(batch)
        split = SPLITS[dataloader_idx]
        self.final_loss[dataloader_idx].update(loss, weight=mistakes.numel())
        self.final_err[dataloader_idx].update(mistakes)
        for name, metric in (("final_loss", self.final_loss), ("final_err", self.final_err)):
            self.log(
                f"{split}/{name}",
                metric[dataloader_idx],
                on_step=False,
                on_epoch=True,
                add_dataloader_idx=False,
            )

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(self.parameters(), lr=self.lr)
        total_updates = int(self.trainer.estimated_stepping_batches)
        self.lr_drop_updates = milestone_updates(self.lr_milestones, total_updates)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            functools.partial(
                lr_multiplier,
                drops=self.lr_drop_updates,
                gamma=self.lr_gamma,
                warmup_updates=self.warmup_updates,
            ),
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": schedule, "interval": "step", "frequency": 1},
        }
