"""Generators and discriminators (critics) for GANs: MLPs for 8x8 images, DCGAN-style convnets.

A generator maps latents (N, latent_dim) to images (N, C, H, W) in [-1, 1] (a tanh output); a
discriminator maps images to one raw score per image, (N,): a logit for the minimax objectives,
a critic value for the Wasserstein ones.
"""

from __future__ import annotations

import math

from torch import nn

from batchgap.errors import ConfigError
from batchgap.models.norm import NORMS


def _layer_norm(num_features: int, dims: int, ghost_batch_size: int | None) -> nn.Module:
    # One group over (C, H, W) is layer norm with a per-channel affine: no batch statistics.
    return nn.LayerNorm(num_features) if dims == 1 else nn.GroupNorm(1, num_features)


def gan_norm(
    norm: str, num_features: int, dims: int, ghost_batch_size: int | None, key: str
) -> nn.Module:
    """A norm layer from the shared menu plus layer norm (`ln`), for WGAN-GP critics."""
    menu = {**NORMS, "ln": _layer_norm}
    if norm not in menu:
        raise ConfigError(f"{key}={norm!r} is unknown; valid: {', '.join(sorted(menu))}")
    return menu[norm](num_features, dims, ghost_batch_size)


# The norms of the shared menu that normalize with batch statistics.
BATCH_NORMS = frozenset({"bn", "ghost_bn", "sync_bn"})


def uses_batch_statistics(net: nn.Module) -> bool:
    """Whether a layer of `net` normalizes with batch statistics (plain, ghost or sync BN)."""
    return any("BatchNorm" in type(m).__name__ for m in net.modules())


class MLPGenerator(nn.Module):
    """Latent -> `depth` x [Linear(width), norm, ReLU] -> Linear(C*H*W) -> tanh -> image."""

    def __init__(
        self,
        image_shape: tuple[int, ...],
        latent_dim: int,
        width: int = 256,
        depth: int = 2,
        norm: str = "bn",
        ghost_batch_size: int | None = None,
    ):
        super().__init__()
        self.image_shape = tuple(image_shape)
        layers: list[nn.Module] = []
        features = latent_dim
        for _ in range(depth):
            layers += [
                nn.Linear(features, width),
                gan_norm(norm, width, 1, ghost_batch_size, "gan_net.generator.norm"),
                nn.ReLU(inplace=True),
            ]
            features = width
        layers += [nn.Linear(features, math.prod(self.image_shape)), nn.Tanh()]
        self.layers = nn.Sequential(*layers)

    def forward(self, z):
        return self.layers(z).view(-1, *self.image_shape)


class MLPDiscriminator(nn.Module):
    """Image -> flatten -> `depth` x [Linear(width), norm, LeakyReLU(0.2)] -> one score."""

    def __init__(
        self,
        image_shape: tuple[int, ...],
        width: int = 256,
        depth: int = 2,
        norm: str = "none",
        ghost_batch_size: int | None = None,
    ):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        features = math.prod(image_shape)
        for _ in range(depth):
            layers += [
                nn.Linear(features, width),
                gan_norm(norm, width, 1, ghost_batch_size, "gan_net.discriminator.norm"),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            features = width
        layers.append(nn.Linear(features, 1))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x).squeeze(1)


def _quarter_side(image_shape: tuple[int, ...]) -> int:
    """The side of the 4x smaller feature map the DCGAN nets start (G) or end (D) at."""
    _, height, width = image_shape
    if height != width or height % 4:
        raise ConfigError(
            f"gan_net=dcgan needs square images with a side divisible by 4 "
            f"(8, 28, 32); got {height}x{width}"
        )
    return height // 4


class DCGANGenerator(nn.Module):
    """Latent -> Linear to 4c x s x s, norm, ReLU -> two stride-2 transposed convs -> tanh (4s)."""

    def __init__(
        self,
        image_shape: tuple[int, ...],
        latent_dim: int,
        channels: int = 64,
        norm: str = "bn",
        ghost_batch_size: int | None = None,
    ):
        super().__init__()
        self.side = _quarter_side(image_shape)
        self.channels = channels
        key = "gan_net.generator.norm"
        self.project = nn.Linear(latent_dim, 4 * channels * self.side**2)
        self.upsample = nn.Sequential(
            gan_norm(norm, 4 * channels, 2, ghost_batch_size, key),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(4 * channels, 2 * channels, 4, stride=2, padding=1),
            gan_norm(norm, 2 * channels, 2, ghost_batch_size, key),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(2 * channels, image_shape[0], 4, stride=2, padding=1),
            nn.Tanh(),
        )

    def forward(self, z):
        h = self.project(z).view(-1, 4 * self.channels, self.side, self.side)
        return self.upsample(h)


class DCGANDiscriminator(nn.Module):
    """Two stride-2 convs with LeakyReLU(0.2), no norm on the first (as DCGAN), then one score."""

    def __init__(
        self,
        image_shape: tuple[int, ...],
        channels: int = 64,
        norm: str = "none",
        ghost_batch_size: int | None = None,
    ):
        super().__init__()
        side = _quarter_side(image_shape)
        self.layers = nn.Sequential(
            nn.Conv2d(image_shape[0], channels, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(channels, 2 * channels, 4, stride=2, padding=1),
            gan_norm(norm, 2 * channels, 2, ghost_batch_size, "gan_net.discriminator.norm"),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Flatten(),
            nn.Linear(2 * channels * side * side, 1),
        )

    def forward(self, x):
        return self.layers(x).squeeze(1)
