"""Tracks ||w_t - w_0||, the quantity whose log-t growth Hoffer et al. predict."""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

import lightning as L
import torch
from torch import nn

from batchgap.callbacks.schedule import log_spaced_updates

log = logging.getLogger(__name__)


def layer_groups(module: nn.Module) -> dict[str, list[str]]:
    """Parameter names grouped by the layer (owning module) they belong to."""
    groups: dict[str, list[str]] = {}
    for name, param in module.named_parameters():
        if param.requires_grad:
            layer = name.rsplit(".", 1)[0] if "." in name else name
            groups.setdefault(layer, []).append(name)
    return groups


def distances_and_norms(
    params: list[torch.Tensor], initial: list[torch.Tensor]
) -> tuple[list[float], list[float]]:
    """Per-tensor squared distances ||p - p0||^2 and squared norms ||p||^2, in one host sync."""
    with torch.no_grad():
        diffs = torch._foreach_sub(params, initial)
        sq_dist = torch.stack(torch._foreach_norm(diffs)).float().pow(2)
        sq_norm = torch.stack(torch._foreach_norm(params)).float().pow(2)
        both = torch.stack([sq_dist, sq_norm]).cpu().tolist()
    return both[0], both[1]


class WeightDistance(L.Callback):
    """Records whole-model and per-layer distance from initialization at log-spaced updates.

    `t` is the optimizer update count. `w_0` lives on the training device, is saved in
    checkpoints and restored on resume, so a resumed run measures from the same origin.
    A LightningModule may define `weight_distance_networks()` returning {name: module} to get
    one `weight_distance/<name>` column per sub-network (a GAN's generator and discriminator).
    """

    def __init__(self, path: str | Path | None, dense_until: int = 10, per_decade: int = 20):
        self.path = Path(path) if path is not None else None
        self.dense_until = dense_until
        self.per_decade = per_decade
        self.initial: dict[str, torch.Tensor] | None = None
        self._names: list[str] = []
        self._params: list[torch.Tensor] = []
        self._initial_list: list[torch.Tensor] = []
        self._layers: dict[str, list[int]] = {}
        self._networks: dict[str, list[int]] = {}
        self._schedule: set[int] = set()
        self._last_recorded = 0
        self._lr_used: float | None = None
        self._columns: list[str] = []

    def state_dict(self) -> dict:
        return {"initial": {k: v.detach().cpu() for k, v in (self.initial or {}).items()}}

    def load_state_dict(self, state_dict: dict) -> None:
        self.initial = dict(state_dict["initial"]) or None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        named = dict(pl_module.named_parameters())
        groups = layer_groups(pl_module)
        self._names = [name for names in groups.values() for name in names]
        self._params = [named[name] for name in self._names]
        if self.initial is None:
            # Taken after the strategy has set up the model, so every rank shares one origin.
            self.initial = {n: p.detach().clone() for n, p in zip(self._names, self._params)}
        missing = set(self._names) - set(self.initial)
        if missing:
            raise RuntimeError(f"checkpointed w_0 lacks parameters {sorted(missing)[:3]}")
        device = self._params[0].device
        self.initial = {n: t.to(device) for n, t in self.initial.items()}
        self._initial_list = [self.initial[n] for n in self._names]
        index = {name: i for i, name in enumerate(self._names)}
        self._layers = {layer: [index[n] for n in names] for layer, names in groups.items()}
        self._networks = {}
        if hasattr(pl_module, "weight_distance_networks"):
            for net_name, net in pl_module.weight_distance_networks().items():
                ids = {id(p) for p in net.parameters()}
                self._networks[net_name] = [i for i, p in enumerate(self._params) if id(p) in ids]
        self._schedule = log_spaced_updates(
            max(1, int(trainer.estimated_stepping_batches)), self.dense_until, self.per_decade
        )
        self._last_recorded = trainer.global_step
        self._columns = self._make_columns()
        if trainer.is_global_zero and self.path is not None:
            self._prepare_file(trainer.global_step)

    def _make_columns(self) -> list[str]:
        columns = ["update", "epoch", "epoch_end", "lr", "train_loss"]
        columns += ["weight_distance", "weight_norm"]
        for net in self._networks:
            columns += [f"weight_distance/{net}", f"weight_norm/{net}"]
        columns += [f"layer_distance/{layer}" for layer in self._layers]
        columns += [f"layer_norm/{layer}" for layer in self._layers]
        return columns

    def _prepare_file(self, resumed_at: int) -> None:
        """Start the file, or keep the rows up to the resumed update and drop any beyond it."""
        assert self.path is not None
        kept: list[dict] = []
        if self.path.exists() and resumed_at > 0:
            with self.path.open(newline="") as handle:
                kept = [row for row in csv.DictReader(handle) if int(row["update"]) <= resumed_at]
        with self.path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self._columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(kept)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        # The scheduler steps before on_train_batch_end: keep the lr this update really used.
        self._lr_used = trainer.optimizers[0].param_groups[0]["lr"]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        update = trainer.global_step
        if update == self._last_recorded:
            return
        epoch_end = batch_idx + 1 == trainer.num_training_batches
        if update in self._schedule or epoch_end:
            self._record(trainer, pl_module, outputs, update, epoch_end)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        # Reached when the last batch was cut short (limit_train_batches, max_steps).
        if trainer.global_step != self._last_recorded:
            self._record(trainer, pl_module, None, trainer.global_step, True)

    def _record(self, trainer, pl_module, outputs, update: int, epoch_end: bool) -> None:
        self._last_recorded = update
        sq_dist, sq_norm = distances_and_norms(self._params, self._initial_list)
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            # Each rank holds its shard's loss; record the global batch's (equal shard sizes).
            loss = trainer.strategy.reduce(loss.detach(), reduce_op="mean")
        row = {
            "update": update,
            "epoch": trainer.current_epoch,
            "epoch_end": int(epoch_end),
            "lr": self._lr_used,
            "train_loss": float(loss) if isinstance(loss, torch.Tensor) else None,
            "weight_distance": math.sqrt(sum(sq_dist)),
            "weight_norm": math.sqrt(sum(sq_norm)),
        }
        for net, ids in self._networks.items():
            row[f"weight_distance/{net}"] = math.sqrt(sum(sq_dist[i] for i in ids))
            row[f"weight_norm/{net}"] = math.sqrt(sum(sq_norm[i] for i in ids))
        for layer, ids in self._layers.items():
            row[f"layer_distance/{layer}"] = math.sqrt(sum(sq_dist[i] for i in ids))
            row[f"layer_norm/{layer}"] = math.sqrt(sum(sq_norm[i] for i in ids))
        self.last_row = row
        if not trainer.is_global_zero:
            return
        metrics = {"weights/distance": row["weight_distance"], "weights/norm": row["weight_norm"]}
        for net in self._networks:
            metrics[f"weights/distance_{net}"] = row[f"weight_distance/{net}"]
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=update)
        if self.path is not None:
            # Append and close at every row: a killed run keeps everything recorded so far.
            with self.path.open("a", newline="") as handle:
                csv.DictWriter(handle, fieldnames=self._columns).writerow(row)
