"""Ghost batch norm (Hoffer et al. 2017): batch-norm statistics over small virtual batches."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from batchgap.errors import ConfigError


class GhostBatchNorm(nn.Module):
    """Batch norm whose training statistics come from each `ghost_batch_size` slice of the batch.

    Works on (N, C) and (N, C, H, W) inputs; parameters and buffers have batch norm's names, so
    a BatchNorm state dict loads into it and eval mode computes exactly what BatchNorm computes.
    """

    def __init__(
        self,
        num_features: int,
        ghost_batch_size: int,
        momentum: float = 0.1,
        eps: float = 1e-5,
    ):
        super().__init__()
        if isinstance(ghost_batch_size, bool) or not isinstance(ghost_batch_size, int):
            raise ConfigError(
                f"model.ghost_batch_size={ghost_batch_size!r} is invalid; "
                "it must be a positive integer"
            )
        if ghost_batch_size < 1:
            raise ConfigError(
                f"model.ghost_batch_size={ghost_batch_size} is invalid; it must be >= 1"
            )
        self.num_features = num_features
        self.ghost_batch_size = ghost_batch_size
        self.momentum = momentum
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, ghost_batch_size={self.ghost_batch_size}, "
            f"momentum={self.momentum}, eps={self.eps}"
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() not in (2, 4):
            raise ValueError(f"GhostBatchNorm takes (N, C) or (N, C, H, W) input, not {x.dim()}-D")
        if not self.training:
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, eps=self.eps
            )

        batch, channels, spatial = x.shape[0], x.shape[1], x.shape[2:]
        if batch % self.ghost_batch_size:
            raise ValueError(
                f"a training batch of {batch} does not split into ghost batches of "
                f"{self.ghost_batch_size}"
            )
        ghosts = batch // self.ghost_batch_size
        # One column per (ghost, channel): (ghost_batch_size, ghosts x C, ...), so batch norm's
        # fused kernel normalizes each ghost batch with its own statistics.
        columns = (
            x.reshape(ghosts, self.ghost_batch_size, channels, *spatial)
            .transpose(0, 1)
            .reshape(self.ghost_batch_size, ghosts * channels, *spatial)
        )
        # With momentum 1 these buffers receive each column's mean and unbiased variance.
        means = torch.zeros(ghosts * channels, dtype=self.running_mean.dtype, device=x.device)
        variances = torch.ones_like(means)
        out = F.batch_norm(
            columns,
            means,
            variances,
            self.weight.repeat(ghosts),
            self.bias.repeat(ghosts),
            True,
            1.0,
            self.eps,
        )
        self._update_running_stats(means.view(ghosts, channels), variances.view(ghosts, channels))
        return (
            out.reshape(self.ghost_batch_size, ghosts, channels, *spatial)
            .transpose(0, 1)
            .reshape(x.shape)
        )

    @torch.no_grad()
    def _update_running_stats(self, means: torch.Tensor, variances: torch.Tensor) -> None:
        # Momentum compensation: each ghost batch makes one batch-norm update, in order, with
        # momentum m / k (k ghost batches), as if the k ghosts were k sequential micro-batches.
        # The stats then forget (1 - m/k)^k ~ 1 - m per optimizer update, about what plain batch
        # norm forgets, so the running-average horizon in updates does not depend on k; with
        # plain m per ghost it would shrink k-fold. k = 1 is exactly BatchNorm's update.
        ghosts = means.shape[0]
        alpha = self.momentum / ghosts
        # Closed form of the k sequential updates: ghost i (0-based) is weighted
        # alpha (1 - alpha)^(k - 1 - i), the old running value (1 - alpha)^k.
        powers = torch.arange(ghosts - 1, -1, -1, device=means.device, dtype=means.dtype)
        weights = (alpha * (1 - alpha) ** powers).unsqueeze(1)
        keep = (1 - alpha) ** ghosts
        self.running_mean.mul_(keep).add_((weights * means).sum(0))
        self.running_var.mul_(keep).add_((weights * variances).sum(0))
        self.num_batches_tracked.add_(1)


def check_ghost_batch_size(ghost_batch_size, per_device_batch_size: int) -> None:
    """Raise ConfigError unless `ghost_batch_size` splits the per-device batch evenly."""
    divisors = [d for d in range(per_device_batch_size, 0, -1) if per_device_batch_size % d == 0]
    shown = ", ".join(map(str, divisors[:6])) + (", ..." if len(divisors) > 6 else "")
    hint = f"use a divisor of {per_device_batch_size} ({shown})"
    if isinstance(ghost_batch_size, bool) or not isinstance(ghost_batch_size, int):
        raise ConfigError(
            f"model.ghost_batch_size={ghost_batch_size!r} is invalid with model.norm=ghost_bn; "
            f"{hint}"
        )
    if ghost_batch_size < 1:
        raise ConfigError(f"model.ghost_batch_size={ghost_batch_size} is invalid; {hint}")
    if ghost_batch_size > per_device_batch_size:
        raise ConfigError(
            f"model.ghost_batch_size={ghost_batch_size} exceeds the per-device batch "
            f"{per_device_batch_size}; {hint}"
        )
    if per_device_batch_size % ghost_batch_size:
        raise ConfigError(
            f"model.ghost_batch_size={ghost_batch_size} does not divide the per-device batch "
            f"{per_device_batch_size}; {hint}"
        )
