"""What a job started by Slurm needs: its task layout checked, and a way to requeue itself."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Mapping

from lightning.pytorch.plugins.environments import SLURMEnvironment

from batchgap.errors import ConfigError

log = logging.getLogger(__name__)

# Job names Lightning treats as an interactive shell (salloc/srun bash), not as a batch run.
INTERACTIVE_JOB_NAMES = ("bash", "interactive")


def started_by_slurm(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether Slurm started this process as a task of a batch job (as Lightning decides it)."""
    return "SLURM_NTASKS" in environ and environ.get("SLURM_JOB_NAME") not in INTERACTIVE_JOB_NAMES


def check_slurm_tasks(devices: int, environ: Mapping[str, str] = os.environ) -> None:
    """Raise ConfigError when Slurm's task layout cannot give `devices` processes per node.

    Slurm must say how many tasks run on each node (--ntasks-per-node), and that count must be
    trainer.devices; node counts and the total are checked with the rest of the placement.
    """
    if not started_by_slurm(environ):
        return
    ntasks = environ["SLURM_NTASKS"]
    per_node = environ.get("SLURM_NTASKS_PER_NODE")
    if per_node is None:
        if ntasks == "1":
            return
        raise ConfigError(
            f"Slurm started SLURM_NTASKS={ntasks} tasks without --ntasks-per-node, so the "
            f"tasks per node are unknown; submit with --nodes=N --ntasks-per-node={devices} "
            f"(trainer.devices) instead of --ntasks"
        )
    if not per_node.isdigit() or int(per_node) != devices:
        raise ConfigError(
            f"trainer.devices={devices} but Slurm runs SLURM_NTASKS_PER_NODE={per_node} tasks "
            f"per node; set trainer.devices={per_node} or submit with --ntasks-per-node={devices}"
        )


def slurm_plugins() -> list:
    """Lightning's Slurm environment with its auto-requeue off: RequeueOnSignal owns requeueing."""
    if not started_by_slurm():
        return []
    return [SLURMEnvironment(auto_requeue=False)]


def job_to_requeue(environ: Mapping[str, str] = os.environ) -> str:
    """This job as scontrol names it: `<array job>_<task>` inside an array, else the job id."""
    array_job = environ.get("SLURM_ARRAY_JOB_ID")
    if array_job is not None:
        return f"{array_job}_{environ['SLURM_ARRAY_TASK_ID']}"
    return environ["SLURM_JOB_ID"]


def requeue_job(environ: Mapping[str, str] = os.environ) -> None:
    """Ask Slurm to requeue this job; Slurm then ends its tasks and starts the job again."""
    job = job_to_requeue(environ)
    result = subprocess.run(
        ["scontrol", "requeue", job], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"scontrol requeue {job} failed: {result.stderr.strip()}")
    log.info("requeued Slurm job %s", job)
