"""The noise-scale callback in real runs: records, no side effects, DDP against one process."""

import csv

import pytest
from conftest import compose, run_cli

from batchgap import train as train_module

TINY = [
    "regime.epochs=2",
    "model.width=32",
    "model.norm=none",
    "num_threads=1",
    "trainer.enable_progress_bar=false",
]


def rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_noise_scale_is_recorded_and_leaves_the_run_unchanged(tmp_path):
    plain = train_module.train(compose(*TINY), tmp_path / "plain")
    measured = train_module.train(
        compose(*TINY, "noise_scale.enabled=true", "noise_scale.every_n_updates=3"),
        tmp_path / "measured",
    )
    assert measured["final_weight_distance"] == plain["final_weight_distance"]
    assert measured["test_loss"] == plain["test_loss"]
    noise = rows(tmp_path / "measured" / "noise.csv")
    assert [int(r["update"]) for r in noise[:3]] == [1, 2, 3]
    assert {r["batch_small"] for r in noise} == {"32"} and {r["batch_big"] for r in noise} == {
        "64"
    }
    assert measured["b_simple"] == pytest.approx(float(noise[-1]["b_simple"]))
    assert measured["noise_trace"] > 0


@pytest.mark.distributed
def test_ddp_estimate_matches_the_single_process_split_batch_estimate(tmp_path):
    common = [
        *TINY,
        "regime.epochs=1",
        "noise_scale.enabled=true",
        "noise_scale.every_n_updates=1",
    ]
    single = run_cli("batchgap.train", *common, f"hydra.run.dir={tmp_path}/single", cwd=tmp_path)
    assert single.returncode == 0, single.stderr[-3000:]
    ddp = run_cli(
        "batchgap.train",
        *common,
        "trainer=ddp_cpu",
        f"hydra.run.dir={tmp_path}/ddp",
        cwd=tmp_path,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    one, two = rows(tmp_path / "single" / "noise.csv"), rows(tmp_path / "ddp" / "noise.csv")
    assert [r["update"] for r in one[:5]] == [r["update"] for r in two[:5]]
    for a, b in zip(one[:5], two[:5]):
        for key in ("sq_norm_small", "sq_norm_big", "b_simple"):
            assert float(a[key]) == pytest.approx(float(b[key]), rel=1e-3), (a["update"], key)
