"""The real command line, in subprocesses, as a user runs it."""

import csv
import json

import pytest
from conftest import error_lines, read_json, run_cli

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(
    "override, expected",
    [
        ("model=resnet9", "model='resnet9' is unknown; valid: c1, c3, convnet, f1, mlp, resnet20"),
        ("trainer.devices=3", "data.global_batch_size=64 does not divide evenly"),
        ("optim.lr=0", "optim.lr=0 is invalid; it must be a finite positive number"),
        ("optim.lr=inf", "optim.lr=inf is invalid; it must be a finite positive number"),
        ("data.global_batch_size=1", "model.norm='bn' needs at least 2 examples per device"),
        ("+remedy=sb", "needs an experiment that sets study.* (hoffer_digits)"),
        ("data.global_batch_size=-8", "data.global_batch_size=-8 is invalid"),
        ("data=mnist", "mnist files not found under"),
        ("output_root=/proc/batchgap", "output_root=/proc/batchgap is not a writable directory"),
        ("nonexistent_key=1", "nonexistent_key=1: no such setting; the top-level settings are"),
        ("seed=-1", "seed=-1 is invalid; it must be an integer in [0, 4294967295]"),
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
    errors = error_lines(result)
    assert len(errors) == 1 and expected in errors[0], result.stderr[-2000:]
    assert "srun" not in result.stderr
    assert not (tmp_path / "run").exists(), "a refused run leaves no directory"


def test_an_unwritable_output_root_from_the_environment_is_one_line(tmp_path):
    result = run_cli(
        "batchgap.train", "debug=fast", cwd=tmp_path, env={"BATCHGAP_OUTPUT": "/proc/batchgap"}
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-2000:]
    assert "BATCHGAP_OUTPUT=/proc/batchgap is not a writable directory" in lines[0]


@pytest.mark.parametrize(
    "overrides,expected",
    [
        # The experiment's seeds 0,1,2 times the command line's two batches: job 3 is the first.
        (
            ["experiment=digits_sweep", "data.global_batch_size=32,0"],
            [
                "data.global_batch_size=0 is invalid",
                "(sweep job 3: data.global_batch_size=0 seed=0 experiment=digits_sweep)",
            ],
        ),
        (
            ["data.global_batch_size=64,2048"],
            [
                "data.global_batch_size=2048 exceeds the 1257 training examples of digits",
                "(sweep job 1: data.global_batch_size=2048)",
            ],
        ),
    ],
)
def test_a_bad_job_anywhere_in_a_sweep_stops_it_before_the_first_job(
    tmp_path, overrides, expected
):
    sweep = tmp_path / "sweep"
    result = run_cli(
        "batchgap.train", "-m", *overrides, f"hydra.sweep.dir={sweep}", cwd=tmp_path, timeout=120
    )
    assert result.returncode == 2, result.stderr[-2000:]
    errors = error_lines(result)
    assert len(errors) == 1, result.stderr[-2000:]
    for part in expected:
        assert part in errors[0]
    assert not sweep.exists(), "no job ran"


def test_relaunch_keeps_a_finished_run_and_refuses_a_changed_one(tmp_path, tiny_train_args):
    run = tmp_path / "run"
    args = [*tiny_train_args, f"hydra.run.dir={run}"]
    first = run_cli("batchgap.train", *args, cwd=tmp_path, timeout=120)
    assert first.returncode == 0, first.stderr[-2000:]
    recorded = (run / "summary.json").read_text(), (run / "weights.csv").read_text()

    again = run_cli("batchgap.train", *args, "logger=wandb", cwd=tmp_path, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "already completed, records kept" in again.stdout + again.stderr
    assert ((run / "summary.json").read_text(), (run / "weights.csv").read_text()) == recorded

    changed = run_cli("batchgap.train", *args, "data.global_batch_size=128", cwd=tmp_path)
    assert changed.returncode == 2, changed.stderr[-2000:]
    errors = error_lines(changed)
    assert len(errors) == 1, changed.stderr[-2000:]
    assert "holds a checkpointed run with data.global_batch_size=64, not 128" in errors[0]
    assert ((run / "summary.json").read_text(), (run / "weights.csv").read_text()) == recorded


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


def test_study_trains_a_sweep_and_writes_its_report_under_the_output_root(tmp_path):
    result = run_cli(
        "batchgap.study",
        *("data.global_batch_size=64,256", "seed=0", "regime.epochs=2", "model.width=32"),
        "num_threads=1",
        cwd=tmp_path,
        env={"BATCHGAP_OUTPUT": str(tmp_path / "out")},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (sweep,) = (tmp_path / "out" / "sweeps" / "digits_sweep").iterdir()
    assert sorted(p.name for p in sweep.iterdir() if p.name.isdigit()) == ["0", "1"]
    report = (sweep / "analysis" / "report.md").read_text()
    assert "Runs found: 2; included: 2" in report
    assert f"report: {sweep}/analysis/report.md" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"], "nothing outside the root"


def test_study_of_an_unknown_experiment_is_one_line(tmp_path):
    result = run_cli("batchgap.study", "--experiment", "nope", cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "--experiment 'nope' is unknown; valid: critical_batch_digits" in lines[0]
    assert not (tmp_path / "outputs").exists()


def test_a_crash_while_the_job_is_set_up_is_recorded_as_failed(tmp_path):
    # Lightning refuses an unknown profiler name when the Trainer is built, before the fit.
    result = run_cli(
        "batchgap.train",
        "+trainer.profiler=nonsense",
        "regime.epochs=1",
        f"hydra.run.dir={tmp_path}/run",
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr[-3000:]
    summary = read_json(tmp_path / "run" / "summary.json")
    assert summary["status"] == "failed"
    assert "profiler" in summary["error"]


def test_an_experiment_from_a_config_dir_of_ones_own_runs_and_is_checked(tmp_path):
    own = tmp_path / "myconf" / "experiment"
    own.mkdir(parents=True)
    (own / "mine.yaml").write_text(
        "# @package _global_\nexperiment_name: mine\nregime:\n  epochs: 1\nmodel:\n  width: 16\n"
    )
    base = ["--config-dir", str(tmp_path / "myconf"), "experiment=mine"]

    done = run_cli("batchgap.train", *base, f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert read_json(tmp_path / "run" / "summary.json")["experiment_name"] == "mine"

    # The same one-line refusal, given as the job starts.
    refused = run_cli(
        "batchgap.train", *base, "seed=-1", f"hydra.run.dir={tmp_path}/bad", cwd=tmp_path
    )
    assert refused.returncode == 2, refused.stderr[-3000:]
    (error,) = error_lines(refused)
    assert "seed=-1 is invalid" in error
    assert not (tmp_path / "bad").exists()
