"""Zagoruyko & Komodakis's wide ResNets (WRN-depth-k) for CIFAR, pre-activation blocks."""

from __future__ import annotations

from torch import nn

from batchgap.errors import ConfigError
from batchgap.models.norm import make_norm


class WideBlock(nn.Module):
    """[norm, ReLU, conv 3x3, norm, ReLU, dropout, conv 3x3] + shortcut (pre-activation)."""

    def __init__(self, in_channels, out_channels, stride, dropout, norm, ghost_batch_size):
        super().__init__()
        bias = norm == "none"
        self.pre = nn.Sequential(
            make_norm(norm, in_channels, dims=2, ghost_batch_size=ghost_batch_size),
            nn.ReLU(inplace=True),
        )
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=bias),
            make_norm(norm, out_channels, dims=2, ghost_batch_size=ghost_batch_size),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout) if dropout else nn.Identity(),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=bias),
        )
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=bias)

    def forward(self, x):
        activated = self.pre(x)
        # Where the shape changes the shortcut sees the activated input, as in the WRN paper.
        shortcut = x if self.shortcut is None else self.shortcut(activated)
        return self.body(activated) + shortcut


class WideResNet(nn.Module):
    """Conv stem, three stages of (depth - 4) / 6 wide blocks (16k, 32k, 64k), norm, pool, head."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        depth: int = 16,
        widen_factor: int = 4,
        dropout: float = 0.0,
        norm: str = "bn",
        ghost_batch_size: int | None = None,
    ):
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
            raise ConfigError(
                f"model.depth={depth!r} is invalid for a wide ResNet; use 6n + 4 (16, 22, 28)"
            )
        blocks = (depth - 4) // 6
        widths = [16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        layers: list[nn.Module] = [
            nn.Conv2d(input_shape[0], 16, 3, padding=1, bias=norm == "none")
        ]
        in_channels = 16
        for stage, width in enumerate(widths):
            for block in range(blocks):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(
                    WideBlock(in_channels, width, stride, dropout, norm, ghost_batch_size)
                )
                in_channels = width
        layers += [
            make_norm(norm, in_channels, dims=2, ghost_batch_size=ghost_batch_size),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(in_channels, num_classes),
        ]
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)
