"""`batchgap-train`: one training run, or one job of a Hydra sweep, from config to record.

The file reads in the order a run happens: check the config, seed, data, model, trainer,
fit, final evaluation, record.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import hydra
import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from batchgap.batching import batch_layout, updates_per_epoch
from batchgap.callbacks import DivergenceGuard, WeightDistance
from batchgap.data.datamodule import ClassificationData, check_data_fits
from batchgap.errors import ConfigError
from batchgap.models import build_model
from batchgap.modules.classifier import Classifier
from batchgap.records import git_revision, package_version, write_json_atomic
from batchgap.scaling.regime import training_regime
from batchgap.scaling.rules import scaled_lr

log = logging.getLogger(__name__)


def rank_zero_log(message: str, *args) -> None:
    if rank_zero_only.rank == 0:
        log.info(message, *args)


def check_writable(run_dir: Path) -> None:
    """Fail before any work when the run directory cannot hold the records."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write_probe"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"output directory {run_dir} is not writable ({err.strerror})") from err


def thread_count(cfg: DictConfig) -> int:
    """Threads per process: the configured count, or the cores shared by local processes."""
    if cfg.num_threads is not None:
        return int(cfg.num_threads)
    local = cfg.trainer.devices if cfg.trainer.accelerator == "cpu" else 1
    return max(1, (os.cpu_count() or 1) // max(1, int(local)))


def make_loggers(cfg: DictConfig, run_dir: Path) -> list:
    # A new version per (re)start: a resumed run must not overwrite the metrics already written.
    loggers = [CSVLogger(save_dir=str(run_dir), name="csv")]
    if cfg.logger.get("wandb"):
        from batchgap.wandb_run import make_wandb_logger

        loggers.append(make_wandb_logger(cfg, run_dir))
    return loggers


def close_loggers(cfg: DictConfig, failed: bool) -> None:
    if cfg.logger.get("wandb"):
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
    rank_zero_log(
        "%s; world size %d; %d updates/epoch x %d epochs; lr %.4g (%s scaling of %.4g)",
        layout.describe(),
        layout.world_size,
        per_epoch,
        regime.epochs,
        lr,
        cfg.scaling.rule,
        cfg.optim.lr,
    )

    net = build_model(cfg.model, data.input_shape, data.num_classes)
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
    checkpoint = ModelCheckpoint(
        dirpath=run_dir / "checkpoints",
        save_last=True,
        save_top_k=0,
        every_n_epochs=cfg.checkpoint.every_n_epochs,
    )
    trainer_kwargs = OmegaConf.to_container(cfg.trainer, resolve=True)
    if trainer_kwargs.get("enable_progress_bar") is None:
        # A bar helps at a terminal and floods a log file or a Slurm output.
        trainer_kwargs["enable_progress_bar"] = sys.stderr.isatty()
    trainer = L.Trainer(
        **trainer_kwargs,
        max_epochs=regime.epochs,
        max_steps=regime.max_updates or -1,
        gradient_clip_val=cfg.optim.gradient_clip_norm,
        log_every_n_steps=max(1, min(50, per_epoch)),
        callbacks=[distance, guard, checkpoint],
        logger=make_loggers(cfg, run_dir),
        default_root_dir=str(run_dir),
        use_distributed_sampler=False,
        enable_model_summary=False,
    )

    summary = {
        "status": "running",
        "experiment_name": cfg.experiment_name,
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
    record = rank_zero_only(write_json_atomic)
    record(run_dir / "summary.json", summary)

    last = run_dir / "checkpoints" / "last.ckpt"
    ckpt_path = str(last) if cfg.resume and last.exists() else None
    if ckpt_path:
        rank_zero_log("resuming from %s", ckpt_path)
    try:
        trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
        trainer.test(module, datamodule=data, verbose=False)
    except BaseException as err:
        summary.update(status="failed", error=f"{type(err).__name__}: {err}")
        summary["wall_time_s"] = time.time() - started
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
    if rank_zero_only.rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    try:
        summary = train(cfg, run_dir)
    except ConfigError as err:
        print(f"batchgap-train: error: {err}", file=sys.stderr)
        sys.exit(2)
    return summary.get("test_err")


def cli() -> None:
    """Console entry point: reject bad command-line choices in one line, then run Hydra."""
    from batchgap.cli_checks import check_overrides

    try:
        check_overrides(sys.argv[1:])
    except ConfigError as err:
        print(f"batchgap-train: error: {err}", file=sys.stderr)
        sys.exit(2)
    main()


if __name__ == "__main__":
    cli()
