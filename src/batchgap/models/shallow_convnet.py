"""Keskar et al.'s shallow convnet, used by Hoffer et al. as C1 (CIFAR-10) and C3 (CIFAR-100)."""

from __future__ import annotations

from torch import nn

from batchgap.models.norm import make_norm


class ShallowConvNet(nn.Module):
    """Two [conv 5x5, norm, ReLU, max-pool 3/2] stages, then FC 384 and 192 with norm and dropout.

    C1 and C3 are this same net; only the dataset (and so `num_classes`) differs.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        channels: int = 64,
        hidden: tuple[int, int] = (384, 192),
        norm: str = "bn",
        dropout: float = 0.5,
        ghost_batch_size: int | None = None,
    ):
        super().__init__()
        in_channels, height, width = input_shape
        stages: list[nn.Module] = []
        for _ in range(2):
            stages += [
                nn.Conv2d(in_channels, channels, kernel_size=5, padding=2, bias=norm == "none"),
                make_norm(norm, channels, dims=2, ghost_batch_size=ghost_batch_size),
                nn.ReLU(inplace=True),
                # Overlapping 3x3 pooling with stride 2, as in the cuda-convnet CIFAR nets.
                nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
            ]
            in_channels = channels
            height, width = (height + 1) // 2, (width + 1) // 2
        self.features = nn.Sequential(*stages)

        layers: list[nn.Module] = [nn.Flatten()]
        features = channels * height * width
        for size in hidden:
            layers += [
                nn.Linear(features, size, bias=norm == "none"),
                make_norm(norm, size, dims=1, ghost_batch_size=ghost_batch_size),
                nn.ReLU(inplace=True),
                nn.Dropout(dropout) if dropout else nn.Identity(),
            ]
            features = size
        layers.append(nn.Linear(features, num_classes))
        self.classifier = nn.Sequential(*layers)

    def forward(self, x):
        return self.classifier(self.features(x))
