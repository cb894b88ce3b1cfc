"""Fit one distance curve d(t) with the log law and its rivals, and say which the data prefer."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

# The three laws compared on the same points: Hoffer et al.'s ultra-slow diffusion, a free
# power law, and ordinary diffusion (a power law with p = 1/2).
MODELS = ("log", "power", "sqrt")
PARAMETERS = {"log": ("a", "b"), "power": ("c", "p"), "sqrt": ("c",)}
FORMULAS = {"log": "a + b ln t", "power": "c t^p", "sqrt": "c sqrt(t)"}
MIN_POINTS = 3


class FitSkipped(ValueError):
    """A curve cannot be fitted; the message is the one-line reason."""


@dataclass(frozen=True)
class ModelFit:
    """Least-squares parameters, their standard errors, and goodness of fit on n points."""

    model: str
    params: dict[str, float]
    errors: dict[str, float]
    rss: float
    r2: float
    aic: float
    note: str = ""

    def predict(self, t: np.ndarray) -> np.ndarray:
        return predict(self.model, self.params, t)


@dataclass(frozen=True)
class CurveFit:
    """All models fitted on one window of one curve, and the one with the lowest AIC."""

    n: int
    t_start: float
    t_end: float
    d_end: float  # the measured distance at t_end
    fits: dict[str, ModelFit] = field(default_factory=dict)

    @property
    def preferred(self) -> str:
        finite = {m: f.aic for m, f in self.fits.items() if math.isfinite(f.aic)}
        return min(finite, key=finite.get) if finite else ""


def predict(model: str, params: dict[str, float], t: np.ndarray) -> np.ndarray:
    """The distance a model predicts at updates t."""
    t = np.asarray(t, dtype=float)
    if model == "log":
        return params["a"] + params["b"] * np.log(t)
    if model == "power":
        return params["c"] * t ** params["p"]
    return params["c"] * np.sqrt(t)


def log_spaced(t: np.ndarray, per_decade: int = 20) -> np.ndarray:
    """Mask of the first point in each 1/per_decade decade of t, for sorted t > 0."""
    # Epoch-end rows are dense at late updates when epochs are short (a large batch trained
    # for many epochs); thinning gives every decade of t the same weight in a fit.
    with np.errstate(divide="ignore"):
        bins = np.round(np.log10(np.asarray(t, dtype=float)) * per_decade)
    _, first = np.unique(bins, return_index=True)
    keep = np.zeros(len(bins), dtype=bool)
    keep[first] = True
    return keep


def fit_window(t: np.ndarray, d: np.ndarray, t_start: float, t_end: float = math.inf) -> CurveFit:
    """Fit all models on the points with t_start <= t <= t_end; FitSkipped if under 3 points."""
    t = np.asarray(t, dtype=float)
    d = np.asarray(d, dtype=float)
    inside = (t >= t_start) & (t <= t_end) & np.isfinite(d)
    n = int(inside.sum())
    if n < MIN_POINTS:
        shown = "end" if math.isinf(t_end) else f"{t_end:g}"
        raise FitSkipped(
            f"window t in [{t_start:g}, {shown}] holds {n} point(s); a fit needs {MIN_POINTS}"
        )
    t, d = t[inside], d[inside]
    fits = {"log": fit_log(t, d), "power": fit_power(t, d), "sqrt": fit_sqrt(t, d)}
    return CurveFit(n=n, t_start=float(t[0]), t_end=float(t[-1]), d_end=float(d[-1]), fits=fits)


def fit_log(t: np.ndarray, d: np.ndarray) -> ModelFit:
    """Ordinary least squares d = a + b ln t, with the textbook standard errors of a and b."""
    design = np.column_stack([np.ones_like(t), np.log(t)])
    coef, *_ = np.linalg.lstsq(design, d, rcond=None)
    residual = d - design @ coef
    rss = float(residual @ residual)

    dof = len(t) - 2
    if dof > 0 and np.ptp(design[:, 1]) > 0:
        covariance = rss / dof * np.linalg.inv(design.T @ design)
        se = np.sqrt(np.diag(covariance))
    else:
        se = np.full(2, math.nan)
    return _model_fit("log", coef, se, rss, d)


def fit_power(t: np.ndarray, d: np.ndarray) -> ModelFit:
    """Nonlinear least squares d = c t^p in linear space, started from a log-log line."""
    start = _loglog_start(t, d)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", OptimizeWarning)
            coef, covariance = curve_fit(lambda x, c, p: c * x**p, t, d, p0=start, maxfev=5000)
        se = np.sqrt(np.diag(covariance))
        note = ""
    except (RuntimeError, OptimizeWarning, ValueError) as err:
        # Keep the log-log estimate, marked, rather than dropping the rival altogether.
        coef, se, note = np.asarray(start), np.full(2, math.nan), f"power fit failed: {err}"
    residual = d - coef[0] * t ** coef[1]
    return _model_fit("power", coef, se, float(residual @ residual), d, note)


def fit_sqrt(t: np.ndarray, d: np.ndarray) -> ModelFit:
    """Least squares d = c sqrt(t), in closed form."""
    root = np.sqrt(t)
    c = float(root @ d / (root @ root))
    residual = d - c * root
    rss = float(residual @ residual)
    dof = len(t) - 1
    se = math.sqrt(rss / dof / float(root @ root)) if dof > 0 else math.nan
    return _model_fit("sqrt", np.array([c]), np.array([se]), rss, d)


def aic(rss: float, n: int, k: int) -> float:
    """Akaike's criterion for Gaussian residuals: n ln(RSS/n) + 2k."""
    # A perfect fit would give -inf; a floor keeps models comparable on noiseless data.
    return n * math.log(max(rss / n, 1e-300)) + 2 * k


def _model_fit(model, coef, se, rss, d, note="") -> ModelFit:
    names = PARAMETERS[model]
    total = float(((d - d.mean()) ** 2).sum())
    r2 = 1.0 - rss / total if total > 0 else math.nan
    return ModelFit(
        model=model,
        params={k: float(v) for k, v in zip(names, coef, strict=True)},
        errors={k: float(v) for k, v in zip(names, se, strict=True)},
        rss=rss,
        r2=r2,
        aic=aic(rss, len(d), len(names)),
        note=note,
    )


def _loglog_start(t: np.ndarray, d: np.ndarray) -> tuple[float, float]:
    positive = d > 0
    if positive.sum() >= 2 and np.ptp(np.log(t[positive])) > 0:
        p, log_c = np.polyfit(np.log(t[positive]), np.log(d[positive]), 1)
        return float(np.exp(log_c)), float(p)
    return float(np.mean(np.abs(d)) or 1.0), 0.5
