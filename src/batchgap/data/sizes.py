"""Split sizes from the dataset name and fractions alone: a sweep is checked before it runs."""

from __future__ import annotations

import math

from batchgap.data.sources import _TORCHVISION
from batchgap.errors import ConfigError

# Examples before splitting: the whole embedded set, or the official training set, whose
# validation part is carved out of it (the official test set is the test split).
EXAMPLES = {
    "digits": 1797,
    "mnist5k": 5000,
    "mnist": 60000,
    "fashion_mnist": 60000,
    "cifar10": 50000,
    "cifar100": 50000,
}


def _held_out(fraction: float, examples: int) -> int:
    # scikit-learn's train_test_split rounds a fractional test size up.
    return math.ceil(fraction * examples)


def training_examples(cfg) -> int | None:
    """Examples in the training split of the `data` config; None where it cannot say (an
    unknown dataset, a fraction left unset), so the loaded data decide as the job starts."""
    examples = EXAMPLES.get(cfg.name)
    # As load_splits splits: torchvision's sets carve validation from the official train set.
    carved = cfg.name in _TORCHVISION
    fractions = (cfg.val_fraction, 0.0 if carved else cfg.test_fraction)
    if examples is None or None in fractions:
        return None
    if carved:
        return examples - _held_out(cfg.val_fraction, examples)
    train_val = examples - _held_out(cfg.test_fraction, examples)
    return train_val - _held_out(cfg.val_fraction / (1.0 - cfg.test_fraction), train_val)


def check_data_fits(cfg, train_size: int) -> None:
    """Fail early when one global batch is larger than the training split."""
    if cfg.global_batch_size > train_size:
        raise ConfigError(
            f"data.global_batch_size={cfg.global_batch_size} exceeds the {train_size} training "
            f"examples of {cfg.name}; use at most {train_size}"
        )
