"""The real two-node Slurm cluster of slurm/local_cluster.sh, started once for the slurm tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "slurm" / "local_cluster.sh"
# Slurm states after which a job never runs again (unless someone requeues it).
ENDED = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL")


def _cluster(action: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(CLUSTER), action], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="session")
def slurm_cluster():
    """Environment for Slurm clients and jobs; stops the cluster at the end if it started it."""
    was_up = _cluster("status").returncode == 0
    started = _cluster("start")
    assert started.returncode == 0, f"local Slurm cluster did not start:\n{started.stderr}"
    conf = started.stdout.strip().removeprefix("export SLURM_CONF=")
    env = dict(os.environ)
    env.update(
        SLURM_CONF=conf,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        PYTHONUNBUFFERED="1",
    )
    env.pop("WANDB_API_KEY", None)
    yield env
    if not was_up:
        stopped = _cluster("stop")
        assert stopped.returncode == 0, stopped.stderr


def job_fields(job_id: str, env: dict) -> dict[str, str]:
    """`scontrol show job` as a dict (JobState, Restarts, ...); empty once Slurm forgot the job."""
    out = subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], env=env, capture_output=True, text=True
    ).stdout
    return dict(item.split("=", 1) for item in out.split() if "=" in item)


def wait_until(predicate, deadline_s: float, what: str, poll_s: float = 0.2):
    """Poll `predicate` until it returns something true, or fail after `deadline_s` seconds."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"gave up after {deadline_s:.0f} s waiting for {what}")


def wait_for_job(job_id: str, env: dict, deadline_s: float, restarts: int = 0) -> dict:
    """Wait until the job ended after `restarts` requeues; return its final scontrol fields."""

    def ended():
        fields = job_fields(job_id, env)
        done = fields.get("JobState") in ENDED and int(fields.get("Restarts", 0)) >= restarts
        return fields if done else None

    try:
        return wait_until(ended, deadline_s, f"Slurm job {job_id} to end", poll_s=0.5)
    except AssertionError:
        subprocess.run(["scancel", job_id], env=env, check=False)
        raise


def sbatch(script: Path, *args: str, env: dict, cwd: Path, name: str) -> str:
    """Submit `script args...` as job `name` from `cwd`; return its job id."""
    result = subprocess.run(
        ["sbatch", "--parsable", f"--job-name={name}", str(script), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().split(";")[0]
