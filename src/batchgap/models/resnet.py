"""He et al.'s CIFAR ResNets (20, 32, 44, 56, 110 layers): three stages of basic blocks."""

from __future__ import annotations

from torch import nn

from batchgap.errors import ConfigError
from batchgap.models.norm import make_norm


class BasicBlock(nn.Module):
    """[conv 3x3, norm, ReLU, conv 3x3, norm] + shortcut, then ReLU (post-activation)."""

    def __init__(self, in_channels, out_channels, stride, norm, ghost_batch_size):
        super().__init__()
        bias = norm == "none"
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=bias),
            make_norm(norm, out_channels, dims=2, ghost_batch_size=ghost_batch_size),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=bias),
            make_norm(norm, out_channels, dims=2, ghost_batch_size=ghost_batch_size),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            # Projection shortcut (He et al.'s option B): a 1x1 conv where the shape changes.
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=bias),
                make_norm(norm, out_channels, dims=2, ghost_batch_size=ghost_batch_size),
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.body(x) + self.shortcut(x))


class CifarResNet(nn.Module):
    """Conv 3x3 stem, three stages of (depth - 2) / 6 basic blocks, global pool, linear head."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        depth: int = 20,
        widths: tuple[int, int, int] = (16, 32, 64),
        norm: str = "bn",
        ghost_batch_size: int | None = None,
    ):
        super().__init__()
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
            raise ConfigError(
                f"model.depth={depth!r} is invalid for a CIFAR ResNet; use 6n + 2 (20, 32, 44, 56)"
            )
        blocks = (depth - 2) // 6
        in_channels = input_shape[0]
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=norm == "none"),
            make_norm(norm, widths[0], dims=2, ghost_batch_size=ghost_batch_size),
            nn.ReLU(inplace=True),
        ]
        in_channels = widths[0]
        for stage, width in enumerate(widths):
            for block in range(blocks):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(BasicBlock(in_channels, width, stride, norm, ghost_batch_size))
                in_channels = width
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(in_channels, num_classes)]
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)
