"""`batchgap-study`: the default batch-size study, from training to the analysis report."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from batchgap.cli_checks import config_groups


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="batchgap-study",
        description="Run a batch-size sweep with batchgap-train -m, then batchgap-analyze it.",
    )
    parser.add_argument(
        "--experiment", default="digits_sweep", help="named experiment in conf/experiment/"
    )
    parser.add_argument(
        "--sweep-dir",
        type=Path,
        default=None,
        help="where the jobs go (default: outputs/sweeps/<experiment>/<timestamp>)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="report directory (default: <sweep dir>/analysis)"
    )
    parser.add_argument(
        "overrides", nargs="*", help="extra Hydra overrides, e.g. seed=0,1,2 regime.epochs=10"
    )
    return parser.parse_args(argv)


def output_root(overrides: list[str]) -> Path:
    """Where batchgap-train writes: an `output_root=` override, $BATCHGAP_OUTPUT or outputs/."""
    for override in reversed(overrides):
        key, _, value = override.partition("=")
        if key.lstrip("+") == "output_root":
            return Path(value)
    return Path(os.environ.get("BATCHGAP_OUTPUT", "outputs"))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    experiments = config_groups()["experiment"]
    if args.experiment not in experiments:
        print(
            f"batchgap-study: error: --experiment {args.experiment!r} is unknown; valid: "
            + ", ".join(experiments),
            file=sys.stderr,
        )
        return 2
    sweep_dir = args.sweep_dir or output_root(args.overrides) / "sweeps" / args.experiment / (
        time.strftime("%Y-%m-%d_%H-%M-%S")
    )
    command = [
        sys.executable,
        "-m",
        "batchgap.train",
        "-m",
        f"experiment={args.experiment}",
        f"hydra.sweep.dir={sweep_dir}",
        *args.overrides,
    ]
    print(f"batchgap-study: training: {' '.join(command[2:])}", flush=True)
    started = time.time()
    trained = subprocess.run(command)
    if trained.returncode == 2 and not sweep_dir.exists():
        # batchgap-train refused the sweep before any job; its one line says why.
        return 2
    if trained.returncode != 0:
        print(
            f"batchgap-study: error: the sweep exited with {trained.returncode}; finished jobs "
            f"are in {sweep_dir}; analyze them with batchgap-analyze {sweep_dir}",
            file=sys.stderr,
        )
        return trained.returncode
    from batchgap_analysis import NoRunsError, analyze

    try:
        report = analyze([sweep_dir], args.out or sweep_dir / "analysis")
    except NoRunsError as err:
        print(f"batchgap-study: error: {err}", file=sys.stderr)
        return 2
    minutes = (time.time() - started) / 60
    print(f"batchgap-study: done in {minutes:.1f} min; report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
