"""The real command line, in subprocesses, as a user runs it."""

import csv
import json

import pytest
from conftest import read_json, run_cli

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "override, expected",
    [
        ("model=resnet9", "model='resnet9' is unknown; valid: c1, c3, convnet, f1, mlp, resnet20"),
        ("trainer.devices=3", "data.global_batch_size=64 does not divide evenly"),
        ("optim.lr=0", "optim.lr=0 is invalid; it must be a positive number"),
        ("data.global_batch_size=-8", "data.global_batch_size=-8 is invalid"),
        ("data=mnist", "mnist files not found under"),
        ("output_root=/proc/batchgap", "output_root=/proc/batchgap is not a writable directory"),
        ("nonexistent_key=1", "Could not override 'nonexistent_key'. To append to your config"),
        ("debug=fast trainer=ddp_cpu data.global_batch_size=63", "63 / (2 devices x 1 nodes"),
    ],
)
def test_bad_input_fails_in_one_line_before_training(tmp_path, override, expected):
    args = override.split()
    if "output_root" not in override:
        args.append(f"hydra.run.dir={tmp_path}/run")
    if override == "data=mnist":
        args.append(f"data.data_dir={tmp_path}/nothing")
    result = run_cli("batchgap.train", *args, cwd=tmp_path, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and expected in errors[0], result.stderr[-2000:]
    assert "srun" not in result.stderr
    assert not (tmp_path / "run").exists(), "a refused run leaves no directory"


def test_two_job_sweep_leaves_complete_records_in_one_directory(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(
        "batchgap.train",
        "-m",
        "experiment=digits_sweep",
        "data.global_batch_size=32,256",
        "seed=0",
        "regime.epochs=2",
        "num_threads=1",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep"], "nothing outside the sweep"
    for job, batch in zip(jobs, (32, 256)):
        summary = read_json(job / "summary.json")
        assert summary["status"] == "completed"
        assert summary["global_batch_size"] == batch
        assert summary["per_device_batch_size"] == batch
        assert summary["world_size"] == 1
        assert summary["updates"] == 2 * (1257 // batch)
        assert summary["epochs"] == 2
        assert summary["gap"] == pytest.approx(summary["test_err"] - summary["train_err"])
        for key in ("train_loss", "val_err", "test_err", "wall_time_s", "lr", "version"):
            assert summary[key] is not None, key
        with open(job / "weights.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert int(rows[-1]["update"]) == summary["updates"]
        assert float(rows[-1]["weight_distance"]) > float(rows[0]["weight_distance"]) > 0
        assert any(k.startswith("layer_norm/") for k in rows[0])
        assert (job / "config.yaml").exists()
        assert list(job.glob("csv/version_*/metrics.csv"))


def test_debug_fast_and_diverging_run_is_recorded_not_crashed(tmp_path):
    result = run_cli(
        "batchgap.train",
        "debug=fast",
        "optim.lr=1e6",
        "model.norm=none",
        "trainer.limit_train_batches=19",
        f"hydra.run.dir={tmp_path}/run",
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = read_json(tmp_path / "run" / "summary.json")
    assert summary["status"] == "diverged"
    assert summary["diverged_at_update"] >= 1


def test_wandb_offline_run_per_job(tmp_path):
    result = run_cli(
        "batchgap.train",
        "logger=wandb",
        "regime.epochs=1",
        "num_threads=1",
        f"hydra.run.dir={tmp_path}/run",
        cwd=tmp_path,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    run_id = (tmp_path / "run" / "wandb_id.txt").read_text().strip()
    assert runs[0].name.endswith(run_id)
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "completed"
