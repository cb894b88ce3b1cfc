"""`batchgap-analyze`: fit the weight-diffusion laws and tabulate the gap of a batch-size sweep."""

from __future__ import annotations

import argparse
import logging
import math
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from batchgap_analysis.fits import END, FIRST_LR_DROP, parse_fit_end
from batchgap_analysis.pipeline import analyze
from batchgap_analysis.records import NoRunsError

log = logging.getLogger(__name__)

EPILOG = """\
A run is any directory holding summary.json (with weights.csv and config.yaml beside it);
runs are found recursively, so a Hydra multirun directory or a single run both work.
Writes report.md, fits.csv, gap.csv, closing.csv, remedies.csv, runs.csv and the figures
distance_vs_updates, distance_vs_epochs and gap_vs_batch (PNG and SVG) under --out.
Exit status: 0 when the report is written, 2 on bad arguments, when no run is found, or when
every run was excluded (the report, with the reasons, is still written).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchgap-analyze",
        description="Fit d(t) = a + b ln t and its rivals (c t^p, c sqrt t) to the weight "
        "distance of every run, and tabulate the generalization gap of a batch-size study.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sweep_dirs", nargs="+", metavar="SWEEP_DIR", help="directories of runs")
    parser.add_argument(
        "--out", default=None, help="output directory (default: <first SWEEP_DIR>/analysis)"
    )
    parser.add_argument(
        "--fit-start",
        type=float,
        default=10,
        metavar="T",
        help="first update of the fit window (default: 10)",
    )
    parser.add_argument(
        "--fit-end",
        default=FIRST_LR_DROP,
        metavar=f"{{{FIRST_LR_DROP},{END},N}}",
        help="last update of the fit window: the first learning-rate drop (default), the end "
        "of training, or update N",
    )
    parser.add_argument(
        "--target",
        type=float,
        default=None,
        metavar="ERR",
        help="val/err target for steps-to-target and the critical batch size (default: the "
        "runs' early_stop.val_err_below, if they share one)",
    )
    parser.add_argument("--no-figures", action="store_true", help="skip drawing the figures")
    parser.add_argument("-q", "--quiet", action="store_true", help="print warnings only")
    return parser


def _writable(path: Path) -> bool:
    """Whether `path` can be created (or written) as a directory: a real probe, root or not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryDirectory(dir=path).cleanup()
    except OSError:
        return False
    return True


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        fit_end = parse_fit_end(args.fit_end)
    except ValueError as err:
        parser.error(str(err))
    # t counts updates from 1, and the log law needs t > 0.
    if not (math.isfinite(args.fit_start) and args.fit_start >= 1):
        parser.error(f"--fit-start {args.fit_start:g} is invalid; use an update count >= 1")
    if isinstance(fit_end, int) and fit_end <= args.fit_start:
        parser.error(
            f"--fit-end {fit_end} is not after --fit-start {args.fit_start:g}; the window "
            "needs t_start < t_end"
        )
    if args.target is not None and not 0 < args.target < 1:
        parser.error(f"--target {args.target:g} is invalid; use a val/err fraction in (0, 1)")
    out = Path(args.out) if args.out else None
    if out is not None and not _writable(out):
        parser.error(f"--out {out} is not a writable directory")

    try:
        report = analyze(
            args.sweep_dirs,
            out_dir=args.out,
            fit_start=args.fit_start,
            fit_end=fit_end,
            figures=not args.no_figures,
            target=args.target,
        )
    except NoRunsError as err:
        print(f"batchgap-analyze: error: {err}", file=sys.stderr)
        return 2
    print(f"report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
