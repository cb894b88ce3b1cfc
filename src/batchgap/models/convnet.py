"""A small convnet for 8x8, 28x28 and 32x32 images."""

from __future__ import annotations

from torch import nn

from batchgap.models.norm import make_norm


class ConvNet(nn.Module):
    """Two [conv 3x3, norm, ReLU, max-pool 2] stages, then [Linear, norm, ReLU] and a head."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        channels: tuple[int, int] = (32, 64),
        hidden: int = 128,
        norm: str = "bn",
        dropout: float = 0.0,
        ghost_batch_size: int | None = None,
    ):
        super().__init__()
        in_channels, height, width = input_shape
        stages: list[nn.Module] = []
        for out_channels in channels:
            stages += [
                nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
                make_norm(norm, out_channels, dims=2, ghost_batch_size=ghost_batch_size),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            in_channels = out_channels
            height, width = height // 2, width // 2
        self.features = nn.Sequential(*stages)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_channels * height * width, hidden),
            make_norm(norm, hidden, dims=1, ghost_batch_size=ghost_batch_size),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout) if dropout else nn.Identity(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
