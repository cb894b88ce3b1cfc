"""Diffusion fits for every run and network, and their summary across the seeds of a group."""

from __future__ import annotations

import logging
import math

import numpy as np
import pandas as pd

from batchgap_analysis.curves import MODELS, PARAMETERS, FitSkipped, fit_window, log_spaced
from batchgap_analysis.groups import Grouping
from batchgap_analysis.records import Run, distance_column

log = logging.getLogger(__name__)

FIRST_LR_DROP = "first_lr_drop"
END = "end"


def parse_fit_end(text: str | int) -> str | int:
    """`first_lr_drop`, `end` or a positive update count; ValueError otherwise."""
    if isinstance(text, int) or str(text).isdigit():
        value = int(text)
        if value < 1:
            raise ValueError("fit end must be a positive update count")
        return value
    if text in (FIRST_LR_DROP, END):
        return text
    raise ValueError(f"fit end {text!r} is not {FIRST_LR_DROP!r}, {END!r} or an update count")


def window_end(run: Run, fit_end: str | int) -> float:
    """The last update of the fit window: the first lr drop, the end, or a given update."""
    if fit_end == END:
        return math.inf
    if fit_end == FIRST_LR_DROP:
        listed = run.summary.get("lr_milestone_updates") or []
        drops = [m for m in listed if isinstance(m, int | float) and m > 0]
        return float(min(drops)) if drops else math.inf
    return float(fit_end)


def fit_runs(
    grouping: Grouping, fit_start: float = 10, fit_end: str | int = FIRST_LR_DROP
) -> tuple[pd.DataFrame, list[str]]:
    """One row per run and network with all models' parameters; notes for skipped fits."""
    rows, notes = [], []
    for group in grouping.groups:
        for run in group.runs:
            end = window_end(run, fit_end)
            for network in run.networks:
                row = {
                    "level": "run",
                    "group": group.id,
                    "label": group.label,
                    "global_batch_size": group.batch_size,
                    "network": network,
                    "run": str(run.path),
                    "seed": run.summary.get("seed"),
                    "window_start": fit_start,
                    "window_end": end,
                }
                curve = run.weights
                keep = log_spaced(curve["update"].to_numpy())
                try:
                    fitted = fit_window(
                        curve["update"].to_numpy()[keep],
                        curve[distance_column(network)].to_numpy()[keep],
                        fit_start,
                        end,
                    )
                except FitSkipped as err:
                    where = f"{run.path}" + (f" [{network}]" if network else "")
                    why = " (it ends at the first lr drop)" if fit_end == FIRST_LR_DROP else ""
                    notes.append(f"{where}: {err}{why}; fit skipped")
                    log.warning(notes[-1])
                    rows.append({**row, "n_points": 0, "note": str(err)})
                    continue
                rows.append({**row, **_fit_columns(fitted)})

    frame = pd.DataFrame(rows, columns=_run_columns())
    return frame, notes


def summarize_groups(run_fits: pd.DataFrame) -> pd.DataFrame:
    """Per group and network: mean, seed std and standard error of each parameter, R^2 means,
    AIC sums, the model with the lowest summed AIC and the per-seed votes."""
    fitted = run_fits[run_fits["n_points"] > 0]
    rows = []
    for (group, network), runs in fitted.groupby(["group", "network"], sort=True):
        n = len(runs)
        row = {
            "level": "group",
            "group": group,
            "label": runs["label"].iloc[0],
            "global_batch_size": runs["global_batch_size"].iloc[0],
            "network": network,
            "n_seeds": n,
            "n_points": runs["n_points"].mean(),
            "window_start": runs["window_start"].min(),
            "window_end": runs["window_end"].max(),
            "t_first": runs["t_first"].min(),
            "t_last": runs["t_last"].max(),
            "d_last": runs["d_last"].mean(),
        }
        for model in MODELS:
            for name in PARAMETERS[model]:
                values = runs[f"{model}_{name}"]
                std = values.std(ddof=1) if n > 1 else math.nan
                row[f"{model}_{name}"] = values.mean()
                row[f"{model}_{name}_std"] = std
                row[f"{model}_{name}_se"] = std / math.sqrt(n) if n > 1 else math.nan
            row[f"{model}_r2"] = runs[f"{model}_r2"].mean()
            row[f"{model}_aic"] = runs[f"{model}_aic"].sum()

        sums = {m: row[f"{m}_aic"] for m in MODELS if np.isfinite(row[f"{m}_aic"])}
        row["preferred"] = min(sums, key=sums.get) if sums else ""
        votes = runs["preferred"].value_counts()
        row["votes"] = ", ".join(f"{m} {votes.get(m, 0)}/{n}" for m in MODELS)
        notes = sorted({str(x) for x in runs["note"].dropna() if x})
        row["note"] = "; ".join(notes)
        rows.append(row)

    skipped = run_fits[run_fits["n_points"] == 0]
    for (group, network), runs in skipped.groupby(["group", "network"], sort=True):
        if ((fitted["group"] == group) & (fitted["network"] == network)).any():
            continue
        rows.append(
            {
                "level": "group",
                "group": group,
                "label": runs["label"].iloc[0],
                "global_batch_size": runs["global_batch_size"].iloc[0],
                "network": network,
                "n_seeds": 0,
                "note": runs["note"].iloc[0],
            }
        )
    columns = _group_columns()
    return pd.DataFrame(rows, columns=columns).sort_values(["group", "network"], kind="stable")


def _fit_columns(fitted) -> dict:
    row = {
        "n_points": fitted.n,
        "t_first": fitted.t_start,
        "t_last": fitted.t_end,
        "d_last": fitted.d_end,
    }
    notes = []
    for model, fit in fitted.fits.items():
        for name in PARAMETERS[model]:
            row[f"{model}_{name}"] = fit.params[name]
            row[f"{model}_{name}_se"] = fit.errors[name]
        row[f"{model}_r2"] = fit.r2
        row[f"{model}_aic"] = fit.aic
        if fit.note:
            notes.append(fit.note)
    row["preferred"] = fitted.preferred
    row["note"] = "; ".join(notes)
    return row


def _param_columns(with_std: bool) -> list[str]:
    columns = []
    for model in MODELS:
        for name in PARAMETERS[model]:
            columns += [f"{model}_{name}", f"{model}_{name}_se"]
            if with_std:
                columns.append(f"{model}_{name}_std")
        columns += [f"{model}_r2", f"{model}_aic"]
    return columns


_COMMON = ["level", "group", "label", "global_batch_size", "network"]
_WINDOW = ["n_points", "window_start", "window_end", "t_first", "t_last", "d_last"]


def _run_columns() -> list[str]:
    return [*_COMMON, "run", "seed", *_WINDOW, *_param_columns(False), "preferred", "note"]


def _group_columns() -> list[str]:
    return [*_COMMON, "n_seeds", *_WINDOW, *_param_columns(True), "preferred", "votes", "note"]
