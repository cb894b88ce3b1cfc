"""Sample quality of GAN runs against the global batch size: Frechet distance, classifier
inception score and mode coverage, with the real data's own scores as the reference."""

from __future__ import annotations

import math

import pandas as pd

from batchgap_analysis.groups import Grouping

METRICS = ("fid", "inception_score", "mode_coverage")
LABELS = {
    "fid": "Frechet distance (classifier features)",
    "inception_score": "classifier inception score",
    "mode_coverage": "mode coverage (classes / 10)",
}


def quality_table(grouping: Grouping) -> pd.DataFrame:
    """Per group with GAN runs: mean and std over seeds of each quality metric, and the real
    data's reference scores."""
    rows = []
    for group in grouping.groups:
        runs = [r for r in group.runs if r.summary.get("fid") is not None]
        if not runs:
            continue
        row = {
            "group": group.id,
            "label": group.label,
            "study": grouping.study_label(group),
            "global_batch_size": group.batch_size,
            "objective": runs[0].summary.get("objective"),
            "updates": runs[0].summary.get("updates"),
            "n_seeds": len(runs),
        }
        for metric in METRICS:
            values = pd.Series([r.summary.get(metric) for r in runs], dtype=float)
            row[f"{metric}_mean"] = values.mean()
            row[f"{metric}_std"] = values.std() if len(values) > 1 else math.nan
            real = pd.Series([r.summary.get(f"real_{metric}") for r in runs], dtype=float)
            row[f"real_{metric}"] = real.mean()
        rows.append(row)
    return pd.DataFrame(rows)


def quality_figure(table: pd.DataFrame):
    """Each quality metric against batch size, one line per objective (study), error bars =
    seed std, the real data's score dotted."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(13, 4), layout="constrained")
    axes = figure.subplots(1, len(METRICS))
    for ax, metric in zip(axes, METRICS):
        for name, part in table.groupby(table["objective"].fillna(table["study"])):
            part = part.sort_values("global_batch_size")
            ax.errorbar(
                part["global_batch_size"],
                part[f"{metric}_mean"],
                yerr=part[f"{metric}_std"].fillna(0),
                marker="o",
                capsize=3,
                label=str(name),
            )
        real = table[f"real_{metric}"].dropna()
        if len(real):
            ax.axhline(real.mean(), color="grey", linestyle=":", label="real data")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("global batch size B (samples per update)")
        ax.set_ylabel(LABELS[metric])
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    seeds = int(table["n_seeds"].max()) if len(table) else 0
    figure.suptitle(f"GAN sample quality at equal generator updates (mean ± std, n <= {seeds})")
    return figure


def quality_curves(grouping: Grouping) -> pd.DataFrame:
    """Every GAN run's quality.csv rows (generated samples only), tagged with its group."""
    frames = []
    for group in grouping.groups:
        for run in group.runs:
            path = run.path / "quality.csv"
            if not path.is_file():
                continue
            try:
                frame = pd.read_csv(path)
            except (OSError, ValueError, pd.errors.ParserError):
                continue
            frame = frame[frame["update"] != "real"].copy()
            frame["update"] = pd.to_numeric(frame["update"], errors="coerce")
            frame["group"], frame["label"] = group.id, group.label
            frame["objective"] = run.summary.get("objective")
            frame["global_batch_size"] = group.batch_size
            frames.append(frame.dropna(subset=["update"]))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def quality_curve_figure(curves: pd.DataFrame):
    """Frechet distance against generator updates, one panel per objective, one line per
    batch size (mean over seeds)."""
    from matplotlib.figure import Figure

    objectives = sorted(curves["objective"].fillna("").unique())
    figure = Figure(figsize=(5.5 * len(objectives), 4), layout="constrained")
    axes = figure.subplots(1, len(objectives), squeeze=False)[0]
    for ax, objective in zip(axes, objectives):
        part = curves[curves["objective"].fillna("") == objective]
        for batch, line in part.groupby("global_batch_size"):
            mean = line.groupby("update")["fid"].mean()
            ax.plot(mean.index, mean.to_numpy(), marker="o", ms=3, label=f"B={batch}")
        ax.set_yscale("log")
        ax.set_xlabel("generator updates")
        ax.set_ylabel(LABELS["fid"])
        ax.set_title(f"{objective or 'GAN'}: sample quality during training")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    return figure
