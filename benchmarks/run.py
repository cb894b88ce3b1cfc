"""Run every benchmark and print one table: `python benchmarks/run.py [--pairs N] [--quick]`.

Each figure is a ratio against a reference measured in the same run, interleaved A B A B, the
median of 5 pairs (`--pairs`; the default-study rows, a minute a study, take half as many, at
least 2), with the spread (min-max of the pairwise ratios) and whether the target is met.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from common import interleaved, machine_line, meets, print_table, ratio_row  # noqa: E402


def step_rows(pairs: int, updates: int) -> list[dict]:
    from bench_step import (
        data_path_seconds,
        lightning_updates,
        loop_floor_seconds,
        plain_updates,
    )

    rows = []
    for batch, target in ((64, "<= 1.10x"), (1024, "<= 1.03x")):
        n = updates if batch == 64 else max(20, updates // 4)
        ref, ours = interleaved(
            lambda b=batch, n=n: plain_updates(b, n),
            lambda b=batch, n=n: lightning_updates(b, n),
            pairs,
        )
        rows.append(
            ratio_row(f"time per update, batch {batch}", ref, ours, target, reference_name="plain")
        )
        if batch == 64:
            plain_step_64 = statistics.median(ref)
    ref, ours = interleaved(
        lambda: lightning_updates(64, updates, track=False),
        lambda: lightning_updates(64, updates, track=True),
        pairs,
    )
    rows.append(
        ratio_row(
            "weight-distance tracking (batch 64)",
            ref,
            ours,
            "<= 1.03x",
            reference_name="untracked",
        )
    )
    step = statistics.median(ref)
    plain_floor, lightning_floor = zip(*(loop_floor_seconds(4 * updates) for _ in range(pairs)))
    floor = statistics.median(lit - plain for plain, lit in zip(plain_floor, lightning_floor))
    rows.append(
        {
            "figure": "Lightning's bare loop vs plain, trivial step",
            "reference": f"{statistics.median(plain_floor) * 1e6:.3g} us plain loop",
            "ours": f"{statistics.median(lightning_floor) * 1e6:.3g} us",
            "ratio": f"+{floor * 1e3:.2f} ms = {floor / plain_step_64:.1%} of a plain b64 step",
            "target": "-",
            "pairs": pairs,
        }
    )
    ours_data, torch_data = [], []
    for _ in range(pairs):
        a, b = data_path_seconds(64, 200)
        ours_data.append(a)
        torch_data.append(b)
    rows.append(
        ratio_row(
            "data path vs DataLoader(TensorDataset)",
            torch_data,
            ours_data,
            "-",
            reference_name="DataLoader",
        )
    )
    share = statistics.median(ours_data) / step
    rows.append(
        {
            "figure": "data path share of our batch-64 step",
            "reference": f"{step * 1e3:.3g} ms untracked step",
            "ours": f"{statistics.median(ours_data) * 1e3:.3g} ms",
            "ratio": f"{share:.1%}",
            "target": "<= 5%",
            "met": meets(100 * share, "<= 5%"),
            "pairs": pairs,
        }
    )
    return rows


def startup_rows(pairs: int) -> list[dict]:
    """Start-up of a whole `debug=fast` run (1 update) against importing Lightning alone."""

    def timed(command: list[str]) -> float:
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        return time.perf_counter() - start

    with tempfile.TemporaryDirectory() as tmp:
        run = [
            sys.executable,
            "-m",
            "batchgap.train",
            "debug=fast",
            "trainer.limit_train_batches=1",
            f"hydra.run.dir={tmp}/run",
        ]
        ref, ours = interleaved(
            lambda: timed([sys.executable, "-c", "import lightning"]),
            lambda: timed(run),
            pairs,
        )
    return [
        ratio_row(
            "start-up to end of a 1-update run",
            ref,
            ours,
            "<= 2x",
            unit="s",
            reference_name="import lightning",
        )
    ]


def study_rows(pairs: int, quick: bool = False) -> list[dict]:
    """The default study (`batchgap-study`, 12 jobs and the report) with its parallel launcher,
    against the same study with Hydra's basic launcher, one job after another."""
    # A quick run cuts every job to 2 epochs: too short to cover a worker's start-up.
    extra = ("regime.epochs=2",) if quick else ()
    name = "default study, 2-epoch jobs (--quick)" if quick else "default study"
    study = str(Path(sys.executable).with_name("batchgap-study"))

    def timed_study(*overrides: str) -> float:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            subprocess.run(
                [study, "--sweep-dir", f"{tmp}/sweep", *overrides, *extra],
                check=True,
                capture_output=True,
            )
            return time.perf_counter() - start

    ref, ours = interleaved(
        lambda: timed_study("hydra/launcher=basic"), lambda: timed_study(), pairs
    )
    jobs = 12
    row = ratio_row(
        f"{name}: parallel (2 jobs) vs basic", ref, ours, "< 1x", unit="s", reference_name="basic"
    )
    if quick:
        row["met"] = "-"  # the target is the real study's
    row["ours"] += f" ({jobs * 60 / statistics.median(ours):.1f} jobs/min)"
    row["reference"] += f" ({jobs * 60 / statistics.median(ref):.1f} jobs/min)"
    wall = {
        "figure": f"{name} wall time (batchgap-study)",
        "reference": "-",
        "ours": f"{statistics.median(ours) / 60:.2f} min",
        "ratio": f"{jobs * 60 / statistics.median(ours):.1f} jobs/min",
        "target": "<= 10 min",
        "met": "-" if quick else meets(statistics.median(ours) / 60, "<= 10 min"),
        "pairs": pairs,
    }
    return [row, wall]


def efficiency_rows(pairs: int) -> list[dict]:
    """Training-step FLOP/s at batch 1024 against this machine's float32 matmul FLOP/s."""
    from bench_step import lightning_updates

    n = 1024
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    matmul = []
    for _ in range(pairs):
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        matmul.append(2 * n**3 * 10 / (time.perf_counter() - start))
    peak = statistics.median(matmul)
    # MLP 64-512-512-10: forward 2*B*params_linear, backward about twice that.
    linear_params = 64 * 512 + 512 * 512 + 512 * 10
    step = statistics.median(lightning_updates(1024, 20) for _ in range(pairs))
    achieved = 6 * 1024 * linear_params / step
    return [
        {
            "figure": "compute efficiency, batch 1024",
            "reference": f"{peak / 1e9:.3g} GFLOP/s matmul",
            "ours": f"{achieved / 1e9:.3g} GFLOP/s",
            "ratio": f"{achieved / peak:.1%}",
            "target": ">= 50%",
            "met": meets(100 * achieved / peak, ">= 50%"),
            "pairs": pairs,
        }
    ]


def analysis_rows(runs: int) -> list[dict]:
    """Wall time of batchgap-analyze over `runs` synthetic run records."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
    from analysis_fixtures.fake_runs import write_run

    with tempfile.TemporaryDirectory() as tmp:
        batches = (16, 64, 256, 1024)
        for job in range(runs):
            batch = batches[job % len(batches)]
            write_run(Path(tmp) / "sweep" / str(job), batch_size=batch, seed=job // len(batches))
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "batchgap_analysis.cli", f"{tmp}/sweep", "--out", f"{tmp}/a"],
            check=True,
            capture_output=True,
        )
        seconds = time.perf_counter() - start
    return [
        {
            "figure": f"analysis of {runs} runs",
            "reference": "-",
            "ours": f"{seconds:.3g} s",
            "ratio": "-",
            "target": "<= 10 s",
            "met": meets(seconds, "<= 10 s"),
            "pairs": 1,
        }
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--updates", type=int, default=300, help="timed updates at batch 64")
    parser.add_argument("--quick", action="store_true", help="2 pairs, fewer updates: a smoke run")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.quick:
        args.pairs, args.updates = 2, 60
    if args.threads:
        torch.set_num_threads(args.threads)
    print(machine_line())
    rows = step_rows(args.pairs, args.updates)
    rows += efficiency_rows(args.pairs)
    rows += startup_rows(args.pairs)
    # Each study takes about a minute: half the pairs, at least 2.
    rows += study_rows(max(2, args.pairs // 2), quick=args.quick)
    rows += analysis_rows(1000)
    print_table(rows)


if __name__ == "__main__":
    main()
