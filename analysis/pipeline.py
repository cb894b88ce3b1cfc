"""The whole analysis in the order it happens: read, group, fit, tabulate, draw, report."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from batchgap_analysis import report
from batchgap_analysis.fits import FIRST_LR_DROP, fit_runs, parse_fit_end, summarize_groups
from batchgap_analysis.gap import closing_table, gap_table, remedy_table, run_table
from batchgap_analysis.groups import Grouping, group_runs
from batchgap_analysis.records import NoRunsError, Records, load_records

log = logging.getLogger(__name__)


@dataclass
class Analysis:
    """Everything the report shows: records, groups, fit and gap tables, written files."""

    records: Records
    out_dir: Path
    fit_start: float
    fit_end: str | int
    grouping: Grouping | None = None
    run_fits: pd.DataFrame = field(default_factory=pd.DataFrame)
    group_fits: pd.DataFrame = field(default_factory=pd.DataFrame)
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)
    gap: pd.DataFrame = field(default_factory=pd.DataFrame)
    closing: pd.DataFrame = field(default_factory=pd.DataFrame)
    remedies: pd.DataFrame = field(default_factory=pd.DataFrame)
    target: float | None = None
    quality: pd.DataFrame = field(default_factory=pd.DataFrame)
    hoffer: pd.DataFrame = field(default_factory=pd.DataFrame)
    critical: dict | None = None
    notes: list[str] = field(default_factory=list)
    tables: dict[str, Path] = field(default_factory=dict)
    figures: dict[str, list[Path]] = field(default_factory=dict)


def analyze(
    sweep_dirs: Sequence[str | Path],
    out_dir: str | Path | None = None,
    fit_start: float = 10,
    fit_end: str | int = FIRST_LR_DROP,
    figures: bool = True,
    target: float | None = None,
) -> Path:
    """Analyze every run under sweep_dirs into out_dir (default: <first dir>/analysis) and
    return the path of report.md. Raises NoRunsError when no directory holds a run.

    `target` (a val/err) adds steps-to-target and the critical batch size; by default it is
    the runs' shared `early_stop.val_err_below`, when they have one."""
    if isinstance(sweep_dirs, str | Path):
        sweep_dirs = [sweep_dirs]
    fit_end = parse_fit_end(fit_end)
    records = load_records(sweep_dirs)
    out = Path(out_dir) if out_dir is not None else Path(sweep_dirs[0]) / "analysis"
    out.mkdir(parents=True, exist_ok=True)
    result = Analysis(records, out, fit_start, fit_end, notes=list(records.notes))
    result.target = target if target is not None else _shared_target(records)

    if records.runs:
        _analyze_runs(result, figures)
    else:
        result.notes.append("every run was excluded; no fits or tables")
        log.warning(result.notes[-1])

    path = out / "report.md"
    path.write_text(report.render(result))
    log.info("report written to %s", path)
    if not records.runs:
        raise NoRunsError(f"every run was excluded (reasons in {path})")
    return path


def _analyze_runs(result: Analysis, figures: bool) -> None:
    grouping = group_runs(result.records.runs)
    result.grouping = grouping
    result.notes += grouping.notes

    result.run_fits, fit_notes = fit_runs(grouping, result.fit_start, result.fit_end)
    result.notes += fit_notes
    result.group_fits = summarize_groups(result.run_fits)

    result.runs = run_table(grouping)
    result.gap = gap_table(result.runs, grouping)
    result.closing = closing_table(result.group_fits, result.runs, grouping)
    result.remedies = remedy_table(result.gap, grouping)

    out = result.out_dir
    fits = pd.concat([result.group_fits, result.run_fits], ignore_index=True)
    fits["n_seeds"] = fits["n_seeds"].astype("Int64")  # empty on run rows, a count on groups
    tables = {
        "fits.csv": fits,
        "gap.csv": result.gap,
        "closing.csv": result.closing,
        "remedies.csv": result.remedies,
        "runs.csv": result.runs,
    }
    for name, table in tables.items():
        table.to_csv(out / name, index=False)
        result.tables[name] = out / name

    if result.target is not None:
        _analyze_critical(result, figures)

    _analyze_quality(result, figures)

    from batchgap_analysis.hoffer_table import hoffer_table

    result.hoffer = hoffer_table(result.records.runs)
    if not result.hoffer.empty:
        result.hoffer.to_csv(out / "hoffer_table.csv", index=False)
        result.tables["hoffer_table.csv"] = out / "hoffer_table.csv"

    if figures:
        from batchgap_analysis.plots import write_figures  # matplotlib only when drawing

        result.figures.update(write_figures(grouping, result.group_fits, result.gap, out))


def _analyze_quality(result: Analysis, figures: bool) -> None:
    from batchgap_analysis.gan_quality import (
        quality_curve_figure,
        quality_curves,
        quality_figure,
        quality_table,
    )

    result.quality = quality_table(result.grouping)
    if result.quality.empty:
        return
    result.quality.to_csv(result.out_dir / "quality.csv", index=False)
    result.tables["quality.csv"] = result.out_dir / "quality.csv"
    if figures:
        _save_figure(result, "quality_vs_batch", quality_figure(result.quality))
        curves = quality_curves(result.grouping)
        if not curves.empty:
            _save_figure(result, "quality_vs_updates", quality_curve_figure(curves))


def _save_figure(result: Analysis, name: str, figure) -> None:
    """Write `figure` as <name>.png and <name>.svg under the output directory."""
    paths = []
    for suffix in ("png", "svg"):
        path = result.out_dir / f"{name}.{suffix}"
        figure.savefig(path, dpi=150)
        paths.append(path)
    result.figures[name] = paths


def _shared_target(records: Records) -> float | None:
    targets = {run.config.get("early_stop.val_err_below") for run in records.runs}
    return targets.pop() if len(targets) == 1 and None not in targets else None


def _analyze_critical(result: Analysis, figures: bool) -> None:
    from batchgap_analysis.critical import critical_figure, critical_study

    critical = critical_study(result.records.runs, result.run_fits, result.target)
    result.critical = critical
    critical["table"].to_csv(result.out_dir / "steps_to_target.csv", index=False)
    result.tables["steps_to_target.csv"] = result.out_dir / "steps_to_target.csv"
    if critical.get("note"):
        result.notes.append(critical["note"])
    if figures and not critical["best"].empty:
        _save_figure(result, "critical_batch", critical_figure(critical, result.target))
