"""Placement checks, Trainer settings and the local-rank launcher, without training."""

import os
import signal
import sys
import time
import types
from datetime import timedelta

import pytest
from conftest import compose
from lightning.fabric.accelerators.cuda import num_cuda_devices
from lightning.pytorch.strategies import DDPStrategy
from lightning.pytorch.utilities import rank_zero_only

from batchgap import local_ranks
from batchgap.distributed import Placement, place_processes, trainer_settings
from batchgap.errors import ConfigError

# Variables through which launchers and users describe a process's place in the world.
PLACEMENT_PREFIXES = ("SLURM_", "LSB_", "OMPI_", "PMI_", "TORCHELASTIC_")
PLACEMENT_VARIABLES = (
    "LOCAL_RANK",
    "NODE_RANK",
    "GROUP_RANK",
    "RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
)


@pytest.fixture(autouse=True)
def no_launcher(monkeypatch):
    """Each test starts outside any cluster manager; it sets the variables it needs."""
    for name in list(os.environ):
        if name.startswith(PLACEMENT_PREFIXES) or name in PLACEMENT_VARIABLES:
            monkeypatch.delenv(name)


def test_presets_place_one_or_two_processes():
    single = place_processes(compose("trainer=cpu"))
    assert (single.world_size, single.started_by, single.rank) == (1, "single", 0)

    pair = place_processes(compose("trainer=ddp_cpu", "data.global_batch_size=64"))
    assert (pair.world_size, pair.devices, pair.started_by) == (2, 2, "batchgap")
    assert pair.starts_local_ranks


def test_second_node_without_slurm_speaks_for_its_first_rank(monkeypatch):
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    monkeypatch.setenv("NODE_RANK", "1")
    placement = place_processes(compose("trainer=multinode", "trainer.accelerator=cpu"))
    assert (placement.world_size, placement.num_nodes, placement.node_rank) == (2, 2, 1)
    assert placement.rank == 1 and placement.starts_local_ranks
    env = placement.rank_environment(0, "127.0.0.1", 29500)
    assert (env["RANK"], env["LOCAL_RANK"], env["WORLD_SIZE"]) == ("1", "0", "2")


def test_slurm_task_is_placed_by_slurm(monkeypatch):
    for name, value in dict(
        SLURM_NTASKS="2",
        SLURM_NTASKS_PER_NODE="1",
        SLURM_NNODES="2",
        SLURM_JOB_NAME="train",
        SLURM_PROCID="1",
        SLURM_LOCALID="0",
        SLURM_NODEID="1",
    ).items():
        monkeypatch.setenv(name, value)
    placement = place_processes(compose("trainer=multinode", "trainer.accelerator=cpu"))
    assert (placement.started_by, placement.rank, placement.node_rank) == ("slurm", 1, 1)
    assert not placement.starts_local_ranks


SLURM_TWO_NODES = dict(
    SLURM_NTASKS="2", SLURM_NNODES="2", SLURM_JOB_NAME="train", SLURM_PROCID="0"
)
SLURM_FOUR_TASKS = dict(
    SLURM_NTASKS="4", SLURM_NNODES="1", SLURM_JOB_NAME="train", SLURM_PROCID="0"
)
TORCHRUN_FOUR = dict(
    TORCHELASTIC_RUN_ID="x",
    WORLD_SIZE="4",
    LOCAL_WORLD_SIZE="2",
    RANK="0",
    LOCAL_RANK="0",
    GROUP_RANK="0",
)
NODE_TWO = dict(MASTER_ADDR="127.0.0.1", MASTER_PORT="29500", NODE_RANK="2")
MULTINODE_CPU = ("trainer=multinode", "trainer.accelerator=cpu")


@pytest.mark.parametrize(
    "overrides, env, expected",
    [
        (
            ("trainer=ddp_cpu", "data.global_batch_size=63"),
            {},
            "data.global_batch_size=63 does not divide evenly",
        ),
        (
            ("trainer=ddp_cpu", "trainer.strategy=ddp_spawn"),
            {},
            "trainer.strategy='ddp_spawn' is not valid for trainer.accelerator=cpu; "
            "valid: auto, ddp",
        ),
        (
            ("trainer=ddp_cpu", "trainer.accelerator=mps"),
            {},
            "trainer.strategy='ddp' is not valid for trainer.accelerator=mps; valid: auto ",
        ),
        (("trainer.accelerator=tpu",), {}, "trainer.accelerator='tpu' is unknown"),
        (
            ("trainer=ddp_cpu",),
            SLURM_TWO_NODES,
            "trainer.num_nodes=1 but Slurm allocated SLURM_NNODES=2",
        ),
        (("trainer=ddp_cpu",), SLURM_FOUR_TASKS, "but Slurm started SLURM_NTASKS=4"),
        (
            ("trainer=ddp_cpu",),
            TORCHRUN_FOUR,
            "but torchrun started WORLD_SIZE=4 with LOCAL_WORLD_SIZE=2 per node; "
            "set trainer.devices=2 trainer.num_nodes=2",
        ),
        (
            ("trainer=ddp_cpu",),
            {"WORLD_SIZE": "4"},
            "environment variable WORLD_SIZE=4 disagrees with trainer.num_nodes x "
            "trainer.devices = 2",
        ),
        (MULTINODE_CPU, {}, "needs MASTER_ADDR, MASTER_PORT, NODE_RANK set on every node"),
        (MULTINODE_CPU, NODE_TWO, "NODE_RANK=2 is outside trainer.num_nodes=2; valid: 0..1"),
    ],
)
def test_bad_placement_is_one_line_naming_the_value(monkeypatch, overrides, env, expected):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        place_processes(compose(*overrides))
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)


def test_more_cpu_processes_than_cores_is_refused():
    # Decision: at most one CPU process per core this process may run on.
    cores = len(os.sched_getaffinity(0))
    cfg = compose("trainer=ddp_cpu", f"trainer.devices={cores + 1}")
    cfg.data.global_batch_size = 8 * (cores + 1)
    with pytest.raises(ConfigError, match=rf"trainer.devices={cores + 1} but this node has "):
        place_processes(cfg)


def test_more_gpus_than_visible_is_refused():
    gpus = num_cuda_devices()
    cfg = compose("trainer=ddp", f"trainer.devices={gpus + 1}")
    cfg.data.global_batch_size = 8 * (gpus + 1)
    with pytest.raises(ConfigError, match=rf"this node has {gpus} CUDA device\(s\) visible"):
        place_processes(cfg)


def test_ddp_gets_the_configured_process_group_timeout():
    cfg = compose("trainer=ddp_cpu", "trainer.process_group_timeout_s=7")
    settings = trainer_settings(cfg.trainer)
    assert "process_group_timeout_s" not in settings
    assert isinstance(settings["strategy"], DDPStrategy)
    assert settings["strategy"]._timeout == timedelta(seconds=7)
    # One process never gets a process group, whatever the strategy says.
    single = trainer_settings(compose("trainer=cpu", "trainer.strategy=ddp").trainer)
    assert single["strategy"] == "auto"


def test_wandb_is_created_and_finished_on_rank_zero_only(monkeypatch, tmp_path):
    from batchgap import train

    finished = []
    fake = types.SimpleNamespace(run=object(), finish=lambda **kw: finished.append(kw))
    monkeypatch.setitem(sys.modules, "wandb", fake)
    cfg = compose("logger=wandb")

    monkeypatch.setattr(rank_zero_only, "rank", 1)
    assert [type(lg).__name__ for lg in train.make_loggers(cfg, tmp_path)] == ["CSVLogger"]
    assert not (tmp_path / "wandb_id.txt").exists()
    train.close_loggers(cfg, failed=False)
    assert finished == []

    monkeypatch.setattr(rank_zero_only, "rank", 0)
    train.close_loggers(cfg, failed=False)
    assert finished == [{"exit_code": 0}]


def _report_rank(path):
    (path / f"rank{os.environ['RANK']}").write_text(os.environ["LOCAL_RANK"])
    return int(os.environ["RANK"])


def _reject_config(path):
    raise ConfigError("model.width=0 is invalid")


def _rank_one_dies(path):
    survivor = path / "rank0_pid"
    if os.environ["RANK"] == "0":
        survivor.write_text(str(os.getpid()))
        time.sleep(600)
    while not survivor.exists():
        time.sleep(0.05)
    os.kill(os.getpid(), signal.SIGKILL)


def _pair() -> Placement:
    return Placement(2, 1, 2, 0, 0, "batchgap")


@pytest.mark.distributed
def test_each_forked_rank_runs_the_job_with_its_own_rank(tmp_path):
    assert local_ranks.start_local_ranks(_pair(), _report_rank, tmp_path) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rank0", "rank1"]
    assert (tmp_path / "rank1").read_text() == "1"


@pytest.mark.distributed
def test_config_error_in_a_rank_comes_back_as_config_error(tmp_path):
    with pytest.raises(ConfigError, match="model.width=0 is invalid"):
        local_ranks.start_local_ranks(_pair(), _reject_config, tmp_path)


@pytest.mark.distributed
def test_a_killed_rank_ends_the_others(monkeypatch, tmp_path):
    monkeypatch.setattr(local_ranks, "FAILURE_GRACE_S", 1.0)
    with pytest.raises(local_ranks.RankFailure, match="rank 1 was killed by SIGKILL"):
        local_ranks.start_local_ranks(_pair(), _rank_one_dies, tmp_path)
    # Rank 0 would sleep for ten minutes; it was ended and reaped.
    with pytest.raises(ProcessLookupError):
        os.kill(int((tmp_path / "rank0_pid").read_text()), 0)
