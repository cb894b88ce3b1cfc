"""Figures for a paper: distance against updates and epochs, test error and gap against batch."""

from __future__ import annotations

import logging
import math
import textwrap
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, NullLocator

from batchgap_analysis.curves import FORMULAS, PARAMETERS, predict
from batchgap_analysis.groups import Group, Grouping
from batchgap_analysis.records import distance_column

log = logging.getLogger(__name__)

# Beyond this many runs the individual seeds turn a figure into a smear; draw group means only.
MAX_SEED_LINES = 200
FORMATS = ("png", "svg")
DISTANCE_LABEL = r"distance from init. $\|w_t - w_0\|_2$"
STYLE = {
    "font.size": 10,
    "axes.titlesize": 10,
    "axes.labelsize": 10,
    "legend.fontsize": 8,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "svg.fonttype": "none",
}
MARKERS = "osD^vP*Xh<>"
# Characters per line of legend entries and panel titles.
LABEL_WIDTH = 48
TITLE_WIDTH = 70


def write_figures(
    grouping: Grouping, group_fits: pd.DataFrame, gap: pd.DataFrame, out_dir: Path
) -> dict[str, list[Path]]:
    """Draw the three figures and save each as PNG and SVG; returns name -> written paths."""
    curves = _curves(grouping)
    means = _group_means(curves, grouping)
    show_seeds = sum(len(g.runs) for g in grouping.groups) <= MAX_SEED_LINES
    written = {}
    with matplotlib.rc_context(STYLE):
        figures = {
            "distance_vs_updates": distance_figure(
                grouping, curves, means, group_fits, "update", show_seeds
            ),
            "distance_vs_epochs": distance_figure(
                grouping, curves, means, group_fits, "epochs", show_seeds
            ),
            "gap_vs_batch": gap_figure(grouping, gap),
        }
        for name, figure in figures.items():
            written[name] = []
            for fmt in FORMATS:
                path = out_dir / f"{name}.{fmt}"
                figure.savefig(path, dpi=200)
                written[name].append(path)
    log.info("figures written to %s", out_dir)
    return written


def distance_figure(
    grouping: Grouping,
    curves: pd.DataFrame,
    means: pd.DataFrame,
    group_fits: pd.DataFrame,
    x: str,
    show_seeds: bool,
) -> Figure:
    """Mean distance over seeds per group (seeds faint), one panel per study and network;
    against updates on a log axis with the fitted log law dashed, or against epochs."""
    panels = _panels(grouping, curves)
    figure, axes = _grid(len(panels))
    fits = group_fits.set_index(["group", "network"]) if len(group_fits) else None

    for ax, (study, network, members) in zip(axes, panels, strict=False):
        colours = _colours(members)
        column = distance_column(network)
        rivals: set[str] = set()
        for group in members:
            colour = colours[group.id]
            if show_seeds:
                for _, seed in curves[curves["group"] == group.id].groupby("run", sort=False):
                    ax.plot(seed[x], seed[column], color=colour, lw=0.6, alpha=0.3)
            mean = means[(means["group"] == group.id) & means[column].notna()]
            label = _wrap(f"{group.label} (n={len(group.runs)})", LABEL_WIDTH)
            ax.plot(mean[x], mean[column], color=colour, lw=1.8, label=label)
            if x == "update" and fits is not None and (group.id, network) in fits.index:
                rivals |= _draw_fits(ax, fits.loc[(group.id, network)], colour)

        if x == "update":
            ax.set_xscale("log")
            ax.set_xlabel("updates t (optimizer steps)")
            title = "Distance from initialization vs updates"
        else:
            values = curves.loc[curves[column].notna(), x]
            # Regime adaptation stretches epochs B/B_small-fold: a linear axis would squash the
            # unadapted runs into its first few percent.
            if values.min() > 0 and values.max() / values.min() > 100:
                ax.set_xscale("log")
            ax.set_xlabel("epochs (updates / updates per epoch)")
            title = "Distance from initialization vs epochs"
        ax.set_ylabel(DISTANCE_LABEL + (f" [{network}]" if network else ""))
        ax.set_title(_panel_title(title, study, network))
        handles, _ = ax.get_legend_handles_labels()
        if x == "update" and fits is not None:
            handles.append(Line2D([], [], color="k", ls="--", lw=1.0, label="fit a + b ln t"))
            for model in sorted(rivals):
                label = f"fit {FORMULAS[model]} (preferred by AIC)"
                handles.append(Line2D([], [], color="0.35", ls=":", lw=1.4, label=label))
        if len(handles) > 10:
            # A sweep over lr and batch has dozens of series: list them beside the axes.
            ax.legend(
                handles=handles,
                loc="upper left",
                bbox_to_anchor=(1.01, 1.0),
                frameon=False,
                fontsize="x-small",
                ncol=1 + len(handles) // 18,
            )
        else:
            ax.legend(handles=handles, loc="upper left", frameon=False, fontsize="small")
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    return figure


def gap_figure(grouping: Grouping, gap: pd.DataFrame) -> Figure:
    """Test error and the gap test - train (mean, seed std bars) against batch size, log2 x."""
    figure = Figure(figsize=(9.0, 3.6), layout="constrained")
    error_ax, gap_ax = figure.subplots(1, 2, sharex=True)
    rows = gap.set_index("group")

    series = _series(grouping)

    batches = sorted({g.batch_size for g in grouping.groups})
    for index, members in enumerate(series):
        ids = [g.id for g in members]
        # Series at one batch size would hide each other's error bars: nudge them apart.
        nudge = 2 ** (0.08 * (index - (len(series) - 1) / 2))
        x = [g.batch_size * nudge for g in members]
        label = _wrap(_series_label(members, len(series)), LABEL_WIDTH)
        style = {"marker": MARKERS[index % len(MARKERS)], "capsize": 3, "lw": 1.4, "ms": 5}
        for ax, column in ((error_ax, "test_err"), (gap_ax, "gap")):
            y = 100 * rows.loc[ids, f"{column}_mean"].to_numpy(dtype=float)
            spread = 100 * rows.loc[ids, f"{column}_std"].fillna(0).to_numpy(dtype=float)
            ax.errorbar(x, y, yerr=spread, label=label, color=f"C{index % 10}", **style)

    # The small batch's level, so a remedy's distance to it reads off the figure.
    levels = [g for g in grouping.groups if g.is_reference] if len(series) > 1 else []
    for group in levels:
        for ax, column in ((error_ax, "test_err"), (gap_ax, "gap")):
            level = 100 * rows.loc[group.id, f"{column}_mean"]
            ax.axhline(level, color="0.4", ls=":", lw=0.9, zorder=0)

    for ax in (error_ax, gap_ax):
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(batches))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticks(batches, [str(b) for b in batches])
        ax.set_xlim(batches[0] / 1.5, batches[-1] * 1.5)
        ax.set_xlabel("global batch size B (samples per update)")
    error_ax.set_ylabel("test error (%)")
    seeds = sorted({int(n) for n in gap["n_seeds"]})
    counts = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}–{seeds[-1]}"
    counts += " seed" if seeds == [1] else " seeds"
    error_ax.set_title(f"Test error (mean ± std over n = {counts})")
    gap_ax.set_ylabel("gap: test − train error (percentage points)")
    gap_ax.set_title(f"Generalization gap (mean ± std over n = {counts})")
    gap_ax.axhline(0.0, color="0.5", lw=0.8)
    handles, _ = error_ax.get_legend_handles_labels()
    if levels:
        handles.append(Line2D([], [], color="0.4", ls=":", lw=0.9, label="smallest batch level"))
    error_ax.legend(handles=handles, frameon=False, loc="best")
    return figure


def _draw_fits(ax, fit: pd.Series, colour) -> set[str]:
    """Draw the log law over its window and, where the data prefer a rival, that rival too."""
    if not (np.isfinite(fit["log_a"]) and np.isfinite(fit["t_first"])):
        return set()
    t = np.geomspace(fit["t_first"], fit["t_last"], 50)
    d = predict("log", {"a": fit["log_a"], "b": fit["log_b"]}, t)
    # Black dashes over the coloured mean stay visible where the law fits well.
    ax.plot(t, d, color="k", ls="--", lw=1.0, zorder=5)
    ax.plot(t[[0, -1]], d[[0, -1]], ls="none", marker="|", ms=8, color=colour, zorder=5)

    model = fit["preferred"]
    if model in ("", "log") or not isinstance(model, str):
        return set()
    params = {name: fit[f"{model}_{name}"] for name in PARAMETERS[model]}
    ax.plot(t, predict(model, params, t), color="0.35", ls=":", lw=1.4, zorder=5)
    return {model}


def _curves(grouping: Grouping) -> pd.DataFrame:
    """Every run's curve in one long table (group, run, update, epochs, distances)."""
    runs = [(group.id, run) for group in grouping.groups for run in group.runs]
    columns = sorted({c for _, r in runs for c in r.weights.columns if c != "update"})
    # Plain arrays, not one DataFrame per run: 1,000 runs must stay well under a second.
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("group", "run", "update", "epochs")}
    parts.update({c: [] for c in columns})
    for index, (group_id, run) in enumerate(runs):
        updates = run.weights["update"].to_numpy(dtype=float)
        per_epoch = run.summary.get("updates_per_epoch") or math.nan
        parts["group"].append(np.full(updates.size, group_id))
        parts["run"].append(np.full(updates.size, index))
        parts["update"].append(updates)
        parts["epochs"].append(updates / per_epoch)
        for column in columns:
            if column in run.weights:
                parts[column].append(run.weights[column].to_numpy(dtype=float))
            else:
                parts[column].append(np.full(updates.size, math.nan))
    return pd.DataFrame({k: np.concatenate(v) for k, v in parts.items()})


def _group_means(curves: pd.DataFrame, grouping: Grouping) -> pd.DataFrame:
    # Seeds of one group share their update grid; average the updates every seed recorded.
    columns = [c for c in curves.columns if c.startswith("weight_distance")]
    grouped = curves.groupby(["group", "update"], sort=True)
    means = grouped[[*columns, "epochs"]].mean()
    counts = grouped["run"].nunique()
    sizes = pd.Series({g.id: len(g.runs) for g in grouping.groups})
    complete = counts.to_numpy() == sizes.loc[counts.index.get_level_values(0)].to_numpy()
    full = means[complete]
    # Seeds with different grids share few updates; fall back to every recorded update.
    sparse = set(means.index.get_level_values(0)) - set(full.index.get_level_values(0))
    if sparse:
        full = pd.concat([full, means[means.index.get_level_values(0).isin(sparse)]])
    return full.reset_index()


def _panels(grouping: Grouping, curves: pd.DataFrame) -> list[tuple[str, str, list[Group]]]:
    networks = [c for c in curves.columns if c.startswith("weight_distance")]
    studies: dict[tuple, list[Group]] = {}
    for group in grouping.groups:
        studies.setdefault(group.study, []).append(group)
    panels = []
    for members in studies.values():
        ids = [g.id for g in members]
        present = curves[curves["group"].isin(ids)]
        for column in networks:
            if present[column].notna().any():
                network = column[len("weight_distance") :].lstrip("/")
                panels.append((grouping.study_label(members[0]), network, members))
    return panels


def _grid(count: int):
    columns = min(count, 2)
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(6.4 * columns, 4.4 * rows), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel()
    return figure, list(axes)


def _colours(members: list[Group]) -> dict[int, tuple]:
    # One batch per group: colour by batch on a sequential scale, so the order reads at a glance.
    # Several groups at one batch (remedies): a qualitative palette tells them apart.
    batches = sorted({g.batch_size for g in members})
    if len(batches) == len(members):
        scale = matplotlib.colormaps["viridis"]
        span = max(len(batches) - 1, 1)
        return {g.id: scale(0.85 * batches.index(g.batch_size) / span) for g in members}
    return {g.id: matplotlib.colormaps["tab10"](i % 10) for i, g in enumerate(members)}


def _series(grouping: Grouping) -> list[list[Group]]:
    """Groups joined into lines across batch sizes: same study and remedies, one per batch."""
    lines: dict[tuple, list[Group]] = {}
    for group in grouping.groups:
        lines.setdefault((group.study, group.remedy), []).append(group)
    series = []
    for members in lines.values():
        batches = [g.batch_size for g in members]
        # Groups that differ only in a batch-dependent key at one batch are no line: points.
        if len(set(batches)) == len(batches):
            series.append(members)
            continue
        # Several groups per batch (an lr grid): one line per value of what else they set.
        by_rest: dict[str, list[Group]] = {}
        for group in members:
            by_rest.setdefault(_series_label([group], 2), []).append(group)
        for line in by_rest.values():
            if len({g.batch_size for g in line}) == len(line):
                series.append(line)
            else:
                series += [[g] for g in line]
    return series


def _series_label(members: list[Group], count: int) -> str:
    # What all members' labels say besides their batch size.
    parts = [p for p in members[0].label.split(" ") if not p.startswith("B=")]
    for group in members[1:]:
        parts = [p for p in parts if p in group.label.split(" ")]
    return " ".join(parts) or ("baseline" if count > 1 else "mean over seeds")


def _panel_title(what: str, study: str, network: str) -> str:
    parts = [what]
    if study:
        parts.append(study)
    if network:
        parts.append(f"network: {network}")
    return _wrap(" — ".join(parts), TITLE_WIDTH)


def _wrap(text: str, width: int) -> str:
    # Long labels (many differing keys) would squeeze the axes to nothing; break them instead.
    return "\n".join(textwrap.wrap(text, width, break_long_words=False)) or text
