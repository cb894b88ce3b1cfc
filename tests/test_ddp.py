"""DDP for real on CPU (gloo), through the command line: equal updates, sweeps, failures, nodes.

Every run is tiny (digits, narrow MLP, 1-3 epochs, 1 thread per process) and bounded by a
subprocess timeout; ranks are forked by batchgap, so none can outlive its job.
"""

import csv
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import cli_env, read_json

pytestmark = [pytest.mark.slow, pytest.mark.distributed, pytest.mark.timeout(300)]

PLACEMENT_PREFIXES = ("SLURM_", "LSB_", "OMPI_", "PMI_", "TORCHELASTIC_")
PLACEMENT_VARIABLES = {"LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "RANK", "WORLD_SIZE"}
TINY = ["model.width=32", "num_threads=1", "trainer.process_group_timeout_s=60"]
TRAIN_EXAMPLES = 1257  # digits' training split


def ddp_env(**extra: str) -> dict[str, str]:
    """The CLI environment without any outer launcher's variables, plus `extra`."""
    env = {
        name: value
        for name, value in cli_env().items()
        if not name.startswith(PLACEMENT_PREFIXES)
        and name not in PLACEMENT_VARIABLES | {"MASTER_ADDR", "MASTER_PORT"}
    }
    env.update(extra)
    return env


def start(*args: str, cwd: Path, log: str, **env: str) -> subprocess.Popen:
    """Start `python -m batchgap.train args...` with output to `cwd/log`."""
    with open(cwd / log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "batchgap.train", *args],
            cwd=cwd,
            env=ddp_env(**env),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )


def finish(process: subprocess.Popen, cwd: Path, log: str, timeout: float = 240) -> str:
    """Wait for `process` (killing it past `timeout`) and return its output."""
    try:
        process.wait(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return (cwd / log).read_text()


def weight_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "weights.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def epoch_metrics(run_dir: Path, key: str) -> list[float]:
    (path,) = run_dir.glob("csv/version_*/metrics.csv")
    with open(path, newline="") as handle:
        return [float(row[key]) for row in csv.DictReader(handle) if row.get(key)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie left to a non-reaping init counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return sorted(found)


def test_one_and_two_processes_make_the_same_updates(tmp_path):
    # model.norm=none: with batch norm each process normalizes over its own half batch (ghost
    # batch norm by another name), so 1 and 2 processes would rightly differ.
    common = ["regime.epochs=3", "model.norm=none", *TINY]
    runs = {}
    for preset in ("cpu", "ddp_cpu"):
        args = [f"trainer={preset}", *common, f"hydra.run.dir={tmp_path}/{preset}"]
        runs[preset] = start(*args, cwd=tmp_path, log=f"{preset}.log")
    for preset, process in runs.items():
        output = finish(process, tmp_path, f"{preset}.log")
        assert process.returncode == 0, output[-3000:]

    one, two = (read_json(tmp_path / p / "summary.json") for p in ("cpu", "ddp_cpu"))
    assert (one["world_size"], two["world_size"]) == (1, 2)
    assert two["per_device_batch_size"] * 2 == two["global_batch_size"] == 64
    assert one["updates"] == two["updates"] == 3 * (TRAIN_EXAMPLES // 64)
    rows_one, rows_two = weight_rows(tmp_path / "cpu"), weight_rows(tmp_path / "ddp_cpu")
    assert [r["update"] for r in rows_one] == [r["update"] for r in rows_two]
    for key in ("weight_distance", "train_loss", "lr"):
        assert [float(r[key]) for r in rows_two] == pytest.approx(
            [float(r[key]) for r in rows_one], rel=1e-4, abs=1e-6
        ), key
    for key in ("train/loss", "val/loss", "val/err"):
        curve_one, curve_two = (
            epoch_metrics(tmp_path / "cpu", key),
            epoch_metrics(tmp_path / "ddp_cpu", key),
        )
        assert len(curve_one) == 3 and curve_two == pytest.approx(curve_one, rel=1e-4), key
    for key in ("train_loss", "test_loss", "test_err", "final_weight_distance"):
        assert two[key] == pytest.approx(one[key], rel=1e-4), key


def test_sweep_of_two_process_jobs_runs_each_job_once(tmp_path):
    sweep = tmp_path / "sweep"
    process = start(
        "-m",
        "trainer=ddp_cpu",
        "data.global_batch_size=32,64",
        "regime.epochs=1",
        "logger=wandb",
        *TINY,
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        log="sweep.log",
    )
    output = finish(process, tmp_path, "sweep.log")
    assert process.returncode == 0, output[-3000:]

    # A replayed command line would launch the sweep again and leave a second set of records.
    assert output.count("Launching 2 jobs locally") == 1, output[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep", "sweep.log"]
    assert sorted(p.name for p in sweep.iterdir()) == ["0", "1", "multirun.yaml"]
    for job, batch in zip(("0", "1"), (32, 64)):
        job_dir = sweep / job
        summary = read_json(job_dir / "summary.json")
        assert summary["status"] == "completed"
        assert (summary["world_size"], summary["global_batch_size"]) == (2, batch)
        assert summary["per_device_batch_size"] == batch // 2
        assert summary["updates"] == TRAIN_EXAMPLES // batch
        assert int(weight_rows(job_dir)[-1]["update"]) == summary["updates"]
        assert (job_dir / "checkpoints" / "last.ckpt").exists()
        assert len(list(job_dir.glob("csv/version_*"))) == 1
        # wandb on rank zero only: one offline run per job, under that job's id.
        (run,) = (job_dir / "wandb").glob("offline-run-*")
        assert run.name.endswith((job_dir / "wandb_id.txt").read_text().strip())


def test_a_killed_rank_fails_the_job_and_ends_the_other(tmp_path):
    run_dir = tmp_path / "run"
    process = start(
        "trainer=ddp_cpu",
        "regime.epochs=1000",
        "model.width=16",
        "num_threads=1",
        "trainer.process_group_timeout_s=60",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        log="run.log",
    )
    try:
        deadline = time.monotonic() + 180
        while process.poll() is None and time.monotonic() < deadline:
            if (run_dir / "weights.csv").exists() and len(weight_rows(run_dir)) >= 5:
                break
            time.sleep(0.5)
        ranks = children(process.pid)
        assert len(ranks) == 2, (tmp_path / "run.log").read_text()[-3000:]
        os.kill(ranks[-1], signal.SIGKILL)
    finally:
        output = finish(process, tmp_path, "run.log", timeout=90)

    assert process.returncode not in (0, None), output[-3000:]
    assert not any(alive(pid) for pid in ranks)
    summary = read_json(run_dir / "summary.json")
    assert summary["status"] == "failed"
    assert re.match(r"rank [01] was killed by SIGKILL", summary["error"]), summary["error"]


def test_node_whose_peer_never_joins_fails_after_the_timeout(tmp_path):
    process = start(
        "trainer=multinode",
        "trainer.accelerator=cpu",
        "regime.epochs=1",
        "model.width=16",
        "num_threads=1",
        "trainer.process_group_timeout_s=5",
        f"hydra.run.dir={tmp_path}/run",
        cwd=tmp_path,
        log="node0.log",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(free_port()),
        NODE_RANK="0",
    )
    output = finish(process, tmp_path, "node0.log", timeout=120)
    assert process.returncode == 1, output[-3000:]
    summary = read_json(tmp_path / "run" / "summary.json")
    assert summary["status"] == "failed"
    assert summary["error"].startswith("rank 0 exited with code 1")


def test_two_nodes_without_slurm_train_one_run(tmp_path):
    port = str(free_port())
    nodes = []
    for node_rank in ("0", "1"):
        args = [
            "trainer=multinode",
            "trainer.accelerator=cpu",
            "regime.epochs=2",
            *TINY,
            f"hydra.run.dir={tmp_path}/run",  # one directory: nodes share a file system
        ]
        env = dict(MASTER_ADDR="127.0.0.1", MASTER_PORT=port, NODE_RANK=node_rank)
        nodes.append(start(*args, cwd=tmp_path, log=f"node{node_rank}.log", **env))
    for node_rank, process in enumerate(nodes):
        output = finish(process, tmp_path, f"node{node_rank}.log")
        assert process.returncode == 0, output[-3000:]

    run_dir = tmp_path / "run"
    summary = read_json(run_dir / "summary.json")
    assert summary["status"] == "completed"
    assert (summary["world_size"], summary["num_nodes"], summary["devices"]) == (2, 2, 1)
    assert summary["updates"] == 2 * (TRAIN_EXAMPLES // 64)
    assert summary["test_err"] is not None and summary["final_weight_distance"] > 0
    assert int(weight_rows(run_dir)[-1]["update"]) == summary["updates"]
    assert (run_dir / "checkpoints" / "last.ckpt").exists()
    assert (run_dir / "config.yaml").exists()


def test_world_that_does_not_split_the_batch_stops_before_any_process_starts(tmp_path):
    process = start(
        "trainer=ddp_cpu",
        "data.global_batch_size=63",
        f"hydra.run.dir={tmp_path}/run",
        cwd=tmp_path,
        log="run.log",
    )
    output = finish(process, tmp_path, "run.log", timeout=120)
    assert process.returncode == 2, output[-3000:]
    errors = [line for line in output.splitlines() if "error:" in line]
    assert errors == [
        "batchgap-train: error: data.global_batch_size=63 does not divide evenly: 63 / "
        "(2 devices x 1 nodes x 1 accumulation) = 31.5; use a multiple of 2"
    ]
    assert "Initializing distributed" not in output
