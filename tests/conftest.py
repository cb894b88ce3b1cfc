"""Shared test helpers: run the real CLI in a subprocess, with a bounded thread count."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from slurm_cluster import slurm_cluster  # noqa: F401  (session fixture of the slurm tests)

REPO = Path(__file__).resolve().parents[1]


def cli_env(threads: int = 1) -> dict[str, str]:
    """Environment for CLI subprocesses: few threads (2 cores shared) and no wandb network."""
    env = dict(os.environ)
    env.update(
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        PYTHONUNBUFFERED="1",
    )
    env.pop("WANDB_API_KEY", None)
    return env


def run_cli(module: str, *args: str, cwd: Path, timeout: float = 300, threads: int = 1, env=None):
    """Run `python -m module args...` (with `env` added) and return the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env={**cli_env(threads), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def error_lines(result: subprocess.CompletedProcess, marker: str = "error:") -> list[str]:
    """The lines of a command's stderr that report an error."""
    return [line for line in result.stderr.splitlines() if marker in line]


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


@pytest.fixture
def tiny_train_args() -> list[str]:
    """Overrides for a real but seconds-long digits run."""
    return [
        "regime.epochs=2",
        "model.width=32",
        "trainer.enable_progress_bar=false",
        "num_threads=1",
    ]


def compose(*overrides: str):
    """The resolved run config, as `batchgap-train overrides...` would see it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    with initialize_config_module(config_module="batchgap.conf", version_base="1.3"):
        return hydra_compose(config_name="config", overrides=list(overrides))
