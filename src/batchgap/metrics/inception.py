"""torchmetrics' Inception FID and IS, used only with Inception-v3 weights already on disk.

batchgap never downloads the weights: give the torch-fidelity weights file (e.g.
`pt_inception-2015-12-05-6726825d.pth`) as `task.metrics.inception_weights`.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from batchgap.errors import ConfigError


def check_inception_weights(path: str | Path) -> Path:
    """The weights file, or ConfigError when it is missing or torch-fidelity is not installed."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"task.metrics.inception_weights={path} is not a file; give a local Inception-v3 "
            "weights file for torch-fidelity (batchgap never downloads it) or null"
        )
    if importlib.util.find_spec("torch_fidelity") is None:
        raise ConfigError(
            "task.metrics.inception_weights needs the torch-fidelity package; "
            "pip install 'batchgap[inception]', or set it to null"
        )
    return path


def _as_rgb_unit(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] as 3-channel images in [0, 1], what the metrics take with normalize."""
    unit = (images.clamp(-1, 1) + 1) / 2
    return unit.expand(-1, 3, -1, -1) if unit.shape[1] == 1 else unit


class InceptionMetrics:
    """Inception FID against fixed real images, and the Inception score, of image batches."""

    def __init__(self, weights: Path, real_images: torch.Tensor, batch_size: int = 256):
        # Limitation: tested on random weights only; no published Inception weights exist here.
        from torchmetrics.image.fid import FrechetInceptionDistance, NoTrainInceptionV3
        from torchmetrics.image.inception import InceptionScore

        self.batch_size = batch_size
        self.fid = FrechetInceptionDistance(
            feature=2048,
            normalize=True,
            reset_real_features=False,
            feature_extractor_weights_path=str(weights),
        )
        logits = NoTrainInceptionV3(
            name="inception-v3-compat",
            features_list=["logits_unbiased"],
            feature_extractor_weights_path=str(weights),
        )
        self.inception_score = InceptionScore(feature=logits, normalize=True)
        for chunk in real_images.split(batch_size):
            self.fid.update(_as_rgb_unit(chunk), real=True)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> dict:
        """`inception_fid` and `inception_is` of images in [-1, 1]."""
        self.fid.reset()
        self.inception_score.reset()
        for chunk in images.split(self.batch_size):
            unit = _as_rgb_unit(chunk)
            self.fid.update(unit, real=False)
            self.inception_score.update(unit)
        return {
            "inception_fid": float(self.fid.compute()),
            "inception_is": float(self.inception_score.compute()[0]),
        }
