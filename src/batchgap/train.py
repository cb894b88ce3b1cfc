"""`batchgap-train`: one training run, or one job of a Hydra sweep, from config to record.

The file reads in the order a run happens: check the config, seed, data, model, trainer,
fit, final evaluation, record.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from batchgap.batching import batch_layout, limited_updates_per_epoch, updates_per_epoch
from batchgap.callbacks import DivergenceGuard, WeightDistance
from batchgap.callbacks.noise_scale import GradientNoiseScale
from batchgap.callbacks.requeue import JobRequeued, RequeueOnSignal
from batchgap.config_values import check_values
from batchgap.data.datamodule import ClassificationData
from batchgap.data.sizes import check_data_fits
from batchgap.distributed import place_processes, trainer_settings
from batchgap.errors import ConfigError
from batchgap.local_ranks import RankFailure, start_local_ranks
from batchgap.models import build_model
from batchgap.models.norm import check_norm
from batchgap.modules.classifier import Classifier
from batchgap.records import (
    earlier_wall_time,
    git_revision,
    package_version,
    record_failure,
    write_json_atomic,
    write_text_atomic,
)
from batchgap.resume import check_resume
from batchgap.scaling.regime import training_regime
from batchgap.scaling.rules import scaled_lr
from batchgap.slurm import check_slurm_tasks, slurm_plugins

log = logging.getLogger(__name__)

# Lightning hints at srun whenever Slurm is installed; batchgap decides who starts the ranks.
warnings.filterwarnings("ignore", message="The `srun` command is available")
# Lightning 2.6 calls a torch pytree API that torch 2.14 deprecates; nothing for users to do.
warnings.filterwarnings("ignore", message=".*isinstance.treespec, LeafSpec.")
# Lightning advertises a cloud logger at every Trainer: one line of noise per sweep job.
for _name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
    logging.getLogger(_name).addFilter(lambda record: "litlogger" not in str(record.msg))


def rank_zero_log(message: str, *args) -> None:
    if rank_zero_only.rank == 0:
        log.info(message, *args)


def check_writable(run_dir: Path) -> None:
    """Fail before any work when the run directory cannot hold the records."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        # One probe per process: the ranks of a job probe the same directory at once.
        probe = run_dir / f".write_probe.{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"output directory {run_dir} is not writable ({err.strerror})") from err


def thread_count(cfg: DictConfig) -> int:
    """Threads per process: the configured count, or the cores shared by local processes."""
    if cfg.num_threads is not None:
        return int(cfg.num_threads)
    local = cfg.trainer.devices if cfg.trainer.accelerator == "cpu" else 1
    # The cores this process may run on: a Slurm or taskset allocation, not the whole node.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // (max(1, int(local)) * parallel_jobs()))


def parallel_jobs() -> int:
    """Sweep jobs running side by side on this machine (the parallel launcher's n_jobs)."""
    try:
        launcher = HydraConfig.get().launcher
    except ValueError:
        return 1
    n_jobs = launcher.get("n_jobs") if "joblib" in str(launcher.get("_target_", "")) else None
    return max(1, int(n_jobs)) if n_jobs else 1


def speed_up(net: torch.nn.Module, perf: DictConfig) -> torch.nn.Module:
    """Apply the GPU fast paths asked for: channels-last memory and torch.compile."""
    if perf.channels_last:
        net = net.to(memory_format=torch.channels_last)
    if perf.compile:
        net = torch.compile(net)
    return net


def make_loggers(cfg: DictConfig, run_dir: Path) -> list:
    # A new version per (re)start: a resumed run must not overwrite the metrics already written.
    loggers = [CSVLogger(save_dir=str(run_dir), name="csv")]
    # One wandb run per job: only global rank zero creates it (and its id file), and finishes it.
    if cfg.logger.get("wandb") and rank_zero_only.rank == 0:
        from batchgap.wandb_run import make_wandb_logger

        loggers.append(make_wandb_logger(cfg, run_dir))
    return loggers


def close_loggers(cfg: DictConfig, failed: bool) -> None:
    if cfg.logger.get("wandb") and rank_zero_only.rank == 0:
        from batchgap.wandb_run import finish_wandb

        finish_wandb(failed)


def train(cfg: DictConfig, run_dir: Path) -> dict:
    """Run one configured training job in `run_dir` and return its summary record."""
    started = time.time()
    check_writable(run_dir)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    torch.set_num_threads(thread_count(cfg))

    layout = batch_layout(
        cfg.data.global_batch_size,
        cfg.trainer.devices,
        cfg.trainer.num_nodes,
        cfg.trainer.accumulate_grad_batches,
    )
    check_norm(
        cfg.model.get("norm"),
        cfg.model.get("ghost_batch_size"),
        layout.per_device_batch_size,
        cfg.trainer.accelerator,
    )
    data = ClassificationData(
        cfg.data, layout.per_device_batch_size, cfg.data.eval_batch_size, shuffle_seed=cfg.seed
    )
    check_data_fits(cfg.data, data.train_size)
    per_epoch = updates_per_epoch(data.train_size, layout.global_batch_size)

    lr = scaled_lr(
        cfg.optim.lr, cfg.scaling.rule, layout.global_batch_size, cfg.scaling.reference_batch_size
    )
    regime = training_regime(
        cfg.regime.name,
        cfg.regime.epochs,
        layout.global_batch_size,
        cfg.scaling.reference_batch_size,
        per_epoch,
        cfg.regime.max_updates,
    )
    epoch_updates = limited_updates_per_epoch(
        per_epoch, layout.accumulate_grad_batches, cfg.trainer.get("limit_train_batches")
    )
    rank_zero_log(
        "%s; world size %d; %d updates/epoch x %d epochs; lr %.4g (%s scaling of %.4g)",
        layout.describe(),
        layout.world_size,
        epoch_updates,
        regime.epochs,
        lr,
        cfg.scaling.rule,
        cfg.optim.lr,
    )

    net = speed_up(build_model(cfg.model, data.input_shape, data.num_classes), cfg.perf)
    module = Classifier(
        net,
        optimizer=hydra.utils.instantiate(cfg.optim.optimizer),
        lr=lr,
        lr_milestones=list(cfg.optim.lr_milestones),
        lr_gamma=cfg.optim.lr_gamma,
        warmup_updates=round(cfg.scaling.warmup_epochs * per_epoch),
    )

    distance = WeightDistance(run_dir / "weights.csv")
    guard = DivergenceGuard()
    extra_callbacks = []
    if cfg.early_stop.val_err_below is not None:
        # Steps-to-target studies stop a run once it reaches the target; patience never ends it.
        extra_callbacks.append(
            EarlyStopping(
                monitor="val/err",
                mode="min",
                stopping_threshold=cfg.early_stop.val_err_below,
                patience=10**9,
                check_on_train_epoch_end=False,
            )
        )
    noise = None
    if cfg.noise_scale.enabled:
        noise = GradientNoiseScale(
            run_dir / "noise.csv", cfg.noise_scale.ema_decay, cfg.noise_scale.every_n_updates
        )
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        # One file, overwritten every n epochs: Lightning 2.6 writes save_last's copy only when
        # a top-k file is saved, so save_top_k=0 would leave no checkpoint before the end.
        filename="last",
        save_top_k=1,
        every_n_epochs=cfg.checkpoint.every_n_epochs,
    )
    # Writes the checkpoint the resume below looks for, so a requeued job finds it.
    requeue = RequeueOnSignal(run_dir / "checkpoints" / "last.ckpt")
    trainer_kwargs = trainer_settings(cfg.trainer)
    if trainer_kwargs.get("enable_progress_bar") is None:
        # A bar helps at a terminal and floods a log file or a Slurm output.
        trainer_kwargs["enable_progress_bar"] = sys.stderr.isatty()
    trainer = L.Trainer(
        **trainer_kwargs,
        max_epochs=regime.epochs,
        max_steps=regime.max_updates or -1,
        gradient_clip_val=cfg.optim.gradient_clip_norm,
        # At most once an epoch: more than an epoch's updates earns Lightning's warning.
        log_every_n_steps=max(1, min(50, epoch_updates)),
        callbacks=[
            distance,
            guard,
            checkpoint,
            requeue,
            *extra_callbacks,
            *([noise] if noise else []),
        ],
        plugins=slurm_plugins(),
        logger=make_loggers(cfg, run_dir),
        default_root_dir=str(run_dir),
        use_distributed_sampler=False,
        enable_model_summary=False,
    )

    summary = {
        "status": "running",
        "experiment_name": cfg.experiment_name,
        "remedy": cfg.get("remedy"),
        "dataset": cfg.data.name,
        "model": cfg.model.name,
        "seed": cfg.seed,
        "global_batch_size": layout.global_batch_size,
        "per_device_batch_size": layout.per_device_batch_size,
        "world_size": layout.world_size,
        "num_nodes": layout.num_nodes,
        "devices": layout.devices,
        "accumulate_grad_batches": layout.accumulate_grad_batches,
        "scaling_rule": cfg.scaling.rule,
        "reference_batch_size": cfg.scaling.reference_batch_size,
        "base_lr": cfg.optim.lr,
        "lr": lr,
        "norm": cfg.model.get("norm"),
        "ghost_batch_size": cfg.model.get("ghost_batch_size"),
        "regime": regime.name,
        "epoch_factor": regime.epoch_factor,
        "updates_per_epoch": per_epoch,
        "version": package_version(),
        "git_revision": git_revision(),
        "error": None,
    }
    last = run_dir / "checkpoints" / "last.ckpt"
    ckpt_path = str(last) if cfg.resume and last.exists() else None
    # A resumed run's wall time includes its earlier starts; recorded now, so a hard kill of
    # this start keeps them.
    earlier = earlier_wall_time(run_dir / "summary.json") if ckpt_path else 0.0
    started -= earlier
    summary["wall_time_s"] = earlier
    record = rank_zero_only(write_json_atomic)
    record(run_dir / "summary.json", summary)
    if ckpt_path:
        rank_zero_log("resuming from %s", ckpt_path)
    try:
        trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
        trainer.test(module, datamodule=data, verbose=False)
    except BaseException as err:
        if isinstance(err, JobRequeued):
            summary.update(status="requeued")
        elif isinstance(err, KeyboardInterrupt | SystemExit):
            # Lightning turns Ctrl-C into SystemExit(1) after its graceful shutdown.
            summary.update(status="interrupted", error="interrupted (SIGINT or exit)")
        else:
            summary.update(status="failed", error=f"{type(err).__name__}: {err}")
        # The updates made before the end, so a stopped run says how far it got.
        summary.update(updates=trainer.global_step, wall_time_s=time.time() - started)
        record(run_dir / "summary.json", summary)
        close_loggers(cfg, failed=True)
        raise

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    final = {
        f"{split}_{name}": metrics.get(f"{split}/final_{name}")
        for split in ("train", "val", "test")
        for name in ("loss", "err")
    }
    gap = None
    if final["test_err"] is not None and final["train_err"] is not None:
        gap = final["test_err"] - final["train_err"]
    summary.update(
        final,
        status="diverged" if guard.diverged_at is not None else "completed",
        diverged_at_update=guard.diverged_at,
        gap=gap,
        updates=trainer.global_step,
        epochs=trainer.current_epoch,
        lr_milestone_updates=module.lr_drop_updates,
        final_weight_distance=getattr(distance, "last_row", {}).get("weight_distance"),
        wall_time_s=time.time() - started,
        **(noise.summary() if noise else {}),
    )
    record(run_dir / "summary.json", summary)
    close_loggers(cfg, failed=False)
    rank_zero_log(
        "%s: %d updates, test err %.4f, gap %.4f, distance %.3f -> %s",
        summary["status"],
        summary["updates"],
        final["test_err"] if final["test_err"] is not None else float("nan"),
        gap if gap is not None else float("nan"),
        summary["final_weight_distance"] or float("nan"),
        run_dir,
    )
    return summary


@hydra.main(version_base="1.3", config_path="pkg://batchgap.conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        # Checked up front for a whole sweep too; here for configs the up-front check never saw.
        check_values(cfg)
        check_slurm_tasks(cfg.trainer.devices)
        placement = place_processes(cfg)
        # A process that forks a node's ranks speaks for the first of them.
        rank_zero_only.rank = placement.rank
        finished = check_resume(cfg, run_dir)
        if finished is not None:
            rank_zero_log(
                "%s: already %s, records kept (resume=false trains it again)",
                run_dir,
                finished["status"],
            )
            return finished.get("test_err")
        if placement.rank == 0:
            # Atomic: the processes of other nodes may be reading it for their resume check.
            write_text_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
        # The task group names the function that runs a job: train() below, or a GAN's.
        job = hydra.utils.get_method(cfg.task.run)
        if placement.starts_local_ranks:
            summary = start_local_ranks(placement, job, cfg, run_dir)
        else:
            summary = job(cfg, run_dir)
    except ConfigError as err:
        print(f"batchgap-train: error: {err}", file=sys.stderr)
        remove_if_only_hydra_files(run_dir)
        sys.exit(2)
    except RankFailure as err:
        # A killed rank zero could not record its end; the parent does.
        if placement.rank == 0:
            record_failure(run_dir / "summary.json", str(err))
        raise
    except Exception as err:
        # A crash while the job is set up (data, nets, trainer) comes before its summary is
        # first written; record it, so the analysis lists the run as failed, not as missing.
        summary_path = run_dir / "summary.json"
        if rank_zero_only.rank == 0 and not summary_path.exists():
            record_failure(summary_path, f"{type(err).__name__}: {err}")
        raise
    return summary.get("test_err")


def shares_run_dir() -> bool:
    """Whether other processes started for this job (Slurm tasks, nodes) use the same run dir."""
    launched = ("SLURM_NTASKS", "WORLD_SIZE")
    return any(int(os.environ.get(name, "1") or 1) > 1 for name in launched) or (
        "NODE_RANK" in os.environ
    )


def remove_if_only_hydra_files(run_dir: Path) -> None:
    """Leave no run directory behind for a refused config, unless it already held a run."""
    if shares_run_dir():
        # Another task may still be opening its train.log in it; removing it would turn that
        # task's one-line refusal into a logging traceback.
        return
    hydra_only = {".hydra", "train.log", "config.yaml"}
    if run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= hydra_only:
        shutil.rmtree(run_dir, ignore_errors=True)


def cli() -> None:
    """Console entry point: reject bad command-line choices in one line, then run Hydra."""
    from batchgap.cli_checks import check_jobs, check_overrides, uses_own_configs

    argv = sys.argv[1:]
    try:
        if uses_own_configs(argv):
            # Limitation: configs from --config-dir or hydra.searchpath are checked as each job
            # starts, not all up front (the up-front checks compose batchgap's configs alone).
            print(
                "batchgap-train: configs of your own: each job's settings are checked as it "
                "starts, not before the sweep",
                file=sys.stderr,
            )
        else:
            check_overrides(argv)
            check_jobs(argv)
    except ConfigError as err:
        print(f"batchgap-train: error: {err}", file=sys.stderr)
        sys.exit(2)
    main()


if __name__ == "__main__":
    cli()
