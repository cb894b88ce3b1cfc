"""The generalization gap per group, the updates a large batch needs, and what remedies close."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from batchgap_analysis.groups import Grouping
from batchgap_analysis.records import distance_column

log = logging.getLogger(__name__)

METRICS = ("train_err", "val_err", "test_err", "train_loss", "val_loss", "test_loss")


def run_table(grouping: Grouping) -> pd.DataFrame:
    """One row per run: final metrics, gap test_err - train_err, updates, final distances."""
    rows = []
    for group in grouping.groups:
        for run in group.runs:
            summary = run.summary
            row = {
                "group": group.id,
                "label": group.label,
                "global_batch_size": group.batch_size,
                "seed": summary.get("seed"),
                "run": str(run.path),
            }
            row.update({m: _number(summary.get(m)) for m in METRICS})
            row["gap"] = row["test_err"] - row["train_err"]
            if math.isnan(row["gap"]):
                row["gap"] = _number(summary.get("gap"))
            for key in ("updates", "epochs", "updates_per_epoch"):
                row[key] = _number(summary.get(key))
            last = run.weights.iloc[-1]
            for network in run.networks:
                row[distance_column(network)] = float(last[distance_column(network)])
            rows.append(row)
    return pd.DataFrame(rows)


def gap_table(runs: pd.DataFrame, grouping: Grouping) -> pd.DataFrame:
    """Per group: mean and seed std of every metric and of the gap, and the large-batch gap
    (test error minus the reference's) with the standard error of that difference."""
    spreads = {}
    for metric in (*METRICS, "gap"):
        spreads[f"{metric}_mean"] = (metric, "mean")
        spreads[f"{metric}_std"] = (metric, "std")
    stats = runs.groupby("group").agg(
        n_seeds=("run", "size"),
        **spreads,
        updates=("updates", "mean"),
        epochs=("epochs", "mean"),
    )
    counts = runs.groupby("group")["test_err"].count()

    rows = []
    for group in grouping.groups:
        row = {"group": group.id, "label": group.label, "global_batch_size": group.batch_size}
        row.update(stats.loc[group.id].to_dict())
        row["n_seeds"] = int(row["n_seeds"])
        reference = grouping.by_id(group.reference)
        row["reference"] = reference.label
        row["reference_batch_size"] = reference.batch_size
        if group.is_reference:
            row["lb_gap"] = row["lb_gap_se"] = math.nan
        else:
            ref = stats.loc[reference.id]
            row["lb_gap"] = row["test_err_mean"] - ref["test_err_mean"]
            # Standard error of a difference of two independent means over seeds.
            row["lb_gap_se"] = math.sqrt(
                row["test_err_std"] ** 2 / counts[group.id]
                + ref["test_err_std"] ** 2 / counts[reference.id]
            )
        rows.append(row)
    return pd.DataFrame(rows)


def closing_table(
    group_fits: pd.DataFrame, runs: pd.DataFrame, grouping: Grouping
) -> pd.DataFrame:
    """For each group larger than its reference: the updates t* = exp((d_small - a) / b) its
    fitted log law needs to reach the reference's final distance, beside B / B_small; and
    t*_window, the same for the reference's distance at the end of its fit window."""
    fits = group_fits.set_index(["group", "network"])
    rows = []
    for group in grouping.groups:
        reference = grouping.by_id(group.reference)
        if group.batch_size <= reference.batch_size:
            continue
        mine = runs[runs["group"] == group.id]
        theirs = runs[runs["group"] == reference.id]
        for network in sorted({n for r in group.runs for n in r.networks}):
            column = distance_column(network)
            d_small = theirs[column].mean() if column in theirs else math.nan
            a, b = _log_law(fits, group.id, network)
            t_star, note = updates_to_reach(d_small, a, b)
            d_window = _fit_value(fits, reference.id, network, "d_last")
            t_window, _ = updates_to_reach(d_window, a, b)
            updates = mine["updates"].mean()
            rows.append(
                {
                    "group": group.id,
                    "label": group.label,
                    "global_batch_size": group.batch_size,
                    "network": network,
                    "reference": reference.label,
                    "reference_batch_size": reference.batch_size,
                    "d_small": d_small,
                    "d_final": mine[column].mean() if column in mine else math.nan,
                    "log_a": a,
                    "log_b": b,
                    "t_star": t_star,
                    "updates": updates,
                    "reference_updates": theirs["updates"].mean(),
                    "t_star_over_updates": t_star / updates if updates else math.nan,
                    "d_small_window": d_window,
                    "t_star_window": t_window,
                    "batch_ratio": group.batch_size / reference.batch_size,
                    "note": note,
                }
            )
    return pd.DataFrame(rows)


def updates_to_reach(distance: float, a: float, b: float) -> tuple[float, str]:
    """Updates t at which a + b ln t reaches distance, and a note when it never does."""
    if not all(map(math.isfinite, (distance, a, b))):
        return math.nan, "no log-law fit or no reference distance"
    if b <= 0:
        return math.inf, f"slope b = {b:.3g} <= 0: the log law never reaches d_small"
    exponent = (distance - a) / b
    if exponent > math.log(np.finfo(float).max):
        return math.inf, "t* exceeds the float range"
    return math.exp(exponent), ""


REMEDY_COLUMNS = [
    "group",
    "label",
    "global_batch_size",
    "large_batch",
    "small_batch",
    "test_err",
    "large_batch_test_err",
    "small_batch_test_err",
    "gap_closed",
    "note",
]


def remedy_table(gap: pd.DataFrame, grouping: Grouping) -> pd.DataFrame:
    """For each remedy group: (err_LB - err_remedy) / (err_LB - err_SB) on mean test error."""
    errors = gap.set_index("group")["test_err_mean"]
    rows = []
    for group in grouping.groups:
        reference = grouping.by_id(group.reference)
        if not group.is_remedy or group.batch_size <= reference.batch_size:
            continue
        plain = grouping.by_id(group.baseline)
        err_lb, err_sb, err = errors[plain.id], errors[reference.id], errors[group.id]
        # Limitation: the fraction carries no uncertainty; read it beside the seed spreads.
        lb_gap = err_lb - err_sb
        if math.isfinite(lb_gap) and abs(lb_gap) > 1e-12:
            fraction, note = (err_lb - err) / lb_gap, ""
        else:
            fraction, note = math.nan, "no large-batch gap to close"
        rows.append(
            {
                "group": group.id,
                "label": group.label,
                "global_batch_size": group.batch_size,
                "large_batch": plain.label,
                "small_batch": reference.label,
                "test_err": err,
                "large_batch_test_err": err_lb,
                "small_batch_test_err": err_sb,
                "gap_closed": fraction,
                "note": note,
            }
        )
    # Named columns keep the header in remedies.csv when a study has no remedy groups.
    return pd.DataFrame(rows, columns=REMEDY_COLUMNS)


def _log_law(fits: pd.DataFrame, group: int, network: str) -> tuple[float, float]:
    return _fit_value(fits, group, network, "log_a"), _fit_value(fits, group, network, "log_b")


def _fit_value(fits: pd.DataFrame, group: int, network: str, column: str) -> float:
    if (group, network) not in fits.index:
        return math.nan
    return float(fits.loc[(group, network), column])


def _number(value) -> float:
    try:
        return math.nan if value is None else float(value)
    except (TypeError, ValueError):
        return math.nan
