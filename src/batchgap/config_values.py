"""Range checks of a job's settings, cheap enough to run on every job of a sweep up front."""

from __future__ import annotations

import math
from collections.abc import Callable

from omegaconf import DictConfig, OmegaConf

from batchgap.batching import batch_layout
from batchgap.data.sizes import check_data_fits, training_examples
from batchgap.errors import ConfigError
from batchgap.models.norm import check_norm
from batchgap.scaling.rules import scaled_lr

# Lightning's own precision names (lightning.fabric.connector), listed to refuse a typo early.
PRECISIONS = (
    "32-true",
    "16-mixed",
    "bf16-mixed",
    "16-true",
    "bf16-true",
    "64-true",
    "transformer-engine",
    "transformer-engine-float16",
    "32",
    "16",
    "bf16",
    "64",
)


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _at_least(low: int) -> Callable[[object], bool]:
    return lambda value: _integer(value) and value >= low


def _optional(check: Callable[[object], bool]) -> Callable[[object], bool]:
    return lambda value: value is None or check(value)


def _fraction(value) -> bool:
    return _number(value) and 0 < value < 1


# key, test, what is valid. Keys a config does not have (another task's, another dataset's)
# are skipped.
RULES: tuple[tuple[str, Callable[[object], bool], str], ...] = (
    # NumPy's generator, seeded by Lightning's seed_everything, takes 32-bit unsigned seeds.
    ("seed", lambda v: _integer(v) and 0 <= v < 2**32, "an integer in [0, 4294967295]"),
    ("num_threads", _optional(_at_least(1)), "null or an integer >= 1"),
    ("data.eval_batch_size", _at_least(1), "an integer >= 1"),
    # torchvision datasets bring their own test split: no test_fraction there.
    ("data.val_fraction", _fraction, "a fraction strictly between 0 and 1"),
    ("data.test_fraction", _optional(_fraction), "null or a fraction strictly between 0 and 1"),
    ("optim.gradient_clip_norm", _optional(lambda v: _number(v) and v > 0), "null or > 0"),
    ("scaling.warmup_epochs", lambda v: _number(v) and v >= 0, "a number >= 0"),
    ("checkpoint.every_n_epochs", _at_least(1), "an integer >= 1"),
    ("early_stop.val_err_below", _optional(lambda v: _number(v) and 0 <= v <= 1), "in [0, 1]"),
    ("noise_scale.ema_decay", lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
    ("noise_scale.every_n_updates", _at_least(1), "an integer >= 1"),
    ("trainer.precision", lambda v: str(v) in PRECISIONS, "one of " + ", ".join(PRECISIONS)),
)

# The classifier net's sizes; a GAN run checks its own nets when it builds them.
MODEL_RULES: tuple[tuple[str, Callable[[object], bool], str], ...] = (
    ("model.width", _at_least(1), "an integer >= 1"),
    ("model.depth", _at_least(0), "an integer >= 0"),
    ("model.hidden", _at_least(1), "an integer >= 1"),
    ("model.dropout", lambda v: _number(v) and 0 <= v < 1, "a number in [0, 1)"),
)

_ABSENT = object()

# Lightning Trainer arguments that batchgap derives itself, and what sets each; a
# `+trainer.<name>` would clash with them when the Trainer is built.
TRAINER_ARGUMENTS_SET = {
    "max_epochs": "regime.epochs",
    "max_steps": "regime.max_updates",
    "gradient_clip_val": "optim.gradient_clip_norm",
    "log_every_n_steps": "the epoch's length (at most 50)",
    "callbacks": "batchgap's callbacks",
    "plugins": "batchgap's Slurm detection",
    "logger": "the logger group",
    "default_root_dir": "hydra.run.dir",
    "use_distributed_sampler": "batchgap's own sharded batches",
    "enable_model_summary": "batchgap (off)",
}


def trainer_argument_refusal(name: str) -> str | None:
    """Why `trainer.<name>` cannot be set, when batchgap derives that Trainer argument itself."""
    if name not in TRAINER_ARGUMENTS_SET:
        return None
    source = TRAINER_ARGUMENTS_SET[name]
    return f"trainer.{name} is set by batchgap from {source}; set that instead"


def _check_rules(cfg: DictConfig, rules) -> None:
    for key, valid, what in rules:
        value = OmegaConf.select(cfg, key, default=_ABSENT)
        if value is not _ABSENT and not valid(value):
            raise ConfigError(f"{key}={value!r} is invalid; it must be {what}")


def check_values(cfg: DictConfig) -> None:
    """Raise ConfigError naming the first setting of this job outside its valid range."""
    _check_rules(cfg, RULES)
    for name in cfg.trainer:
        refusal = trainer_argument_refusal(str(name))
        if refusal:
            raise ConfigError(refusal)
    val, test = cfg.data.get("val_fraction"), cfg.data.get("test_fraction")
    if val is not None and test is not None and val + test >= 1:
        raise ConfigError(
            f"data.val_fraction={val} + data.test_fraction={test} leave no training data; "
            "their sum must be below 1"
        )
    # The layout checks the batch is a positive integer before it is compared with the data.
    layout = batch_layout(
        cfg.data.global_batch_size,
        cfg.trainer.devices,
        cfg.trainer.num_nodes,
        cfg.trainer.accumulate_grad_batches,
    )
    train_size = training_examples(cfg.data)
    if train_size is not None:
        check_data_fits(cfg.data, train_size)
    scaled_lr(
        cfg.optim.lr, cfg.scaling.rule, layout.global_batch_size, cfg.scaling.reference_batch_size
    )
    if cfg.task.get("name", "classify") == "classify":
        _check_rules(cfg, MODEL_RULES)
        check_norm(
            cfg.model.get("norm"),
            cfg.model.get("ghost_batch_size"),
            layout.per_device_batch_size,
            cfg.trainer.accelerator,
        )
