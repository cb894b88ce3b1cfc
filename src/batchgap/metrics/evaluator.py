"""Scores a generator against real data on a fixed set of latents, the same for every run."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from batchgap.metrics.metric_classifier import FeatureClassifier
from batchgap.metrics.quality import frechet_distance, inception_score, mode_coverage


class QualityEvaluator:
    """Frechet distance to the real training split, inception score and mode coverage.

    Images are in the generator's range [-1, 1]; `to_classifier_input` maps them to what the
    metric classifier was trained on. `reference` holds real data's own scores: the test split
    (at most `num_samples` images) scored exactly as generated images are. With `inception`
    (torchmetrics on local Inception weights) the scores also hold `inception_fid` and
    `inception_is`.
    """

    def __init__(
        self,
        classifier: FeatureClassifier,
        real_train: torch.Tensor,
        real_test: torch.Tensor,
        to_classifier_input: Callable[[torch.Tensor], torch.Tensor],
        latent_dim: int,
        num_samples: int,
        seed: int,
        num_classes: int,
        inception: Callable[[torch.Tensor], dict] | None = None,
    ):
        self.classifier = classifier
        self.to_classifier_input = to_classifier_input
        self.num_classes = num_classes
        self.num_samples = num_samples
        self.seed = seed
        self.inception = inception
        noise = torch.Generator().manual_seed(seed)
        self.latents = torch.randn(num_samples, latent_dim, generator=noise)
        self.real_features, _ = classifier(to_classifier_input(real_train))
        self.reference = self._scores(real_test[:num_samples])
        self.reference["samples"] = min(num_samples, len(real_test))

    def _scores(self, images: torch.Tensor) -> dict:
        features, probabilities = self.classifier(self.to_classifier_input(images))
        scores = {
            "fid": frechet_distance(features, self.real_features),
            "inception_score": inception_score(probabilities),
            **mode_coverage(probabilities.argmax(1), self.num_classes),
        }
        if self.inception is not None:
            scores.update(self.inception(images))
        return scores

    @torch.no_grad()
    def evaluate(self, generator: nn.Module) -> dict:
        """Scores of `num_samples` images from the fixed latents, the generator in eval mode."""
        was_training = generator.training
        generator.eval()
        try:
            device = next(generator.parameters()).device
            images = torch.cat([generator(z.to(device)).cpu() for z in self.latents.split(1024)])
        finally:
            generator.train(was_training)
        if not torch.isfinite(images).all():
            return {"fid": float("nan"), "inception_score": float("nan"), "mode_coverage": 0.0}
        return self._scores(images.float())
