"""An offline-first wandb run per job: grouped by sweep, same id across requeues."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from batchgap.errors import ConfigError

MODES = ("offline", "online", "disabled")
WANDB_DIRS = {"WANDB_CACHE_DIR": "cache", "WANDB_DATA_DIR": "data", "WANDB_CONFIG_DIR": "config"}
# Read once, before any job of this process sets them for its own run directory.
USER_SET = frozenset(v for v in WANDB_DIRS if v in os.environ)


def run_id(run_dir: Path) -> str:
    """A wandb id stored in the run directory, so a resumed job continues the same wandb run."""
    path = run_dir / "wandb_id.txt"
    if path.exists():
        return path.read_text().strip()
    new_id = uuid.uuid4().hex[:12]
    path.write_text(new_id + "\n")
    return new_id


def sweep_group(cfg: DictConfig) -> str:
    """The group a job's wandb run joins: the configured one, else its sweep directory."""
    if cfg.logger.wandb.get("group"):
        return str(cfg.logger.wandb.group)
    try:
        hydra_cfg = HydraConfig.get()
    except ValueError:
        return str(cfg.experiment_name)
    if hydra_cfg.mode is not None and hydra_cfg.mode.name == "MULTIRUN":
        return Path(hydra_cfg.sweep.dir).name
    return str(cfg.experiment_name)


def make_wandb_logger(cfg: DictConfig, run_dir: Path):
    """A Lightning WandbLogger writing under `run_dir/wandb`, offline unless told otherwise."""
    from lightning.pytorch.loggers import WandbLogger

    mode = cfg.logger.wandb.get("mode", "offline")
    if mode not in MODES:
        raise ConfigError(f"logger.wandb.mode={mode!r} is unknown; valid: {', '.join(MODES)}")
    # wandb keeps caches, staging files and its service's debug logs under the home directory;
    # keep them in the run directory unless the user chose a place.
    for variable, sub_dir in WANDB_DIRS.items():
        if variable not in USER_SET:
            os.environ[variable] = str(run_dir / "wandb" / sub_dir)
    return WandbLogger(
        project=cfg.logger.wandb.project,
        save_dir=str(run_dir),
        id=run_id(run_dir),
        name=run_dir.name,
        group=sweep_group(cfg),
        mode=mode,
        resume="allow",
        config=OmegaConf.to_container(cfg, resolve=True),
    )


def finish_wandb(failed: bool) -> None:
    """Close the active wandb run, if any, marking it failed when the job raised."""
    import sys

    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish(exit_code=1 if failed else 0)
