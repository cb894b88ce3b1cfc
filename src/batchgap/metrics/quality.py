"""Frechet distance, classifier "inception score" and mode coverage of a set of images.

Inception weights cannot be downloaded here, so the features and class probabilities come from
a classifier trained by batchgap on the same dataset (see `metric_classifier.py`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def _psd_sqrt(matrix: Tensor) -> Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(a: Tensor, b: Tensor) -> float:
    """|mu_a - mu_b|^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2)) of two feature sets (N, F)."""
    a, b = a.double(), b.double()
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    # Tr((C_a C_b)^(1/2)) = Tr((S C_b S)^(1/2)) with S = C_a^(1/2): a symmetric PSD problem.
    root = _psd_sqrt(cov_a)
    cross = torch.linalg.eigvalsh(root @ cov_b @ root).clamp(min=0).sqrt().sum()
    distance = (mean_a - mean_b).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * cross
    return max(0.0, float(distance))


def inception_score(probabilities: Tensor) -> float:
    """exp(E_x KL(p(y|x) || p(y))) for class probabilities (N, K); between 1 and K."""
    p = probabilities.double().clamp(min=1e-12)
    marginal = p.mean(0, keepdim=True)
    return math.exp(float((p * (p.log() - marginal.log())).sum(1).mean()))


def mode_coverage(predicted: Tensor, num_classes: int, min_share: float = 0.2) -> dict:
    """The predicted-class histogram against uniform.

    `mode_coverage`: the fraction of classes predicted for at least `min_share` of their uniform
    share 1/K; `mode_kl`: KL(histogram || uniform), 0 when uniform, log K for a single class.
    """
    counts = torch.bincount(predicted.flatten(), minlength=num_classes).double()
    share = counts / counts.sum()
    covered = int((share >= min_share / num_classes).sum())
    nonzero = share[share > 0]
    kl = float((nonzero * (nonzero * num_classes).log()).sum())
    return {
        "mode_coverage": covered / num_classes,
        "classes_covered": covered,
        "mode_kl": kl,
        "class_histogram": [int(c) for c in counts.tolist()],
    }
