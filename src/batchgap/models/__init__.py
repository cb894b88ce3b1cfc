"""Plain `nn.Module`s: they know nothing of Lightning, Hydra or logging."""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from batchgap.errors import ConfigError


def build_model(cfg: DictConfig, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Instantiate the `model` config group's `_target_` for this input shape and class count."""
    kwargs = OmegaConf.to_container(cfg, resolve=True)
    kwargs.pop("name", None)
    try:
        return instantiate(kwargs, input_shape=tuple(input_shape), num_classes=num_classes)
    except Exception as err:
        cause = err
        while cause.__cause__ is not None:
            cause = cause.__cause__
        if isinstance(cause, ConfigError):
            raise cause from None
        raise ConfigError(f"model={cfg.get('name')!r} could not be built: {cause}") from err
