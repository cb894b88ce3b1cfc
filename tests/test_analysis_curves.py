"""The diffusion laws: parameters recovered from noisy curves, and the right law preferred."""

import math

import numpy as np
import pytest

from batchgap_analysis.curves import FitSkipped, aic, fit_window, log_spaced
from batchgap_analysis.fits import parse_fit_end

# Updates as the training side records them: every update to 10, then ~20 per decade.
T = np.unique(np.round(np.logspace(0, 4, 81)))


@pytest.mark.parametrize("seed", range(5))
def test_log_law_recovers_a_and_b(seed):
    rng = np.random.default_rng(seed)
    a, b, noise = 0.7, 1.3, 0.05
    d = a + b * np.log(T) + rng.normal(0, noise, T.size)

    fit = fit_window(T, d, t_start=10)

    log = fit.fits["log"]
    # Tolerance: 5 standard errors, and an absolute bound from the noise level.
    assert abs(log.params["b"] - b) < 5 * log.errors["b"]
    assert abs(log.params["a"] - a) < 5 * log.errors["a"]
    assert abs(log.params["b"] - b) < 0.02
    assert abs(log.params["a"] - a) < 0.15
    assert log.r2 > 0.999
    assert fit.preferred == "log"


def test_standard_errors_match_the_spread_over_noise_draws():
    a, b, noise = 0.0, 1.0, 0.1
    slopes, errors = [], []
    for seed in range(200):
        rng = np.random.default_rng(seed)
        fit = fit_window(T, a + b * np.log(T) + rng.normal(0, noise, T.size), 10)
        slopes.append(fit.fits["log"].params["b"])
        errors.append(fit.fits["log"].errors["b"])
    assert np.std(slopes) == pytest.approx(np.mean(errors), rel=0.2)


def test_power_law_data_prefer_a_free_power_law():
    rng = np.random.default_rng(1)
    d = 0.3 * T**0.35 * (1 + rng.normal(0, 0.01, T.size))

    fit = fit_window(T, d, t_start=10)

    assert fit.preferred == "power"
    assert fit.fits["power"].params["p"] == pytest.approx(0.35, abs=0.01)
    assert fit.fits["power"].params["c"] == pytest.approx(0.3, rel=0.05)
    assert fit.fits["log"].aic > fit.fits["power"].aic + 10


def test_ordinary_diffusion_prefers_a_power_law_over_the_log_law():
    rng = np.random.default_rng(2)
    d = 0.3 * T**0.5 + rng.normal(0, 0.01, T.size)

    fit = fit_window(T, d, t_start=10)

    # sqrt is the power law with p = 1/2 fixed; AIC may pick either over its free twin.
    assert fit.preferred in {"power", "sqrt"}
    assert fit.fits["sqrt"].params["c"] == pytest.approx(0.3, rel=0.01)
    assert fit.fits["log"].r2 < fit.fits["sqrt"].r2


def test_window_bounds_are_inclusive_and_respected():
    d = 1.0 + 2.0 * np.log(T)
    d[T > 100] = 0.0  # after the lr drop the law changes; these points must not enter

    fit = fit_window(T, d, t_start=10, t_end=100)

    assert fit.t_start == 10 and fit.t_end == 100
    assert fit.n == int(((T >= 10) & (T <= 100)).sum())
    assert fit.fits["log"].params["b"] == pytest.approx(2.0, abs=1e-9)


def test_window_with_two_points_is_skipped_with_a_reason():
    with pytest.raises(FitSkipped, match="holds 2 point"):
        fit_window(np.array([10.0, 20.0, 500.0]), np.array([1.0, 2.0, 3.0]), 10, 100)


def test_aic_is_gaussian_n_log_rss_over_n_plus_2k():
    assert aic(rss=2.0, n=10, k=2) == pytest.approx(10 * math.log(0.2) + 4)


def test_fit_end_parsing():
    assert parse_fit_end("first_lr_drop") == "first_lr_drop"
    assert parse_fit_end("end") == "end"
    assert parse_fit_end("300") == 300
    with pytest.raises(ValueError):
        parse_fit_end("sometime")


def test_dense_epoch_end_rows_are_thinned_to_even_weight_per_decade():
    # A large batch trained for many epochs records an epoch end every 2 updates.
    t = np.unique(np.concatenate([T, np.arange(1000, 10_001, 2)]))

    kept = t[log_spaced(t)]

    per_decade = np.histogram(np.log10(kept), bins=[1, 2, 3, 4])[0]
    assert per_decade.max() - per_decade.min() <= 1 and per_decade.max() <= 21
    assert set(range(1, 11)) <= set(kept.tolist()), "every update up to 10 is kept"
    assert len(kept) < 100 < len(t)
