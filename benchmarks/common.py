"""Shared measurement helpers: interleaved A/B pairs, medians, and the machine line."""

from __future__ import annotations

import os
import platform
import re
import statistics
import time
from collections.abc import Callable


def machine_line() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    return (
        f"{platform.node()} | {cpu} | {os.cpu_count()} cores | torch {torch.__version__} | "
        f"{torch.get_num_threads()} threads | python {platform.python_version()}"
    )


def interleaved(
    reference: Callable[[], float], candidate: Callable[[], float], pairs: int
) -> tuple[list[float], list[float]]:
    """Run reference, candidate, reference, candidate ...; each call returns seconds measured."""
    ref_times, cand_times = [], []
    for _ in range(pairs):
        ref_times.append(reference())
        cand_times.append(candidate())
    return ref_times, cand_times


def meets(value: float, target: str) -> str:
    """'yes' or 'no' against a target like `<= 1.10x`, `< 1x`, `>= 50%`, `<= 10 min`; else '-'."""
    match = re.fullmatch(r"\s*(<=|<|>=)\s*([0-9.]+)\s*(x|%|min|s)?\s*", target)
    if not match:
        return "-"
    op, bound = match.group(1), float(match.group(2))
    ok = {"<=": value <= bound, "<": value < bound, ">=": value >= bound}[op]
    return "yes" if ok else "no"


def ratio_row(
    name: str,
    ref: list[float],
    cand: list[float],
    target: str,
    unit: str = "ms",
    reference_name: str = "",
):
    """A table row: medians, the median of pairwise ratios and its spread (min-max)."""
    scale = 1e3 if unit == "ms" else 1.0
    ratios = [c / r for r, c in zip(ref, cand)]
    ratio = statistics.median(ratios)
    return {
        "figure": name,
        "reference": f"{statistics.median(ref) * scale:.3g} {unit} {reference_name}".rstrip(),
        "ours": f"{statistics.median(cand) * scale:.3g} {unit}",
        "ratio": f"{ratio:.2f}x ({min(ratios):.2f}-{max(ratios):.2f})",
        "target": target,
        "met": meets(ratio, target),
        "pairs": len(ratios),
    }


def print_table(rows: list[dict]) -> None:
    columns = ["figure", "reference", "ours", "ratio", "target", "met", "pairs"]
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print(" | ".join(c.ljust(widths[c]) for c in columns))
    print("-|-".join("-" * widths[c] for c in columns))
    for row in rows:
        print(" | ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))


class Stopwatch:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
