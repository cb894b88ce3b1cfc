"""Whether a launch into an existing run directory may resume it, or has nothing left to do."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from batchgap.errors import ConfigError

# Statuses after which training never continues: a re-launch keeps the records as they are.
FINISHED = ("completed", "diverged", "collapsed")

# Settings a resumed run may change: how it runs and where it writes, not what it computes.
RUN_ONLY_KEYS = (
    "num_threads",
    "resume",
    "output_root",
    "logger",
    "perf",
    "trainer.enable_progress_bar",
    "trainer.process_group_timeout_s",
)
_PATH_SUFFIXES = ("dir", "path", "root", "cache")


def _run_only(key: str) -> bool:
    if key.split(".")[-1].endswith(_PATH_SUFFIXES):
        return True
    return any(key == k or key.startswith(f"{k}.") for k in RUN_ONLY_KEYS)


def _flat(node, prefix: str = "") -> dict:
    if isinstance(node, dict):
        flat = {}
        for key, value in node.items():
            flat.update(_flat(value, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: node}


def check_resume(cfg: DictConfig, run_dir: Path) -> dict | None:
    """The recorded summary when the run in `run_dir` already finished, else None.

    Raises ConfigError when `run_dir` holds a checkpoint of a run configured otherwise: its
    records would mix two settings.
    """
    saved = run_dir / "config.yaml"
    if not (cfg.resume and (run_dir / "checkpoints" / "last.ckpt").exists() and saved.is_file()):
        return None
    recorded = _flat(OmegaConf.to_container(OmegaConf.load(saved)))
    asked = _flat(OmegaConf.to_container(cfg, resolve=True))
    absent = "(absent)"
    for key in sorted(recorded.keys() | asked.keys()):
        before, now = recorded.get(key, absent), asked.get(key, absent)
        if not _run_only(key) and before != now:
            raise ConfigError(
                f"{run_dir} holds a checkpointed run with {key}={before!r}, not {now!r}; "
                "resume it unchanged, choose another hydra.run.dir, or start over with "
                "resume=false"
            )
    summary_path = run_dir / "summary.json"
    try:
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    except ValueError:
        return None
    return summary if summary.get("status") in FINISHED else None
