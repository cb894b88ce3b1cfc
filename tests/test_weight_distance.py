import csv
import math
import time

import lightning as L
import pytest
import torch
from conftest import compose

from batchgap import train as train_module
from batchgap.callbacks.weight_distance import distances_and_norms, layer_groups
from batchgap.records import read_summary

TINY = ["regime.epochs=3", "model.width=16", "num_threads=1", "trainer.enable_progress_bar=false"]


def test_distance_and_norm_match_a_hand_computation():
    params = [torch.tensor([3.0, 4.0]), torch.tensor([[1.0, 1.0], [1.0, 1.0]])]
    initial = [torch.tensor([0.0, 0.0]), torch.tensor([[1.0, 1.0], [1.0, 0.0]])]
    sq_dist, sq_norm = distances_and_norms(params, initial)
    assert sq_dist == pytest.approx([25.0, 1.0])
    assert sq_norm == pytest.approx([25.0, 4.0])


def test_layers_group_weight_and_bias():
    net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    assert layer_groups(net) == {"0": ["0.weight", "0.bias"], "2": ["2.weight", "2.bias"]}


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_recorded_distance_equals_final_weights_minus_initial(tmp_path):
    summary = train_module.train(compose(*TINY), tmp_path)
    checkpoint = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    w0 = next(v for k, v in checkpoint["callbacks"].items() if "WeightDistance" in k)["initial"]
    weights = checkpoint["state_dict"]
    expected = math.sqrt(sum(float((weights[k] - w0[k]).pow(2).sum()) for k in w0))
    rows = read_rows(tmp_path / "weights.csv")
    assert int(rows[-1]["update"]) == summary["updates"] == 3 * 19
    assert float(rows[-1]["weight_distance"]) == pytest.approx(expected, rel=1e-5)
    assert summary["final_weight_distance"] == pytest.approx(expected, rel=1e-5)
    assert [int(r["update"]) for r in rows[:10]] == list(range(1, 11))
    assert sum(int(r["epoch_end"]) for r in rows) == 3


class CrashInSecondEpoch(L.Callback):
    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            raise RuntimeError("simulated node failure")


def test_resume_restores_w0_and_update_count_and_matches_uninterrupted(tmp_path, monkeypatch):
    reference = train_module.train(compose(*TINY), tmp_path / "reference")

    crashing = type("Guard", (train_module.DivergenceGuard, CrashInSecondEpoch), {})
    monkeypatch.setattr(train_module, "DivergenceGuard", crashing)
    with pytest.raises(RuntimeError, match="simulated node failure"):
        train_module.train(compose(*TINY), tmp_path / "resumed")
    failed = read_summary(tmp_path / "resumed")
    assert failed["status"] == "failed" and "simulated" in failed["error"]
    monkeypatch.undo()

    resumed = train_module.train(compose(*TINY), tmp_path / "resumed")
    assert resumed["status"] == "completed"
    assert resumed["updates"] == reference["updates"]
    for key in ("train_err", "test_loss", "final_weight_distance"):
        assert resumed[key] == reference[key], key
    assert read_rows(tmp_path / "resumed" / "weights.csv") == read_rows(
        tmp_path / "reference" / "weights.csv"
    )


class InterruptInSecondEpoch(L.Callback):
    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == 1:
            raise KeyboardInterrupt


def test_ctrl_c_is_recorded_as_interrupted_and_resumes(tmp_path, monkeypatch):
    interrupting = type("Guard", (train_module.DivergenceGuard, InterruptInSecondEpoch), {})
    monkeypatch.setattr(train_module, "DivergenceGuard", interrupting)
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        train_module.train(compose(*TINY), tmp_path)
    interrupted = read_summary(tmp_path)
    assert interrupted["status"] == "interrupted"
    # Stopped as the second epoch began: one epoch's updates made.
    assert interrupted["updates"] == interrupted["updates_per_epoch"] > 0
    monkeypatch.undo()
    cfg = compose(*TINY)
    began = time.time()
    resumed = train_module.train(cfg, tmp_path)
    this_start = time.time() - began
    assert resumed["status"] == "completed"
    # The wall time counts both starts, not the last one alone.
    earlier = interrupted["wall_time_s"]
    assert earlier > 0
    assert earlier + 0.9 * this_start < resumed["wall_time_s"] <= earlier + this_start + 1e-3
