import csv
import functools

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from batchgap.data.batches import HeldTensors, training_batches
from batchgap.modules.classifier import Classifier
from batchgap.modules.lean import LeanModule


def test_hook_name_bypasses_module_checks_and_parameters_still_register():
    module = LeanModule()
    module._current_fx_name = "training_step"
    assert module.__dict__["_current_fx_name"] == "training_step"
    module.scale = nn.Parameter(torch.ones(2))
    assert "scale" in dict(module.named_parameters())


def test_train_metrics_reach_the_csv_at_lightnings_steps_and_epochs(tmp_path):
    torch.manual_seed(0)
    data = HeldTensors(torch.randn(24, 5), torch.randint(0, 3, (24,)))
    loader = training_batches(data, batch_size=8, rank=0, world_size=1, seed=0)
    module = Classifier(
        nn.Linear(5, 3),
        optimizer=functools.partial(torch.optim.SGD),
        lr=0.1,
        lr_milestones=[],
        lr_gamma=0.1,
    )
    trainer = L.Trainer(
        accelerator="cpu",
        max_epochs=2,
        logger=L.pytorch.loggers.CSVLogger(tmp_path, name="csv", version=0),
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        limit_val_batches=0,
    )
    trainer.fit(module, train_dataloaders=loader, val_dataloaders=DataLoader([]))
    with open(tmp_path / "csv" / "version_0" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    steps = [(int(r["step"]), int(r["epoch"])) for r in rows if r["train/loss_step"]]
    assert steps == [(0, 0), (1, 0), (2, 0), (3, 1), (4, 1), (5, 1)]
    step_loss = [float(r["train/loss_step"]) for r in rows if r["train/loss_step"]]
    epochs = [r for r in rows if r["train/loss"]]
    assert [(int(r["step"]), int(r["epoch"])) for r in epochs] == [(2, 0), (5, 1)]
    # Equal batches: the epoch's loss is the mean of its updates' losses.
    for epoch, row in enumerate(epochs):
        assert float(row["train/loss"]) == pytest.approx(
            sum(step_loss[3 * epoch : 3 * epoch + 3]) / 3, rel=1e-5
        )
        assert 0.0 <= float(row["train/err"]) <= 1.0
