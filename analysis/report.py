"""Render an analysis as report.md: what was read, the tables, the preferred laws, the figures."""

from __future__ import annotations

import datetime
import math
import os
from importlib import metadata
from typing import TYPE_CHECKING

import pandas as pd

from batchgap_analysis.curves import FORMULAS, MODELS
from batchgap_analysis.fits import END, FIRST_LR_DROP

if TYPE_CHECKING:
    from batchgap_analysis.pipeline import Analysis

# Per-run rows are listed in the report only for small studies; fits.csv always has them all.
MAX_RUN_ROWS = 60
# Warnings beyond this many (a skipped fit per run in a large sweep) are counted, not listed.
MAX_NOTES = 40


def render(analysis: Analysis) -> str:
    """The report as markdown text."""
    sections = [
        _header(analysis),
        _read(analysis),
        _notes(analysis),
        _excluded(analysis),
    ]
    if analysis.grouping is not None:
        sections += [
            _groups(analysis),
            _fits(analysis),
            _run_fits(analysis),
            _gap(analysis),
            _closing(analysis),
            _remedies(analysis),
            _hoffer(analysis),
            _critical(analysis),
            _quality(analysis),
            _figures(analysis),
            _files(analysis),
        ]
    return "\n\n".join(s for s in sections if s) + "\n"


def table(header: list[str], rows: list[list]) -> str:
    """A markdown table; cells are converted with str and pipes escaped."""

    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _header(analysis: Analysis) -> str:
    try:
        version = metadata.version("batchgap")
    except metadata.PackageNotFoundError:
        version = "unknown"
    now = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return (
        "# Batch-size study: weight diffusion and the generalization gap\n\n"
        f"Written by `batchgap-analyze` (batchgap {version}) on {now}. Errors are percentages "
        "of the evaluated set; `±` is the sample standard deviation over seeds (ddof = 1) "
        "unless a column says otherwise; `t` counts optimizer updates, never epochs."
    )


def _read(analysis: Analysis) -> str:
    records = analysis.records
    found = len(records.runs) + len(records.excluded)
    lines = ["## What was read", ""]
    lines += [f"- Sweep directory: `{d}`" for d in records.sweep_dirs]
    lines.append(
        f"- Runs found: {found}; included: {len(records.runs)}; "
        f"excluded: {len(records.excluded)} (listed below)."
    )
    if analysis.grouping is not None:
        grouping = analysis.grouping
        lines.append(
            f"- Groups: {len(grouping.groups)}, by the config keys that differ between runs "
            f"(seed and path-like keys ignored): {_keys(grouping.varying)}."
        )
        lines.append(f"- Keys read as remedies: {_keys(grouping.remedy_keys)}.")
        lines.append(f"- Keys read as names of a condition: {_keys(grouping.label_keys)}.")
        if grouping.study_keys:
            lines.append(f"- Keys that separate studies: {_keys(grouping.study_keys)}.")
    lines.append(f"- Fit window: {_window(analysis)}.")
    return "\n".join(lines)


def _notes(analysis: Analysis) -> str:
    notes = analysis.notes
    if not notes:
        return ""
    lines = [f"- {note}" for note in notes[:MAX_NOTES]]
    if len(notes) > MAX_NOTES:
        lines.append(f"- ... and {len(notes) - MAX_NOTES} more (skipped fits: `note` in fits.csv)")
    return "## Warnings\n\n" + "\n".join(lines)


def _excluded(analysis: Analysis) -> str:
    excluded = analysis.records.excluded
    if not excluded:
        return "## Excluded runs\n\nNone."
    rows = [[f"`{_relative(e.path, analysis)}`", e.reason] for e in excluded]
    return "## Excluded runs\n\nThese runs take no part in any fit or table.\n\n" + table(
        ["run", "reason"], rows
    )


def _groups(analysis: Analysis) -> str:
    grouping = analysis.grouping
    keys = [k for k in grouping.varying if k != "data.global_batch_size"]
    rows = []
    for group in grouping.groups:
        reference = grouping.by_id(group.reference)
        role = "small-batch reference" if group.is_reference else f"vs group {reference.id}"
        if group.is_remedy and group.batch_size > reference.batch_size:
            role += f"; remedy to group {group.baseline}"
        seeds = ", ".join(str(s) for s in group.seeds)
        values = [_value(group.values.get(k)) for k in keys]
        rows.append([group.id, group.label, group.batch_size, seeds, role, *values])
    header = ["group", "label", "B", "seed values", "compared", *[f"`{k}`" for k in keys]]
    return "## Groups\n\n" + table(header, rows)


def _fits(analysis: Analysis) -> str:
    fits = analysis.group_fits
    lines = [
        "## Diffusion fits",
        "",
        "Each seed's distance curve is fitted on the window above with "
        + ", ".join(f"`{FORMULAS[m]}` ({m})" for m in MODELS)
        + ", on the first recorded point of each twentieth of a decade of t (so dense "
        "epoch-end records do not outweigh early updates)"
        + "; the table gives parameter means ± seed std, mean R², and the AIC "
        "(n ln(RSS/n) + 2k, summed over seeds) of each rival relative to the log law "
        "(positive: the log law is better). The preferred law has the lowest summed AIC.",
        "",
    ]
    rows = []
    for _, fit in fits.iterrows():
        if not fit["n_seeds"]:
            rows.append([fit["group"], fit["label"], _network(fit["network"]), 0, *[""] * 9])
            rows[-1][-1] = fit["note"]
            continue
        rows.append(
            [
                fit["group"],
                fit["label"],
                _network(fit["network"]),
                int(fit["n_seeds"]),
                f"{fit['t_first']:.0f}–{fit['t_last']:.0f} ({fit['n_points']:.0f} pts)",
                _pm(fit["log_b"], fit["log_b_std"], digits=3),
                _pm(fit["log_a"], fit["log_a_std"], digits=3),
                _r2(fit["log_r2"]),
                f"{_r2(fit['power_r2'])} (p = {_fixed(fit['power_p'], 2)})",
                _r2(fit["sqrt_r2"]),
                f"{_fixed(fit['power_aic'] - fit['log_aic'], 1)} / "
                f"{_fixed(fit['sqrt_aic'] - fit['log_aic'], 1)}",
                f"**{fit['preferred']}** ({fit['votes']})",
                fit["note"] or "",
            ]
        )
    header = [
        "group",
        "label",
        "network",
        "seeds",
        "window t (points)",
        "b",
        "a",
        "R² log",
        "R² power",
        "R² sqrt",
        "ΔAIC power / sqrt",
        "preferred (per-seed votes)",
        "note",
    ]
    lines.append(table(header, rows))

    preferred = fits.loc[fits["n_seeds"] > 0, "preferred"].value_counts()
    if len(preferred):
        counts = ", ".join(f"{m} in {preferred.get(m, 0)}" for m in MODELS)
        lines += ["", f"Preferred law by summed AIC, out of {preferred.sum()} fits: {counts}."]
    # AIC ranks the rivals; it does not say that the winner describes the curve.
    weak = []
    for row in fits[fits["n_seeds"] > 0].itertuples():
        r2 = getattr(row, f"{row.preferred}_r2", None) if isinstance(row.preferred, str) else None
        points = getattr(row, "n_points", None)
        if _finite(r2) and r2 < 0.9:
            weak.append(f"group {row.group}: R² {r2:.2f}")
        elif _finite(points) and points < 10:
            weak.append(f"group {row.group}: only {int(points)} points")
    if weak:
        lines += [
            "",
            "Read with care: the preferred law is a poor or thinly supported fit in "
            + "; ".join(weak)
            + ".",
        ]
    return "\n".join(lines)


def _run_fits(analysis: Analysis) -> str:
    fits = analysis.run_fits
    if len(fits) > MAX_RUN_ROWS:
        return f"## Per-run fits\n\n{len(fits)} rows: see `fits.csv` (level = run)."
    rows = []
    for _, fit in fits.iterrows():
        if not fit["n_points"]:
            rows.append([fit["group"], fit["seed"], _network(fit["network"]), 0, *[""] * 5])
            rows[-1][-1] = fit["note"]
            continue
        rows.append(
            [
                fit["group"],
                fit["seed"],
                _network(fit["network"]),
                fit["n_points"],
                _pm(fit["log_b"], fit["log_b_se"], digits=3),
                _pm(fit["log_a"], fit["log_a_se"], digits=3),
                _r2(fit["log_r2"]),
                f"{_r2(fit['power_r2'])} (p = {_fixed(fit['power_p'], 2)})",
                f"{fit['preferred']}" + (f"; {fit['note']}" if fit["note"] else ""),
            ]
        )
    header = [
        "group",
        "seed",
        "network",
        "points",
        "b ± se",
        "a ± se",
        "R² log",
        "R² power",
        "preferred",
    ]
    return "## Per-run fits\n\n" + table(header, rows)


def _gap(analysis: Analysis) -> str:
    rows = []
    for _, row in analysis.gap.iterrows():
        if row["reference"] == row["label"]:
            lb_gap = "reference"
        else:
            lb_gap = _pm(100 * row["lb_gap"], 100 * row["lb_gap_se"])
        rows.append(
            [
                row["group"],
                row["label"],
                int(row["n_seeds"]),
                _pm(100 * row["train_err_mean"], 100 * row["train_err_std"]),
                _pm(100 * row["val_err_mean"], 100 * row["val_err_std"]),
                _pm(100 * row["test_err_mean"], 100 * row["test_err_std"]),
                _pm(100 * row["gap_mean"], 100 * row["gap_std"]),
                _pm(row["train_loss_mean"], row["train_loss_std"], digits=3),
                _pm(row["test_loss_mean"], row["test_loss_std"], digits=3),
                lb_gap,
                _fixed(row["updates"], 0),
            ]
        )
    header = [
        "group",
        "label",
        "seeds",
        "train err %",
        "val err %",
        "test err %",
        "gap (test − train) pts",
        "train loss",
        "test loss",
        "large-batch gap pts ± se",
        "updates",
    ]
    return (
        "## Generalization gap\n\n"
        "Final evaluation of each run. The large-batch gap is the test error minus that of "
        "the smallest-batch group of the same study (column `compared` above); its ± is the "
        "standard error of the difference, sqrt(s_a²/n_a + s_b²/n_b). Validation loss and "
        "all values as fractions are in `gap.csv`.\n\n" + table(header, rows)
    )


def _closing(analysis: Analysis) -> str:
    closing = analysis.closing
    text = (
        "## Closing the gap: updates needed\n\n"
        "Hoffer et al. argue that a large batch generalizes like the small one once it has "
        "travelled as far from its initialization. From each group's fitted log law, "
        "t* = exp((d_small − a) / b) is the number of updates at which it reaches the "
        "small-batch group's final distance d_small. Regime adaptation trains B / B_small "
        "times more epochs, that is, B / B_small times the updates of the unadapted large "
        "batch; compare that factor with t* / updates made. Later lr phases move the weights "
        "too, so t*_1 does the same for the small batch's distance at the end of its fit "
        "window (its first phase). The law is extrapolated beyond its window: read t* as an "
        "order of magnitude."
    )
    if closing.empty:
        return text + "\n\nNo group has a larger batch than its study's reference."
    rows = [
        [
            row["group"],
            row["label"],
            _network(row["network"]),
            _fixed(row["batch_ratio"], 1),
            _fixed(row["updates"], 0),
            _fixed(row["reference_updates"], 0),
            _fixed(row["d_small"], 3),
            _fixed(row["d_final"], 3),
            _sci(row["t_star"]),
            _sci(row["t_star_over_updates"]),
            _fixed(row["d_small_window"], 3),
            _sci(row["t_star_window"]),
            row["note"],
        ]
        for _, row in closing.iterrows()
    ]
    header = [
        "group",
        "label",
        "network",
        "B / B_small",
        "updates made",
        "small-batch updates",
        "d_small (final)",
        "d reached",
        "t*",
        "t* / updates made",
        "d_small, 1st phase",
        "t*_1",
        "note",
    ]
    return text + "\n\n" + table(header, rows)


def _remedies(analysis: Analysis) -> str:
    remedies = analysis.remedies
    if remedies.empty:
        return "## Remedies\n\nThe study has no remedy groups (same large batch, other settings)."
    rows = [
        [
            row["group"],
            row["label"],
            row["large_batch"],
            row["small_batch"],
            _fixed(100 * row["test_err"], 2),
            _fixed(100 * row["large_batch_test_err"], 2),
            _fixed(100 * row["small_batch_test_err"], 2),
            _percent(row["gap_closed"]) + (f" ({row['note']})" if row["note"] else ""),
        ]
        for _, row in remedies.iterrows()
    ]
    header = [
        "group",
        "remedy",
        "large batch",
        "small batch",
        "test err %",
        "LB test err %",
        "SB test err %",
        "gap closed",
    ]
    return (
        "## Remedies\n\n"
        "Fraction of the large-batch gap each remedy closes, on mean test error: "
        "(err_LB − err_remedy) / (err_LB − err_SB). 100 % matches the small batch; above "
        "100 % beats it. It carries no error bar: read it beside the seed spreads above.\n\n"
        + table(header, rows)
    )


def _hoffer(analysis: Analysis) -> str:
    from batchgap_analysis.hoffer_table import PAPER, ROW_NAMES

    frame = analysis.hoffer
    if frame.empty:
        return ""
    lines = [
        "## Hoffer et al.'s table: each remedy added in turn",
        "",
        "Rows named by each run's `remedy`. Gap closed = (err_LB - err_row) / (err_LB - err_SB) "
        "on mean test error: 100 % matches the small batch. Paper: Hoffer, Hubara & Soudry "
        "2017, Table 1, as test error (100 - accuracy).",
    ]
    for experiment, part in frame.groupby("experiment_name", sort=False):
        paper = PAPER.get(experiment)
        header = ["row", "B", "updates", "seeds", "test err %", "gap pts", "gap closed"]
        if paper:
            header.append("paper test err %" + ("" if paper[2] else " (unverified)"))
        rows = []
        for r in part.itertuples():
            row = [
                ROW_NAMES[r.remedy],
                r.global_batch_size,
                f"{r.updates:.0f}",
                r.seeds,
                _pm(100 * r.test_err_mean, 100 * r.test_err_std),
                _fixed(100 * r.gap_mean, 2),
                _percent(r.gap_closed),
            ]
            if paper:
                row.append(_fixed(r.paper_test_err_pct, 2))
            rows.append(row)
        title = f"### {experiment}" + (f" (paper: {paper[1]})" if paper else "")
        lines += ["", title, "", table(header, rows)]
        notes = {n for n in part["note"] if n}
        lines += [f"\nNote: {n}." for n in notes]
    return "\n".join(lines)


def _quality(analysis: Analysis) -> str:
    frame = analysis.quality
    if frame.empty:
        return ""
    rows = [
        [
            r.group,
            r.label,
            r.objective,
            r.global_batch_size,
            r.updates,
            r.n_seeds,
            _pm(r.fid_mean, r.fid_std),
            _pm(r.inception_score_mean, r.inception_score_std),
            _pm(r.mode_coverage_mean, r.mode_coverage_std),
        ]
        for r in frame.itertuples()
    ]
    real = frame.iloc[0]
    return "\n".join(
        [
            "## GAN sample quality",
            "",
            "Scores on the penultimate features of a batchgap classifier trained on the same "
            "dataset (see each run's summary.json for the classifier, sample count and seed). "
            f"Real data score: Frechet distance {_fixed(real.real_fid, 2)}, inception score "
            f"{_fixed(real.real_inception_score, 2)}, mode coverage "
            f"{_fixed(real.real_mode_coverage, 2)}. Frechet distances are biased upward at "
            "small sample counts.",
            "",
            table(
                [
                    "group",
                    "label",
                    "objective",
                    "B",
                    "G updates",
                    "seeds",
                    "Frechet distance",
                    "inception score",
                    "mode coverage",
                ],
                rows,
            ),
        ]
    )


def _critical(analysis: Analysis) -> str:
    result = analysis.critical
    if result is None:
        return ""
    lines = [
        f"## Critical batch size (target val/err <= {analysis.target:g})",
        "",
        "Steps to target: the first evaluated update at which val/err reached the target "
        "(exact to the evaluation interval); per batch size, the lr whose seeds all reached it "
        "in the fewest mean updates.",
        "",
    ]
    best = result["best"]
    if best.empty:
        return "\n".join([*lines, "No batch size reached the target in every seed."])
    rows = [
        [
            int(r.global_batch_size),
            _value(r.lr),
            f"{r.steps:.0f}",
            _fixed(r.steps_std, 1),
            f"{r.examples:.0f}",
            int(r.seeds),
        ]
        for r in best.itertuples()
    ]
    lines.append(table(["B", "best lr", "updates S", "std", "examples E", "seeds"], rows))
    fit = result["fit"]
    b_simple = result.get("b_simple")
    iqr = result.get("b_simple_iqr")
    compare = [
        [
            "B_crit from S = S_min (1 + B_crit / B)",
            f"{fit['b_crit']:.1f} +- {fit['b_crit_se']:.1f}" if fit else "not fitted",
        ],
        ["S_min (updates)", f"{fit['s_min']:.1f} +- {fit['s_min_se']:.1f}" if fit else "-"],
        [
            "B_simple = tr(Sigma)/|G|^2 (median over runs, IQR)",
            f"{b_simple:.1f} ({iqr[0]:.1f}-{iqr[1]:.1f})"
            if b_simple is not None
            else "not measured (noise_scale.enabled=false)",
        ],
        [
            "smallest B whose log-t slope b is below half the smallest B's",
            _value(result.get("slope_change_batch")),
        ],
        [
            "smallest B whose test error exceeds the smallest B's by > 2 SE",
            _value(result.get("gap_change_batch")),
        ],
    ]
    lines += ["", table(["quantity", "value"], compare)]
    return "\n".join(lines)


def _figures(analysis: Analysis) -> str:
    if not analysis.figures:
        return ""
    captions = {
        "distance_vs_updates": "Weight distance against updates (log axis); mean over seeds "
        "solid, seeds faint, fitted log law dashed over its window (ticks mark its ends).",
        "distance_vs_epochs": "Weight distance against epochs.",
        "gap_vs_batch": "Test error and generalization gap against global batch size.",
        "quality_vs_batch": "GAN sample quality (Frechet distance, inception score, mode "
        "coverage) against global batch size.",
        "critical_batch": "Updates and examples to the target against global batch size, "
        "with the S_min (1 + B_crit / B) fit, B_simple and the three scaling regimes shaded.",
    }
    lines = ["## Figures", ""]
    for name, paths in analysis.figures.items():
        names = [_relative(p, analysis) for p in paths]
        png = next((n for n in names if n.endswith(".png")), names[0])
        lines += [
            f"![{name}]({png})",
            "",
            f"{captions.get(name, name)} Files: " + ", ".join(f"`{n}`" for n in names),
            "",
        ]
    return "\n".join(lines).rstrip()


def _files(analysis: Analysis) -> str:
    described = {
        "fits.csv": "one row per group (level = group: means, `_std` over seeds, `_se` = "
        "std / sqrt(n), R² means, AIC sums) and per run and network (level = run: "
        "least-squares `_se`)",
        "gap.csv": "per group: `<metric>_mean`, `<metric>_std` as fractions, `lb_gap`, "
        "`lb_gap_se`",
        "closing.csv": "per large-batch group and network: `t_star`, `batch_ratio`",
        "remedies.csv": "per remedy group: `gap_closed`",
        "runs.csv": "per run: final metrics, updates, final distances",
    }
    lines = ["## Tables written", ""]
    for name, path in analysis.tables.items():
        lines.append(f"- `{_relative(path, analysis)}`: {described.get(name, '')}")
    return "\n".join(lines)


def _window(analysis: Analysis) -> str:
    end = analysis.fit_end
    if end == FIRST_LR_DROP:
        text = "the first learning-rate drop (or the last update if the lr never drops)"
    elif end == END:
        text = "the last update"
    else:
        text = f"update {end}"
    return f"updates t from {analysis.fit_start:g} to {text}"


def _keys(keys: list[str]) -> str:
    return ", ".join(f"`{k}`" for k in keys) if keys else "none"


def _relative(path, analysis: Analysis) -> str:
    try:
        return os.path.relpath(path, analysis.out_dir)
    except ValueError:
        return str(path)


def _network(name: str) -> str:
    return name or "whole model"


def _value(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return str(value)


def _finite(value) -> bool:
    return value is not None and not pd.isna(value) and math.isfinite(value)


def _fixed(value, digits: int) -> str:
    if value is None or pd.isna(value):
        return "n/a"
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


def _pm(mean, spread, digits: int = 2) -> str:
    if not _finite(mean):
        return "n/a"
    if not _finite(spread):
        return _fixed(mean, digits)
    return f"{mean:.{digits}f} ± {spread:.{digits}f}"


def _r2(value) -> str:
    return _fixed(value, 4)


def _sci(value) -> str:
    if value is None or pd.isna(value):
        return "n/a"
    if math.isinf(value):
        return "inf"
    return f"{value:.3g}"


def _percent(value) -> str:
    return "n/a" if not _finite(value) else f"{100 * value + 0.0:.0f} %"
