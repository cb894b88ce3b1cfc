"""Steps-to-target, the critical batch size and how it compares with B_simple and the gap.

Shallue et al. 2018 and McCandlish et al. 2018: the updates S needed to reach a target fall as
S = S_min (1 + B_crit / B); below B_crit a bigger batch saves updates almost one for one, above
it a bigger batch saves almost nothing.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from batchgap_analysis.records import Run

log = logging.getLogger(__name__)

METRIC = "val/err"


def read_metric(run_dir: Path, metric: str = METRIC) -> pd.DataFrame:
    """(step, value) of `metric` from every Lightning CSV log of a run (resumes included)."""
    frames = []
    for path in sorted(Path(run_dir).glob("csv/**/metrics.csv")):
        try:
            frame = pd.read_csv(path)
        except (OSError, ValueError, pd.errors.ParserError):
            continue
        if metric in frame and "step" in frame:
            frames.append(frame[["step", metric]].dropna())
    if not frames:
        return pd.DataFrame(columns=["step", "value"])
    merged = pd.concat(frames).rename(columns={metric: "value"})
    return merged.sort_values("step", kind="stable").drop_duplicates("step", keep="last")


def steps_to_target(curve: pd.DataFrame, target: float) -> float:
    """The first evaluated update at which the metric is at or below target; NaN if never.

    The answer is exact to the evaluation interval: the target was crossed at most this late.
    """
    reached = curve[curve["value"] <= target]
    # Lightning logs an evaluation after update `step` as step - 1 when it closes an epoch.
    return float(reached["step"].iloc[0]) + 1 if len(reached) else math.nan


def steps_table(runs: list[Run], target: float, metric: str = METRIC) -> pd.DataFrame:
    """One row per run: batch, lr, seed, steps and examples to reach the target."""
    rows = []
    for run in runs:
        steps = steps_to_target(read_metric(run.path, metric), target)
        rows.append(
            {
                "run": str(run.path),
                "global_batch_size": run.batch_size,
                "lr": run.summary.get("lr"),
                "seed": run.summary.get("seed"),
                "steps": steps,
                "examples": steps * run.batch_size,
                "b_simple": run.summary.get("b_simple"),
                "test_err": run.summary.get("test_err"),
            }
        )
    return pd.DataFrame(rows)


def best_per_batch(table: pd.DataFrame) -> pd.DataFrame:
    """Per batch size, the lr whose seeds all reached the target in the fewest mean steps."""
    per_lr = (
        table.groupby(["global_batch_size", "lr"])
        .agg(
            steps=("steps", "mean"),
            steps_std=("steps", "std"),
            reached=("steps", lambda s: bool(s.notna().all())),
            seeds=("steps", "size"),
        )
        .reset_index()
    )
    best = per_lr[per_lr["reached"]].sort_values("steps").groupby("global_batch_size").head(1)
    best = best.sort_values("global_batch_size").reset_index(drop=True)
    best["examples"] = best["steps"] * best["global_batch_size"]
    return best


def fit_critical_batch(batch: np.ndarray, steps: np.ndarray) -> dict:
    """Least squares S = S_min (1 + B_crit / B), relative errors; values and standard errors."""
    from scipy.optimize import curve_fit

    batch, steps = np.asarray(batch, float), np.asarray(steps, float)
    if len(batch) < 3:
        raise ValueError(f"need steps-to-target at >= 3 batch sizes, got {len(batch)}")

    def model(b, s_min, b_crit):
        return s_min * (1 + b_crit / b)

    start = (steps.min(), float(np.median(batch)))
    params, cov = curve_fit(model, batch, steps, p0=start, sigma=steps, maxfev=20000)
    errors = np.sqrt(np.diag(cov))
    return {"s_min": params[0], "s_min_se": errors[0], "b_crit": params[1], "b_crit_se": errors[1]}


def change_points(best: pd.DataFrame, table: pd.DataFrame, run_fits: pd.DataFrame) -> dict:
    """The smallest batch at which the log-t slope halves, and at which test error rises.

    Slope: mean fitted b (d = a + b ln t) below half the smallest batch's. Gap: mean test error
    above the smallest batch's by more than twice the standard error of the difference. Both
    use each batch size's best lr.
    """
    chosen = table.merge(best[["global_batch_size", "lr"]], on=["global_batch_size", "lr"])
    slopes = pd.Series(dtype=float)
    if not run_fits.empty and "log_b" in run_fits:
        whole = run_fits[(run_fits["level"] == "run") & (run_fits["network"] == "")]
        slopes = (
            chosen.merge(whole[["run", "log_b"]], on="run")
            .groupby("global_batch_size")["log_b"]
            .mean()
        )
    errors = chosen.groupby("global_batch_size")["test_err"].agg(["mean", "std", "size"])
    batches = sorted(errors.index)
    slope_change = gap_change = None
    if len(slopes) and batches[0] in slopes:
        base = slopes[batches[0]]
        slope_change = next((b for b in batches[1:] if slopes.get(b, base) < 0.5 * base), None)
    if batches:
        ref = errors.loc[batches[0]]
        for b in batches[1:]:
            row = errors.loc[b]
            se = math.sqrt(
                (ref["std"] or 0) ** 2 / ref["size"] + (row["std"] or 0) ** 2 / row["size"]
            )
            if row["mean"] - ref["mean"] > 2 * se:
                gap_change = b
                break
    return {"slope_change_batch": slope_change, "gap_change_batch": gap_change}


def critical_study(runs: list[Run], run_fits: pd.DataFrame, target: float) -> dict | None:
    """The whole comparison, or None when too few batch sizes reached the target to fit."""
    table = steps_table(runs, target)
    if table["steps"].notna().sum() == 0:
        return {"table": table, "best": pd.DataFrame(), "fit": None, "note": "no run reached"}
    best = best_per_batch(table)
    result = {"table": table, "best": best, "fit": None, "note": None}
    try:
        result["fit"] = fit_critical_batch(best["global_batch_size"], best["steps"])
    except (ValueError, RuntimeError) as err:
        result["note"] = f"B_crit not fitted: {err}"
    simple = table["b_simple"].dropna()
    result["b_simple"] = float(simple.median()) if len(simple) else None
    result["b_simple_iqr"] = (
        (float(simple.quantile(0.25)), float(simple.quantile(0.75))) if len(simple) else None
    )
    result.update(change_points(best, table, run_fits))
    return result


def critical_figure(result: dict, target: float):
    """Steps- and examples-to-target against batch size, log-log, regimes marked."""
    from matplotlib.figure import Figure

    best, table, fit = result["best"], result["table"], result["fit"]
    figure = Figure(figsize=(10, 4.2), layout="constrained")
    axes = figure.subplots(1, 2)
    reached = table.dropna(subset=["steps"])
    for ax, column, label in (
        (axes[0], "steps", "updates to target S"),
        (axes[1], "examples", "examples to target E = S B"),
    ):
        ax.scatter(
            reached["global_batch_size"],
            reached[column],
            s=10,
            alpha=0.3,
            color="grey",
            label="each run (any lr)",
        )
        ax.plot(best["global_batch_size"], best[column], "o-", label="best lr per batch")
        if fit is not None:
            grid = np.geomspace(best["global_batch_size"].min(), best["global_batch_size"].max())
            s = fit["s_min"] * (1 + fit["b_crit"] / grid)
            ax.plot(
                grid,
                s if column == "steps" else s * grid,
                "--",
                color="black",
                label=f"S_min(1+B_crit/B), B_crit={fit['b_crit']:.0f}",
            )
            b_crit = fit["b_crit"]
            ax.axvspan(grid[0], b_crit / 4, color="tab:green", alpha=0.07)
            ax.axvspan(b_crit / 4, b_crit * 4, color="tab:orange", alpha=0.07)
            ax.axvspan(b_crit * 4, grid[-1], color="tab:red", alpha=0.07)
            ax.text(
                0.02,
                0.02,
                "green: perfect scaling, orange: diminishing returns, red: no gain",
                transform=ax.transAxes,
                fontsize=7,
            )
        # The other estimates of where batches stop paying, on the same axis.
        markers = (
            (result.get("b_simple"), "tab:purple", "B_simple (noise scale, median)"),
            (result.get("slope_change_batch"), "tab:brown", "log-t slope halves"),
            (result.get("gap_change_batch"), "tab:red", "test error rises"),
        )
        for value, colour, name in markers:
            if value:
                ax.axvline(value, color=colour, ls="-.", lw=1.2, label=f"{name}: {value:.0f}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("global batch size B (examples per update)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    figure.suptitle(f"Updates and examples to reach {METRIC} <= {target:g}")
    return figure
