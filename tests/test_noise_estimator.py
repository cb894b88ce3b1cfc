"""The two-batch-size noise-scale estimator against known gradient statistics."""

import numpy as np
import pytest

from batchgap.noise.estimator import NoiseScaleEMA, two_batch_estimates


def minibatch_sq_norm(rng, mean, cov_sqrt, batch):
    """|mean of `batch` per-example gradients|^2, per-example gradients ~ N(mean, Sigma)."""
    samples = mean + rng.standard_normal((batch, len(mean))) @ cov_sqrt.T
    return float(np.sum(samples.mean(axis=0) ** 2))


def test_recovers_known_trace_and_gradient_norm_from_gaussian_noise():
    rng = np.random.default_rng(0)
    dim = 20
    mean = rng.normal(0, 0.3, dim)
    cov_sqrt = rng.normal(0, 0.5, (dim, dim))
    true_trace = float(np.trace(cov_sqrt @ cov_sqrt.T))
    true_sq = float(mean @ mean)
    ema = NoiseScaleEMA(decay=0.999)
    for _ in range(4000):
        ema.update(
            minibatch_sq_norm(rng, mean, cov_sqrt, 8),
            minibatch_sq_norm(rng, mean, cov_sqrt, 64),
            8,
            64,
        )
    # Tolerance: 10% on each, from the EMA's effective window of ~1000 noisy estimates.
    assert ema.trace == pytest.approx(true_trace, rel=0.10)
    assert ema.true_sq == pytest.approx(true_sq, rel=0.10)
    assert ema.b_simple == pytest.approx(true_trace / true_sq, rel=0.2)


def test_recovers_noise_of_a_linear_regression_gradient():
    rng = np.random.default_rng(1)
    n, dim = 20000, 5
    x = rng.standard_normal((n, dim))
    y = x @ rng.standard_normal(dim) + rng.normal(0, 1.0, n)
    w = np.zeros(dim)
    per_example = x * (x @ w - y)[:, None]  # gradient of 0.5 * (x.w - y)^2
    true_sq = float(np.sum(per_example.mean(axis=0) ** 2))
    true_trace = float(np.trace(np.cov(per_example.T)))
    ema = NoiseScaleEMA(decay=0.999)
    for _ in range(4000):
        small = per_example[rng.choice(n, 4)].mean(axis=0)
        big = per_example[rng.choice(n, 32)].mean(axis=0)
        ema.update(float(small @ small), float(big @ big), 4, 32)
    assert ema.trace == pytest.approx(true_trace, rel=0.15)
    assert ema.true_sq == pytest.approx(true_sq, rel=0.15)


def test_exact_on_expected_norms():
    true_sq, trace = two_batch_estimates(2.0 + 30 / 10, 2.0 + 30 / 100, 10, 100)
    assert true_sq == pytest.approx(2.0)
    assert trace == pytest.approx(30.0)


def test_batch_sizes_must_differ():
    with pytest.raises(ValueError, match="batch_small < batch_big"):
        two_batch_estimates(1.0, 1.0, 64, 64)
