"""Time per update: batchgap's Lightning path against a hand-written PyTorch loop.

Both train the same MLP on the same held digits tensors with the same SGD and per-update
schedule; only the loop around them differs.
"""

from __future__ import annotations

import time

import lightning as L
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from batchgap.callbacks import DivergenceGuard, WeightDistance
from batchgap.data.datamodule import ClassificationData
from batchgap.models.mlp import MLP
from batchgap.modules.classifier import Classifier

WARMUP_UPDATES = 10

DATA = OmegaConf.create(
    dict(
        name="digits",
        global_batch_size=64,
        eval_batch_size=1024,
        val_fraction=0.15,
        test_fraction=0.15,
        split_seed=0,
        on_device=True,
        data_dir=None,
        download=False,
    )
)


def make_net(seed: int = 0) -> MLP:
    torch.manual_seed(seed)
    return MLP((1, 8, 8), 10, width=512, depth=2, norm="bn")


def sgd(params, lr):
    return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)


class UpdateTimer(L.Callback):
    """Seconds between the end of update WARMUP_UPDATES and the end of the last update."""

    def __init__(self, last_update: int):
        self.last_update = last_update
        self.start = self.seconds = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == WARMUP_UPDATES:
            self.start = time.perf_counter()
        elif trainer.global_step == self.last_update:
            self.seconds = time.perf_counter() - self.start


def lightning_updates(
    batch: int, updates: int, track: bool = True, tmp_dir: str = "/tmp/batchgap-bench"
) -> float:
    """Seconds per update of batchgap's configuration: CSV log, divergence guard, tracking."""
    data = ClassificationData(DATA, batch, 1024, shuffle_seed=0)
    module = Classifier(
        make_net(),
        optimizer=sgd,
        lr=0.1,
        lr_milestones=[0.5, 0.75],
        lr_gamma=0.1,
    )
    total = WARMUP_UPDATES + updates
    timer = UpdateTimer(total)
    callbacks = [timer, DivergenceGuard()]
    if track:
        callbacks.append(WeightDistance(None))
    per_epoch = 1257 // batch
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=total,
        limit_val_batches=0,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        logger=L.pytorch.loggers.CSVLogger(tmp_dir, name="bench"),
        log_every_n_steps=max(1, min(50, per_epoch)),
        callbacks=callbacks,
        use_distributed_sampler=False,
    )
    trainer.fit(module, datamodule=data)
    return timer.seconds / updates


def plain_updates(batch: int, updates: int) -> float:
    """Seconds per update of a hand-written loop over the same held tensors."""
    data = ClassificationData(DATA, batch, 1024, shuffle_seed=0)
    x = torch.from_numpy(data.splits["train"].x)
    y = torch.from_numpy(data.splits["train"].y)
    net = make_net()
    optimizer = sgd(net.parameters(), 0.1)
    total = WARMUP_UPDATES + updates
    drops = [round(0.5 * total), round(0.75 * total)]
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda u: 0.1 ** sum(u >= d for d in drops)
    )
    net.train()
    step = 0
    start = None
    generator = torch.Generator().manual_seed(0)
    while step < total:
        order = torch.randperm(len(y), generator=generator)
        for begin in range(0, len(y) - batch + 1, batch):
            idx = order[begin : begin + batch]
            loss = F.cross_entropy(net(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if step == WARMUP_UPDATES:
                start = time.perf_counter()
            if step == total:
                return (time.perf_counter() - start) / updates
    raise AssertionError("unreachable")


def data_path_seconds(batch: int, batches: int) -> tuple[float, float]:
    """Seconds per batch from batchgap's held-tensor loader and from DataLoader(TensorDataset)."""
    from torch.utils.data import DataLoader, TensorDataset

    from batchgap.data.batches import HeldTensors, training_batches

    data = ClassificationData(DATA, batch, 1024, shuffle_seed=0)
    x = torch.from_numpy(data.splits["train"].x)
    y = torch.from_numpy(data.splits["train"].y)

    def drain(loader) -> float:
        count = 0
        start = time.perf_counter()
        while count < batches:
            for _ in loader:
                count += 1
                if count == batches:
                    break
        return (time.perf_counter() - start) / batches

    ours = training_batches(HeldTensors(x, y), batch, rank=0, world_size=1, seed=0)
    ours.sampler.set_epoch(0)
    reference = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True, drop_last=True)
    return drain(ours), drain(reference)


class _TinyRegression(L.LightningModule):
    """A 4-to-1 linear model: its step costs next to nothing, so the loop around it shows."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return F.mse_loss(self.linear(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def loop_floor_seconds(updates: int) -> tuple[float, float]:
    """Seconds per update of Lightning's bare loop and of a plain loop around a trivial step.

    No logger, progress bar, checkpointing or callbacks besides the timer: the difference is
    what Lightning's loop itself costs per update on this machine, before anything of ours.
    """
    from torch.utils.data import DataLoader

    torch.manual_seed(0)
    x, y = torch.randn(64, 4), torch.randn(64, 1)
    total = WARMUP_UPDATES + updates

    module = _TinyRegression()
    optimizer = module.configure_optimizers()
    for step in range(1, total + 1):
        loss = module.training_step((x, y), step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step == WARMUP_UPDATES:
            start = time.perf_counter()
    plain = (time.perf_counter() - start) / updates

    timer = UpdateTimer(total)
    trainer = L.Trainer(
        accelerator="cpu",
        devices=1,
        max_steps=total,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        callbacks=[timer],
    )
    trainer.fit(_TinyRegression(), DataLoader([(x, y)] * total, batch_size=None))
    return plain, timer.seconds / updates
