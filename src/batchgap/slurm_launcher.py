"""A Slurm sweep's shape checked against the trainer before anything is submitted.

`hydra/launcher=slurm` submits one job array whose every task has the same nodes and tasks per
node, so those must equal trainer.num_nodes and trainer.devices, and cannot be swept.
"""

from __future__ import annotations

import sys

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from batchgap.errors import ConfigError

# Launcher key -> the trainer key it must equal.
SHAPE = {"nodes": "num_nodes", "tasks_per_node": "devices"}
SHAPE_OVERRIDES = ("trainer", "trainer.num_nodes", "trainer.devices")
GPU_ACCELERATORS = ("gpu", "cuda")


def swept_shape_keys(config: DictConfig) -> list[str]:
    """The trainer-shape keys a sweep varies, from the command line or the sweeper's params."""
    overrides = list(config.hydra.overrides.task)
    params = config.hydra.sweeper.get("params") or {}
    overrides += [f"{key}={value}" for key, value in params.items()]
    parsed = OverridesParser.create().parse_overrides(overrides)
    return [
        o.key_or_group
        for o in parsed
        if o.is_sweep_override() and o.key_or_group in SHAPE_OVERRIDES
    ]


def check_launcher_shape(config: DictConfig) -> None:
    """Raise ConfigError (one line) when the job array cannot run the configured trainer."""
    launcher, trainer = config.hydra.launcher, config.trainer
    for launcher_key, trainer_key in SHAPE.items():
        if launcher[launcher_key] != trainer[trainer_key]:
            raise ConfigError(
                f"hydra.launcher.{launcher_key}={launcher[launcher_key]} disagrees with "
                f"trainer.{trainer_key}={trainer[trainer_key]}; drop the launcher override "
                f"(it follows trainer.{trainer_key}) or make them equal"
            )
    swept = swept_shape_keys(config)
    if swept:
        raise ConfigError(
            f"{swept[0]} is swept, but hydra/launcher=slurm submits one job array with one "
            "shape; sweep it in separate submissions (one per value)"
        )
    if str(trainer.accelerator) in GPU_ACCELERATORS:
        gpus = launcher.get("gpus_per_node")
        if gpus is None or gpus < trainer.devices:
            raise ConfigError(
                f"trainer.accelerator={trainer.accelerator} with trainer.devices="
                f"{trainer.devices} needs hydra.launcher.gpus_per_node={trainer.devices} "
                f"(it is {gpus})"
            )


class SlurmShapeCheck(Callback):
    """Hydra callback: stop with one line and exit code 2 before a bad sweep is submitted."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        try:
            check_launcher_shape(config)
        except ConfigError as err:
            print(f"batchgap-train: error: {err}", file=sys.stderr)
            sys.exit(2)
