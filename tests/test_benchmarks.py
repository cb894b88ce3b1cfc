"""The GPU benchmark runs here only as a CPU check of the script: no figure is asserted."""

import subprocess
import sys

from conftest import REPO, cli_env


def test_gpu_benchmark_script_prints_every_row_on_a_cpu():
    # When a GPU is lent, the script gets one try inside a few minutes: it must not fail there.
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "gpu_resnet.py"),
            *("--device", "cpu", "--batch", "4", "--windows", "2", "--steps", "1"),
            "--skip-compile",
        ],
        env=cli_env(1),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.count("|") == 4]
    names = [row.split("|")[0].strip() for row in rows[1:]]
    assert names == ["fp32", "bf16", "bf16 + channels-last", "batchgap: Lightning, bf16, ch-last"]
    for row in rows[1:]:
        assert float(row.split("|")[1]) > 0


def test_gpu_benchmark_without_a_gpu_says_so_in_one_line():
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_resnet.py"), "--device", "cuda"],
        env={**cli_env(1), "CUDA_VISIBLE_DEVICES": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "sees no CUDA GPU" in lines[0], result.stderr[-2000:]
