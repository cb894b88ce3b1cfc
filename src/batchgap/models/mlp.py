"""Fully connected classifiers (Hoffer's F1 is `depth=5, width=512` with batch norm)."""

from __future__ import annotations

import math

from torch import nn

from batchgap.models.norm import make_norm


class MLP(nn.Module):
    """Flatten, then `depth` blocks of [Linear(width), norm, ReLU, dropout], then a linear head."""

    def __init__(
        self,
        input_shape: tuple[int, ...],
        num_classes: int,
        width: int = 512,
        depth: int = 2,
        norm: str = "bn",
        dropout: float = 0.0,
        ghost_batch_size: int | None = None,
    ):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        features = math.prod(input_shape)
        for _ in range(depth):
            layers += [
                nn.Linear(features, width),
                make_norm(norm, width, dims=1, ghost_batch_size=ghost_batch_size),
                nn.ReLU(inplace=True),
            ]
            if dropout:
                layers.append(nn.Dropout(dropout))
            features = width
        layers.append(nn.Linear(features, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)
