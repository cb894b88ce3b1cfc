"""Training regimes: how long a run trains, in epochs and updates."""

from __future__ import annotations

from dataclasses import dataclass

from batchgap.errors import ConfigError

REGIMES = ("fixed", "adapted")


@dataclass(frozen=True)
class Regime:
    """The epochs and the optional update cap a run trains for."""

    name: str
    epochs: int
    epoch_factor: float
    max_updates: int | None


def training_regime(
    name: str,
    base_epochs: int,
    global_batch_size: int,
    reference_batch_size: int,
    updates_per_epoch: int,
    max_updates: int | None = None,
) -> Regime:
    """`fixed` keeps the epochs; `adapted` multiplies them by B / B_ref to keep the update count.

    Milestones are fractions of training, so stretching the epochs stretches them too.
    """
    if name not in REGIMES:
        raise ConfigError(f"regime.name={name!r} is unknown; valid: {', '.join(REGIMES)}")
    if isinstance(base_epochs, bool) or not isinstance(base_epochs, int) or base_epochs < 1:
        raise ConfigError(f"regime.epochs={base_epochs!r} is invalid; it must be >= 1")
    if max_updates is not None and (not isinstance(max_updates, int) or max_updates < 1):
        raise ConfigError(f"regime.max_updates={max_updates!r} is invalid; use null or >= 1")
    factor = 1.0
    if name == "adapted":
        factor = max(1.0, global_batch_size / reference_batch_size)
        reference_updates = base_epochs * updates_per_epoch * factor
        if max_updates is not None and max_updates < reference_updates:
            raise ConfigError(
                f"regime.max_updates={max_updates} is below the {int(reference_updates)} updates "
                f"the adapted regime needs to match the reference batch "
                f"{reference_batch_size}; raise it or use regime=fixed"
            )
    epochs = max(1, round(base_epochs * factor))
    return Regime(name=name, epochs=epochs, epoch_factor=factor, max_updates=max_updates)
