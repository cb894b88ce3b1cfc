"""One GAN run (`task=gan`), from config to record, in the order it happens.

Check the config, seed, data, metric classifier, nets and module, trainer, fit, record. The
records follow the classifier's contract: `update` and `updates` count generator updates.
"""

from __future__ import annotations

import csv
import logging
import math
import sys
import time
import warnings
from pathlib import Path

import hydra
import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from batchgap.batching import batch_layout, limited_updates_per_epoch, updates_per_epoch
from batchgap.callbacks import DivergenceGuard, WeightDistance
from batchgap.callbacks.gan_quality import QualityMonitor, read_quality
from batchgap.callbacks.gan_samples import SampleGrids
from batchgap.data.gan_data import GANData
from batchgap.data.sizes import check_data_fits
from batchgap.distributed import trainer_settings
from batchgap.errors import ConfigError
from batchgap.metrics.evaluator import QualityEvaluator
from batchgap.metrics.inception import InceptionMetrics, check_inception_weights
from batchgap.metrics.metric_classifier import cached_classifier_checkpoint, load_metric_classifier
from batchgap.models.gan_nets import BATCH_NORMS, uses_batch_statistics
from batchgap.modules.gan import GAN
from batchgap.modules.gan_objectives import check_objective_settings, get_objective
from batchgap.records import (
    earlier_wall_time,
    git_revision,
    package_version,
    write_json_atomic,
)
from batchgap.scaling.regime import training_regime
from batchgap.scaling.rules import scaled_lr
from batchgap.train import (
    check_writable,
    close_loggers,
    make_loggers,
    rank_zero_log,
    thread_count,
)

log = logging.getLogger(__name__)

# Precisions whose gradient scaler would need every optimizer step to go through Lightning.
_SCALED_PRECISIONS = ("16-mixed", "16", 16)


def check_gan_config(cfg: DictConfig) -> None:
    """Raise ConfigError for settings a GAN run cannot honour, before any work."""
    objective = get_objective(cfg.gan_objective.name)
    check_objective_settings(
        objective,
        cfg.gan_objective.n_critic,
        cfg.gan_objective.weight_clip,
        cfg.gan_objective.gradient_penalty,
    )
    if cfg.trainer.accumulate_grad_batches != 1:
        raise ConfigError(
            f"trainer.accumulate_grad_batches={cfg.trainer.accumulate_grad_batches} is not "
            "supported by task=gan (it steps its optimizers by hand); use 1"
        )
    if cfg.trainer.precision in _SCALED_PRECISIONS:
        raise ConfigError(
            f"trainer.precision={cfg.trainer.precision!r} is not supported by task=gan "
            "(critic steps bypass the grad scaler); use 32-true or bf16-mixed"
        )
    if cfg.task.metrics.inception_weights is not None:
        check_inception_weights(cfg.task.metrics.inception_weights)
    collapse_below = cfg.task.metrics.collapse_below
    if collapse_below is not None and not 0 < collapse_below <= 1:
        raise ConfigError(
            f"task.metrics.collapse_below={collapse_below!r} is invalid; use a mode coverage in "
            "(0, 1] or null"
        )
    for key in (
        "checkpoint_every_n_updates",
        "metrics.every_n_updates",
        "metrics.num_samples",
        "samples.every_n_updates",
        "samples.count",
    ):
        value = OmegaConf.select(cfg.task, key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"task.{key}={value!r} is invalid; use an integer >= 1")


def build_nets(cfg: DictConfig, image_shape: tuple[int, ...]):
    """The generator and discriminator of the `gan_net` group for these images."""
    net = cfg.gan_net
    generator = hydra.utils.instantiate(
        net.generator, image_shape=image_shape, latent_dim=cfg.task.latent_dim
    )
    penalized = get_objective(cfg.gan_objective.name).penalizes_gradient
    refusal = ConfigError(
        f"gan_net.discriminator.norm={net.discriminator.get('norm')!r} normalizes over the "
        "batch, which breaks wgan_gp's per-example gradient penalty; use ln or none"
    )
    # By name first: a ghost norm would otherwise fail in its constructor, on another key.
    if penalized and net.discriminator.get("norm") in BATCH_NORMS:
        raise refusal
    discriminator = hydra.utils.instantiate(net.discriminator, image_shape=image_shape)
    if penalized and uses_batch_statistics(discriminator):
        raise refusal
    return generator, discriminator


def build_evaluator(cfg: DictConfig, data: GANData) -> tuple[QualityEvaluator, dict]:
    """The quality evaluator on a batchgap classifier of this dataset (trained if none given)."""
    metrics = cfg.task.metrics
    checkpoint = metrics.classifier_checkpoint
    if checkpoint is None:
        checkpoint = cached_classifier_checkpoint(
            cfg.data,
            list(metrics.classifier_overrides),
            Path(metrics.classifier_cache),
            thread_count(cfg),
        )
    classifier, info = load_metric_classifier(
        checkpoint, cfg.data.name, data.input_shape, data.num_classes
    )
    real_train = torch.from_numpy(data.splits["train"].x)
    inception = None
    if metrics.inception_weights is not None:
        weights = check_inception_weights(metrics.inception_weights)
        inception = InceptionMetrics(weights, real_train)
    evaluator = QualityEvaluator(
        classifier,
        real_train=real_train,
        real_test=torch.from_numpy(data.splits["test"].x),
        to_classifier_input=data.to_standardized,
        latent_dim=cfg.task.latent_dim,
        num_samples=metrics.num_samples,
        seed=metrics.seed,
        num_classes=data.num_classes,
        inception=inception,
    )
    return evaluator, info


def last_row(path: Path) -> dict:
    """The last row of a CSV record, or {} when there is none."""
    if not path.is_file():
        return {}
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return rows[-1] if rows else {}


def _float(value) -> float | None:
    return float(value) if value not in (None, "") else None


def train(cfg: DictConfig, run_dir: Path) -> dict:
    """Run one configured GAN job in `run_dir` and return its summary record."""
    started = time.time()
    check_writable(run_dir)
    check_gan_config(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    torch.set_num_threads(thread_count(cfg))
    objective = get_objective(cfg.gan_objective.name)
    n_critic = cfg.gan_objective.n_critic

    layout = batch_layout(
        cfg.data.global_batch_size,
        cfg.trainer.devices,
        cfg.trainer.num_nodes,
        cfg.trainer.accumulate_grad_batches,
    )
    data = GANData(
        cfg.data, layout.per_device_batch_size, cfg.data.eval_batch_size, shuffle_seed=cfg.seed
    )
    check_data_fits(cfg.data, data.train_size)
    # One batch is one critic step; a generator update every n_critic batches.
    critic_steps_per_epoch = updates_per_epoch(data.train_size, layout.global_batch_size)
    per_epoch = critic_steps_per_epoch / n_critic

    lrs = {
        net: scaled_lr(
            cfg.gan_objective[net].lr,
            cfg.scaling.rule,
            layout.global_batch_size,
            cfg.scaling.reference_batch_size,
        )
        for net in ("generator", "discriminator")
    }
    regime = training_regime(
        cfg.regime.name,
        cfg.regime.epochs,
        layout.global_batch_size,
        cfg.scaling.reference_batch_size,
        max(1, math.floor(per_epoch)),
        cfg.regime.max_updates,
    )
    total_updates = regime.epochs * critic_steps_per_epoch // n_critic
    if regime.max_updates is not None:
        total_updates = min(total_updates, regime.max_updates)
    if total_updates < 1:
        raise ConfigError(
            f"regime.epochs={regime.epochs} gives no generator update: {critic_steps_per_epoch} "
            f"critic steps per epoch at global batch {layout.global_batch_size}, n_critic "
            f"{n_critic}; raise regime.epochs"
        )
    # Batches an epoch really runs when trainer.limit_train_batches cuts it short.
    epoch_batches = limited_updates_per_epoch(
        critic_steps_per_epoch,
        layout.accumulate_grad_batches,
        cfg.trainer.get("limit_train_batches"),
    )
    rank_zero_log(
        "%s; world size %d; %s with %d critic step(s) per generator update; %d generator "
        "updates (%.3g per epoch); lr G %.4g, D %.4g (%s scaling)",
        layout.describe(),
        layout.world_size,
        objective.name,
        n_critic,
        min(total_updates, regime.epochs * epoch_batches // n_critic),
        epoch_batches / n_critic,
        lrs["generator"],
        lrs["discriminator"],
        cfg.scaling.rule,
    )

    generator, discriminator = build_nets(cfg, data.input_shape)

    evaluator, classifier_info = build_evaluator(cfg, data)
    rank_zero_log(
        "quality metrics on %d samples (seed %d), features of %s (test err %s); real data: "
        "fid %.3g, inception score %.3g, mode coverage %.2f",
        evaluator.num_samples,
        evaluator.seed,
        classifier_info["checkpoint"],
        classifier_info["test_err"],
        evaluator.reference["fid"],
        evaluator.reference["inception_score"],
        evaluator.reference["mode_coverage"],
    )

    module = GAN(
        generator,
        discriminator,
        objective=objective,
        latent_dim=cfg.task.latent_dim,
        n_critic=n_critic,
        generator_optimizer=hydra.utils.instantiate(cfg.gan_objective.generator.optimizer),
        discriminator_optimizer=hydra.utils.instantiate(cfg.gan_objective.discriminator.optimizer),
        generator_lr=lrs["generator"],
        discriminator_lr=lrs["discriminator"],
        weight_clip=cfg.gan_objective.weight_clip,
        penalty_weight=cfg.gan_objective.gradient_penalty,
        lr_milestones=list(cfg.gan_objective.lr_milestones),
        lr_gamma=cfg.gan_objective.lr_gamma,
        warmup_updates=round(cfg.scaling.warmup_epochs * per_epoch),
        noise_seed=cfg.seed,
    )

    checkpoints = run_dir / "checkpoints"
    guard = DivergenceGuard()
    callbacks = [
        WeightDistance(run_dir / "weights.csv"),
        guard,
        # Limitation: a resume from a mid-epoch checkpoint restarts that epoch's data order,
        # so a resumed GAN run continues correctly but not bit-equal to an uninterrupted one.
        ModelCheckpoint(
            dirpath=checkpoints,
            # One file, overwritten: Lightning 2.6 writes save_last's copy only beside a top-k
            # save, so save_top_k=0 would leave nothing to resume from until the end.
            filename="last",
            save_top_k=1,
            every_n_train_steps=cfg.task.checkpoint_every_n_updates,
        ),
        QualityMonitor(
            evaluator,
            run_dir / "quality.csv",
            checkpoints / "last_good.ckpt",
            cfg.task.metrics.every_n_updates,
            cfg.task.metrics.collapse_below,
        ),
        SampleGrids(
            run_dir / "samples",
            cfg.task.latent_dim,
            cfg.task.samples.count,
            cfg.task.samples.seed,
            cfg.task.samples.every_n_updates,
        ),
    ]
    # Lightning warns that these checkpoints hold the state after a manual update, which is
    # what a GAN run wants, and that the data module's unused validation set is skipped.
    warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")
    warnings.filterwarnings("ignore", message="You passed in a `val_dataloader` but have no")
    trainer_kwargs = trainer_settings(cfg.trainer)
    if trainer_kwargs.get("enable_progress_bar") is None:
        trainer_kwargs["enable_progress_bar"] = sys.stderr.isatty()
    # A GAN has no validation or test pass: its quality is scored by QualityMonitor.
    trainer_kwargs.update(limit_val_batches=0, limit_test_batches=0, num_sanity_val_steps=0)
    trainer = L.Trainer(
        **trainer_kwargs,
        max_epochs=regime.epochs,
        max_steps=total_updates,
        # At most once an epoch: more than an epoch's batches earns Lightning's warning.
        log_every_n_steps=max(1, min(50, epoch_batches)),
        callbacks=callbacks,
        logger=make_loggers(cfg, run_dir),
        default_root_dir=str(run_dir),
        use_distributed_sampler=False,
        enable_model_summary=False,
    )

    summary = {
        "status": "running",
        "task": "gan",
        "experiment_name": cfg.experiment_name,
        "dataset": cfg.data.name,
        "model": cfg.gan_net.name,
        "objective": objective.name,
        "seed": cfg.seed,
        "global_batch_size": layout.global_batch_size,
        "per_device_batch_size": layout.per_device_batch_size,
        "world_size": layout.world_size,
        "num_nodes": layout.num_nodes,
        "devices": layout.devices,
        "accumulate_grad_batches": layout.accumulate_grad_batches,
        "scaling_rule": cfg.scaling.rule,
        "reference_batch_size": cfg.scaling.reference_batch_size,
        "base_lr": cfg.gan_objective.generator.lr,
        "lr": lrs["generator"],
        "discriminator_base_lr": cfg.gan_objective.discriminator.lr,
        "discriminator_lr": lrs["discriminator"],
        "n_critic": n_critic,
        "weight_clip": cfg.gan_objective.weight_clip,
        "gradient_penalty": cfg.gan_objective.gradient_penalty,
        "latent_dim": cfg.task.latent_dim,
        "norm": cfg.gan_net.generator.get("norm"),
        "discriminator_norm": cfg.gan_net.discriminator.get("norm"),
        "ghost_batch_size": cfg.gan_net.generator.get("ghost_batch_size"),
        "regime": regime.name,
        "epoch_factor": regime.epoch_factor,
        "updates_per_epoch": per_epoch,
        "critic_steps_per_epoch": critic_steps_per_epoch,
        "metric_classifier": classifier_info["checkpoint"],
        "metric_classifier_model": classifier_info["model"],
        "metric_classifier_test_err": classifier_info["test_err"],
        "metric_features": "input of the metric classifier's last linear layer",
        "metric_samples": evaluator.num_samples,
        "metric_seed": evaluator.seed,
        "real_fid": evaluator.reference["fid"],
        "real_inception_score": evaluator.reference["inception_score"],
        "real_mode_coverage": evaluator.reference["mode_coverage"],
        "real_metric_samples": evaluator.reference["samples"],
        "version": package_version(),
        "git_revision": git_revision(),
        "error": None,
    }
    last = checkpoints / "last.ckpt"
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
    except BaseException as err:
        summary.update(status="failed", error=f"{type(err).__name__}: {err}")
        # The updates made before the end, so a stopped run says how far it got.
        summary.update(updates=trainer.global_step, wall_time_s=time.time() - started)
        record(run_dir / "summary.json", summary)
        close_loggers(cfg, failed=True)
        raise

    # Read from the module's buffers and the records on disk, not the trainer: a fork- or
    # spawn-launched fit returns only the weights (buffers included) to this process.
    critic_steps = int(module.critic_steps)
    diverged_at = int(module.diverged_at_update)
    collapsed_at = int(module.collapsed_at_update)
    status = "completed"
    if collapsed_at >= 0:
        status = "collapsed"
    if diverged_at >= 0 or guard.diverged_at is not None:
        status = "diverged"
    _, quality = read_quality(run_dir / "quality.csv") if rank_zero_only.rank == 0 else ({}, {})
    weights = last_row(run_dir / "weights.csv") if rank_zero_only.rank == 0 else {}
    summary.update(
        {
            f"{split}_{name}": None
            for split in ("train", "val", "test")
            for name in ("loss", "err")
        },
        status=status,
        diverged_at_update=diverged_at if diverged_at >= 0 else guard.diverged_at,
        collapsed_at_update=collapsed_at if collapsed_at >= 0 else None,
        gap=None,
        updates=critic_steps // n_critic,
        critic_steps=critic_steps,
        epochs=critic_steps / critic_steps_per_epoch,
        lr_milestone_updates=module.lr_drop_updates,
        final_weight_distance=_float(weights.get("weight_distance")),
        final_weight_distance_generator=_float(weights.get("weight_distance/generator")),
        final_weight_distance_discriminator=_float(weights.get("weight_distance/discriminator")),
        fid=quality.get("fid"),
        inception_score=quality.get("inception_score"),
        mode_coverage=quality.get("mode_coverage"),
        classes_covered=quality.get("classes_covered"),
        mode_kl=quality.get("mode_kl"),
        inception_fid=quality.get("inception_fid"),
        inception_is=quality.get("inception_is"),
        last_good_checkpoint=str(checkpoints / "last_good.ckpt")
        if (checkpoints / "last_good.ckpt").exists()
        else None,
        wall_time_s=time.time() - started,
    )
    record(run_dir / "summary.json", summary)
    close_loggers(cfg, failed=False)
    rank_zero_log(
        "%s: %d generator updates, fid %.4g (real %.4g), inception score %.3g, mode coverage "
        "%s -> %s",
        status,
        summary["updates"],
        summary["fid"] if summary["fid"] is not None else float("nan"),
        summary["real_fid"],
        summary["inception_score"] if summary["inception_score"] is not None else float("nan"),
        summary["mode_coverage"],
        run_dir,
    )
    return summary
