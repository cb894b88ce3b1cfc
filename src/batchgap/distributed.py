"""Which processes a run has, who starts them, and whether the config fits the machine.

Checked once, before any process or process group exists. Lightning never starts processes in
batchgap: srun, torchrun or a user (who sets LOCAL_RANK) start them, or batchgap forks a
node's ranks itself (`batchgap.local_ranks`), so a Hydra sweep never sees its command replayed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
from lightning.fabric.accelerators.cuda import num_cuda_devices
from lightning.fabric.plugins.environments import (
    LSFEnvironment,
    MPIEnvironment,
    SLURMEnvironment,
    TorchElasticEnvironment,
)
from lightning.pytorch.strategies import DDPStrategy
from omegaconf import DictConfig, OmegaConf

from batchgap.batching import batch_layout
from batchgap.errors import ConfigError

# Strategies per accelerator. Only DDP: every rank holds the whole weight vector, which the
# weight-distance record needs (sharded strategies such as FSDP would measure one shard).
STRATEGIES: dict[str, tuple[str, ...]] = {
    "cpu": ("auto", "ddp"),
    "gpu": ("auto", "ddp"),
    "mps": ("auto",),
}
ACCELERATOR_ALIASES = {"cuda": "gpu"}

# Cluster managers that start every rank themselves, in the order Lightning looks for them.
EXTERNAL_LAUNCHERS = {
    "torchelastic": TorchElasticEnvironment,
    "slurm": SLURMEnvironment,
    "lsf": LSFEnvironment,
    "mpi": MPIEnvironment,
}


@dataclass(frozen=True)
class Placement:
    """This job's processes: world shape, who starts them, and the rank this process speaks for.

    `started_by` is "single" (one process, world size 1), "batchgap" (this process forks the
    node's `devices` ranks), "manual" (the user set LOCAL_RANK) or an external launcher's name.
    """

    world_size: int
    num_nodes: int
    devices: int
    node_rank: int
    rank: int
    started_by: str

    @property
    def starts_local_ranks(self) -> bool:
        return self.started_by == "batchgap"

    def rank_environment(self, local_rank: int, main_address: str, main_port: int) -> dict:
        """The variables that tell Lightning (and torch) which rank a forked process is."""
        return {
            "MASTER_ADDR": main_address,
            "MASTER_PORT": str(main_port),
            "NODE_RANK": str(self.node_rank),
            "LOCAL_RANK": str(local_rank),
            "RANK": str(self.node_rank * self.devices + local_rank),
            "WORLD_SIZE": str(self.world_size),
        }


def resolve_accelerator(accelerator: str) -> str:
    """The accelerator family a run uses: `auto` becomes gpu when CUDA devices are visible."""
    name = ACCELERATOR_ALIASES.get(accelerator, accelerator)
    if name == "auto":
        # Limitation: `auto` here only tells CUDA from CPU; Lightning may also pick MPS or TPU.
        return "gpu" if num_cuda_devices() > 0 else "cpu"
    if name not in STRATEGIES:
        valid = ", ".join(["auto", *sorted(ACCELERATOR_ALIASES), *sorted(STRATEGIES)])
        raise ConfigError(f"trainer.accelerator={accelerator!r} is unknown; valid: {valid}")
    return name


def available_devices(accelerator: str) -> tuple[int, str]:
    """How many devices of this kind one node offers, and what they are called."""
    if accelerator == "gpu":
        # NVML-based count (Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK): CUDA stays
        # uninitialized, so forked ranks can still use it.
        return num_cuda_devices(), "CUDA device(s) visible"
    if accelerator == "mps":
        return int(torch.backends.mps.is_available()), "MPS device(s)"
    # One process per core at most: more would time-share the cores and only run slower.
    return len(os.sched_getaffinity(0)), "CPU core(s) available to this process"


def external_launcher() -> str | None:
    """The cluster manager that started this process as one rank, as Lightning will see it."""
    for name, environment in EXTERNAL_LAUNCHERS.items():
        if environment.detect():
            return name
    if "LOCAL_RANK" in os.environ:
        return "manual"
    return None


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        raise ConfigError(f"environment variable {name}={value!r} is not an integer") from None


def _check_external(launcher: str, world_size: int, num_nodes: int, devices: int) -> None:
    """The world size and node count the cluster manager started must be the configured ones."""
    shape = f"trainer.num_nodes={num_nodes} x trainer.devices={devices} = {world_size} processes"
    if launcher == "slurm":
        nodes, tasks = _env_int("SLURM_NNODES"), _env_int("SLURM_NTASKS")
        if nodes is not None and nodes != num_nodes:
            raise ConfigError(
                f"trainer.num_nodes={num_nodes} but Slurm allocated SLURM_NNODES={nodes}; "
                f"set trainer.num_nodes={nodes} or sbatch --nodes={num_nodes}"
            )
        if tasks is not None and tasks != world_size:
            raise ConfigError(
                f"{shape} but Slurm started SLURM_NTASKS={tasks}; use srun with "
                f"--nodes={num_nodes} --ntasks-per-node={devices}"
            )
    elif launcher == "torchelastic":
        world, local = _env_int("WORLD_SIZE") or 1, _env_int("LOCAL_WORLD_SIZE") or 1
        if world != world_size or local != devices:
            raise ConfigError(
                f"{shape} but torchrun started WORLD_SIZE={world} with LOCAL_WORLD_SIZE={local} "
                f"per node; set trainer.devices={local} trainer.num_nodes={world // local}"
            )


def _check_lightning_environment(world_size: int, num_nodes: int, node_rank: int | None) -> None:
    """Without a cluster manager the user names the node; its variables must fit the config."""
    world = _env_int("WORLD_SIZE")
    if world is not None and world != world_size:
        raise ConfigError(
            f"environment variable WORLD_SIZE={world} disagrees with trainer.num_nodes x "
            f"trainer.devices = {world_size}; unset it or fix the trainer settings"
        )
    if num_nodes > 1:
        missing = [v for v in ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK") if v not in os.environ]
        if missing:
            raise ConfigError(
                f"trainer.num_nodes={num_nodes} without srun or torchrun needs "
                f"{', '.join(missing)} set on every node (NODE_RANK 0..{num_nodes - 1})"
            )
    if node_rank is not None and not 0 <= node_rank < num_nodes:
        raise ConfigError(
            f"NODE_RANK={node_rank} is outside trainer.num_nodes={num_nodes}; "
            f"valid: 0..{num_nodes - 1}"
        )


def _own_rank(launcher: str, devices: int) -> tuple[int, int]:
    """(node rank, global rank) of this process when someone else started it."""
    if launcher == "manual":
        node_rank = _env_int("NODE_RANK") or _env_int("GROUP_RANK") or 0
        return node_rank, node_rank * devices + (_env_int("LOCAL_RANK") or 0)
    environment = EXTERNAL_LAUNCHERS[launcher]()
    return environment.node_rank(), environment.global_rank()


def place_processes(cfg: DictConfig) -> Placement:
    """Check the trainer settings against the batch, the machine and the environment.

    Raises ConfigError with one line on the first problem; returns the job's Placement.
    """
    trainer = cfg.trainer
    layout = batch_layout(
        cfg.data.global_batch_size,
        trainer.devices,
        trainer.num_nodes,
        trainer.accumulate_grad_batches,
    )
    world_size, num_nodes, devices = layout.world_size, layout.num_nodes, layout.devices

    accelerator = resolve_accelerator(str(trainer.accelerator))
    strategy = trainer.strategy
    if strategy not in STRATEGIES[accelerator]:
        raise ConfigError(
            f"trainer.strategy={strategy!r} is not valid for trainer.accelerator="
            f"{trainer.accelerator}; valid: {', '.join(STRATEGIES[accelerator])} "
            "(batchgap, srun or torchrun start the processes, never Lightning)"
        )

    launcher = external_launcher()
    if launcher is None:
        node_rank = _env_int("NODE_RANK")
        _check_lightning_environment(world_size, num_nodes, node_rank)
        node_rank = node_rank or 0
        rank = node_rank * devices
        started_by = "batchgap" if world_size > 1 else "single"
    else:
        if launcher == "manual":
            _check_lightning_environment(world_size, num_nodes, _env_int("NODE_RANK"))
        _check_external(launcher, world_size, num_nodes, devices)
        node_rank, rank = _own_rank(launcher, devices)
        started_by = launcher

    count, what = available_devices(accelerator)
    # An externally started CPU rank may be pinned to fewer cores than the node has ranks.
    if devices > count and not (accelerator == "cpu" and launcher is not None):
        raise ConfigError(
            f"trainer.devices={devices} but this node has {count} {what}; "
            + (f"use trainer.devices<={count}" if count else "use trainer=cpu or trainer=ddp_cpu")
        )
    if started_by == "batchgap" and accelerator == "gpu" and torch.cuda.is_initialized():
        raise ConfigError(
            "CUDA is already initialized in this process (an earlier job of this sweep used "
            "the GPU), so forked ranks cannot use it; sweep multi-GPU jobs on their own"
        )
    return Placement(world_size, num_nodes, devices, node_rank, rank, started_by)


def trainer_settings(trainer: DictConfig) -> dict:
    """Keyword arguments for `lightning.Trainer`: batchgap's own keys taken out, DDP built."""
    kwargs = OmegaConf.to_container(trainer, resolve=True)
    timeout_s = kwargs.pop("process_group_timeout_s", None)
    if kwargs["devices"] * kwargs["num_nodes"] == 1:
        # Lightning's DDP of one process would export LOCAL_RANK into a sweep's later jobs.
        kwargs["strategy"] = "auto"
    else:
        # A rank that never joins, or hangs, would otherwise block the others for 30 minutes.
        timeout = timedelta(seconds=timeout_s) if timeout_s else timedelta(minutes=30)
        kwargs["strategy"] = DDPStrategy(timeout=timeout)
    return kwargs
