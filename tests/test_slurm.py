"""Slurm for real: sbatch templates, the submitit sweep launcher and requeue on a local cluster."""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest
from conftest import REPO, error_lines, read_json, run_cli
from hydra import compose, initialize_config_module
from slurm_cluster import sbatch, wait_for_job, wait_until

from batchgap.errors import ConfigError
from batchgap.slurm import check_slurm_tasks, job_to_requeue
from batchgap.slurm_launcher import check_launcher_shape

TINY = ["model.width=32", "num_threads=1", "trainer.enable_progress_bar=false"]
# Long enough (40 epochs x 78 updates) to requeue it after its first checkpoint, seconds in all.
REQUEUED_RUN = [*TINY, "regime.epochs=40", "data.global_batch_size=16"]
# Records that differ between any two runs, interrupted or not.
UNEQUAL = ("wall_time_s",)


def batch_env(**variables: str) -> dict[str, str]:
    return {"SLURM_JOB_NAME": "batchgap", **variables}


def test_tasks_per_node_must_be_given_and_match_devices():
    check_slurm_tasks(2, batch_env(SLURM_NTASKS="4", SLURM_NTASKS_PER_NODE="2"))
    check_slurm_tasks(1, batch_env(SLURM_NTASKS="1"))
    check_slurm_tasks(3, {"SLURM_JOB_NAME": "bash", "SLURM_NTASKS": "2"})  # interactive
    check_slurm_tasks(3, {})  # not under Slurm
    with pytest.raises(ConfigError, match="SLURM_NTASKS=2 tasks without --ntasks-per-node"):
        check_slurm_tasks(1, batch_env(SLURM_NTASKS="2"))
    with pytest.raises(ConfigError, match="trainer.devices=2 but .* SLURM_NTASKS_PER_NODE=1"):
        check_slurm_tasks(2, batch_env(SLURM_NTASKS="2", SLURM_NTASKS_PER_NODE="1"))


def test_requeue_names_the_array_task_or_the_job():
    assert job_to_requeue({"SLURM_JOB_ID": "42"}) == "42"
    array = {"SLURM_JOB_ID": "43", "SLURM_ARRAY_JOB_ID": "40", "SLURM_ARRAY_TASK_ID": "3"}
    assert job_to_requeue(array) == "40_3"


def multirun_config(*overrides: str):
    with initialize_config_module(config_module="batchgap.conf", version_base="1.3"):
        return compose(
            config_name="config",
            overrides=["hydra/launcher=slurm", *overrides],
            return_hydra_config=True,
        )


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["hydra.launcher.tasks_per_node=1", "trainer.devices=2"], "tasks_per_node=1 disagrees"),
        (["hydra.launcher.nodes=2"], "hydra.launcher.nodes=2 disagrees with trainer.num_nodes=1"),
        (["trainer.accelerator=gpu"], "needs hydra.launcher.gpus_per_node=1"),
    ],
)
def test_launcher_shape_must_follow_the_trainer(overrides, expected):
    with pytest.raises(ConfigError, match=expected):
        check_launcher_shape(multirun_config(*overrides))


def test_launcher_shape_follows_the_trainer_by_default():
    config = multirun_config("trainer.devices=2", "trainer.num_nodes=3")
    assert (config.hydra.launcher.tasks_per_node, config.hydra.launcher.nodes) == (2, 3)
    assert config.hydra.launcher.additional_parameters.signal == "USR1@90"
    check_launcher_shape(config)


@pytest.mark.slow
@pytest.mark.parametrize(
    "override, expected",
    [
        ("hydra.launcher.tasks_per_node=2", "hydra.launcher.tasks_per_node=2 disagrees with"),
        ("trainer.num_nodes=1,2", "trainer.num_nodes is swept, but hydra/launcher=slurm"),
    ],
)
def test_bad_slurm_sweep_fails_in_one_line_before_submission(tmp_path, override, expected):
    result = run_cli(
        "batchgap.train",
        "-m",
        "hydra/launcher=slurm",
        override,
        f"hydra.sweep.dir={tmp_path}/sweep",
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    errors = error_lines(result)
    assert len(errors) == 1 and expected in errors[0], result.stderr[-2000:]
    assert not (tmp_path / "sweep" / ".submitit").exists()


def job_log(tmp_path, name: str, job_id: str) -> str:
    path = tmp_path / f"{name}-{job_id}.out"
    return path.read_text() if path.exists() else f"(no log at {path})"


@pytest.mark.slurm
@pytest.mark.slow
def test_multi_node_template_trains_on_two_nodes(slurm_cluster, tmp_path):
    env = {**slurm_cluster, "BATCHGAP_OUTPUT": str(tmp_path / "out")}
    args = [*TINY, "regime.epochs=2", "trainer.strategy=ddp", "trainer.process_group_timeout_s=60"]
    job = sbatch(REPO / "slurm/multi_node.sbatch", *args, env=env, cwd=tmp_path, name="mn")
    fields = wait_for_job(job, env, deadline_s=150)

    log = job_log(tmp_path, "mn", job)
    assert fields["JobState"] == "COMPLETED", log[-3000:]
    assert fields["NodeList"] == "n[1-2]" and fields["NumNodes"] == "2", fields
    run_dir = tmp_path / "out" / "slurm" / "mn" / job
    summary = read_json(run_dir / "summary.json")
    assert summary["status"] == "completed"
    assert (summary["num_nodes"], summary["devices"], summary["world_size"]) == (2, 1, 2)
    assert summary["per_device_batch_size"] == 32
    assert summary["updates"] == 2 * summary["updates_per_epoch"]
    for key in ("train_err", "val_err", "test_err", "gap", "final_weight_distance"):
        assert summary[key] is not None, key
    with (run_dir / "weights.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert int(rows[-1]["update"]) == summary["updates"]
    assert (run_dir / "checkpoints" / "last.ckpt").exists()
    assert (run_dir / "config.yaml").exists() and (run_dir / "csv" / "version_0").exists()
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in log


@pytest.mark.slurm
@pytest.mark.slow
def test_sweep_through_the_slurm_launcher_runs_each_job_once(slurm_cluster, tmp_path):
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        [sys.executable, "-m", "batchgap.train", "-m", "hydra/launcher=slurm"]
        + ["data.global_batch_size=32,64", "regime.epochs=1", *TINY, f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path,
        env=slurm_cluster,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]

    assert sorted(p.name for p in sweep.iterdir()) == [".submitit", "0", "1", "multirun.yaml"]
    for job_num, batch in ((0, 32), (1, 64)):
        summary = read_json(sweep / str(job_num) / "summary.json")
        assert summary["status"] == "completed"
        assert summary["global_batch_size"] == batch
        assert summary["updates"] == summary["updates_per_epoch"]
    # One array of two tasks, each with its own submitit log.
    logs = sorted(p.name for p in (sweep / ".submitit").glob("*_*/*_log.out"))
    assert len(logs) == 2 and logs[0].split("_")[0] == logs[1].split("_")[0], logs


def records(run_dir) -> tuple[dict, str]:
    summary = read_json(run_dir / "summary.json")
    return {k: v for k, v in summary.items() if k not in UNEQUAL}, (
        run_dir / "weights.csv"
    ).read_text()


@pytest.mark.slurm
@pytest.mark.slow
def test_requeued_jobs_resume_and_end_with_uninterrupted_records(slurm_cluster, tmp_path):
    """One job requeued by scontrol, one by the USR1 warning: both end as if uninterrupted."""
    env = {**slurm_cluster, "BATCHGAP_OUTPUT": str(tmp_path / "out")}
    template = REPO / "slurm/single_node.sbatch"
    jobs = {
        "ref": sbatch(template, *REQUEUED_RUN, env=env, cwd=tmp_path, name="ref"),
        "scontrol": sbatch(template, *REQUEUED_RUN, env=env, cwd=tmp_path, name="scontrol"),
        "usr1": sbatch(
            template, *REQUEUED_RUN, "logger=wandb", env=env, cwd=tmp_path, name="usr1"
        ),
    }
    run_dirs = {name: tmp_path / "out" / "slurm" / name / job for name, job in jobs.items()}

    # Interrupt each as soon as it has a checkpoint: several epochs before its end.
    for name, command in (
        ("scontrol", ["scontrol", "requeue"]),
        ("usr1", ["scancel", "-s", "USR1"]),
    ):
        checkpoint = run_dirs[name] / "checkpoints" / "last.ckpt"
        wait_until(checkpoint.exists, 150, f"the first checkpoint of {name}")
        subprocess.run([*command, jobs[name]], env=env, check=True)
    ended = {
        name: wait_for_job(job, env, deadline_s=200, restarts=0 if name == "ref" else 1)
        for name, job in jobs.items()
    }

    ref_summary, ref_weights = records(run_dirs["ref"])
    assert ref_summary["status"] == "completed"
    for name in ("scontrol", "usr1"):
        log = job_log(tmp_path, name, jobs[name])
        assert ended[name]["JobState"] == "COMPLETED", log[-3000:]
        assert ended[name]["Restarts"] == "1"
        # The first start ended early (one "completed" line in all); the second resumed.
        assert log.count("] - completed: ") == 1, log[-3000:]
        assert f"resuming from {run_dirs[name]}/checkpoints/last.ckpt" in log
        summary, weights = records(run_dirs[name])
        assert summary == ref_summary
        assert weights == ref_weights
        assert sorted(p.name for p in (run_dirs[name] / "csv").iterdir()) == [
            "version_0",
            "version_1",
        ]
    assert "requeue signal: saved" in job_log(tmp_path, "usr1", jobs["usr1"])
    # The restarted job continued the same wandb run.
    wandb_id = (run_dirs["usr1"] / "wandb_id.txt").read_text().strip()
    offline_runs = list((run_dirs["usr1"] / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 2 and all(p.name.endswith(wandb_id) for p in offline_runs)


@pytest.mark.slurm
@pytest.mark.slow
def test_ntasks_without_ntasks_per_node_fails_in_one_line(slurm_cluster, tmp_path):
    result = subprocess.run(
        ["srun", "--nodes=2", "--ntasks=2", "batchgap-train", "trainer.num_nodes=2", *TINY]
        + [f"hydra.run.dir={tmp_path}/run"],
        cwd=tmp_path,
        env=slurm_cluster,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    errors = error_lines(result, "batchgap-train: error:")
    # One line from each of the two tasks.
    assert len(errors) == 2, result.stderr[-2000:]
    assert "SLURM_NTASKS=2 tasks without --ntasks-per-node" in errors[0]
    assert not (tmp_path / "run" / "checkpoints").exists()
