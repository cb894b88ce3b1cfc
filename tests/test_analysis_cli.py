"""`batchgap-analyze` as a user runs it: a subprocess on fake records, and what it writes."""

import shutil
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from analysis_fixtures import hoffer_study, write_run
from conftest import error_lines

from batchgap_analysis import analyze

FIGURES = ("distance_vs_updates", "distance_vs_epochs", "gap_vs_batch")
ENV = {"OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}


def _cli(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "batchgap_analysis.cli", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**ENV, "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"},
    )


def test_cli_writes_report_tables_and_figures(tmp_path):
    sweep = hoffer_study(tmp_path / "sweep", seeds=2)
    (write_run(sweep / "90") / "summary.json").write_text("not json")
    weights = write_run(sweep / "91", batch_size=16) / "weights.csv"
    weights.write_bytes(weights.read_bytes()[:-3])

    done = _cli(sweep)

    assert done.returncode == 0, done.stderr
    out = sweep / "analysis"
    assert f"report: {out / 'report.md'}" in done.stdout
    report = (out / "report.md").read_text()
    assert "Runs found: 12; included: 10; excluded: 2" in report
    assert "| `../90` | summary.json is not JSON" in report
    assert "| `../91` | weights.csv is truncated (last line incomplete) |" in report
    assert "**log**" in report and "gap closed" in report
    for name in FIGURES:
        png, svg = out / f"{name}.png", out / f"{name}.svg"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
        assert "<svg" in svg.read_text()[:1000]
        assert f"]({name}.png)" in report

    fits = pd.read_csv(out / "fits.csv")
    assert set(fits["level"]) == {"group", "run"}
    assert len(fits[fits["level"] == "run"]) == 10
    gap = pd.read_csv(out / "gap.csv")
    assert list(gap["label"]) == [
        "B=16",
        "B=256",
        "B=256 rule=sqrt",
        "B=256 rule=sqrt ghost=16",
        "B=256 rule=sqrt ghost=16 regime=adapted",
    ]
    assert gap["test_err_mean"].iloc[1] == pytest.approx((0.088 + 0.090) / 2)


def test_cli_options_set_the_output_and_the_window(tmp_path):
    sweep = hoffer_study(tmp_path / "sweep", seeds=1)
    out = tmp_path / "out"
    done = _cli(sweep, "--out", out, "--fit-start", 2, "--fit-end", "end", "--no-figures")
    assert done.returncode == 0, done.stderr
    fits = pd.read_csv(out / "fits.csv")
    assert (fits["t_first"] == 2).all()
    assert "updates t from 2 to the last update" in (out / "report.md").read_text()
    assert not list(out.glob("*.png"))


def test_cli_without_runs_says_so_in_one_line_and_exits_2(tmp_path):
    done = _cli(tmp_path)
    assert done.returncode == 2
    (line,) = done.stderr.strip().splitlines()
    assert "no runs under" in line


def test_cli_rejects_a_bad_window_end(tmp_path):
    done = _cli(tmp_path, "--fit-end", "later")
    assert done.returncode == 2 and "fit end" in done.stderr


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--fit-start", "-1"], "--fit-start -1 is invalid; use an update count >= 1"),
        (["--fit-start", "50", "--fit-end", "10"], "--fit-end 10 is not after --fit-start 50"),
        (["--target", "2"], "--target 2 is invalid; use a val/err fraction in (0, 1)"),
        (["--out", "/proc/batchgap"], "--out /proc/batchgap is not a writable directory"),
    ],
)
def test_cli_rejects_bad_options_in_one_line(tmp_path, args, expected):
    write_run(tmp_path / "run", batch_size=16)
    done = _cli(tmp_path, *args)
    errors = error_lines(done)
    assert done.returncode == 2 and len(errors) == 1 and expected in errors[0], done.stderr


def test_cli_help_documents_the_options():
    done = _cli("--help")
    assert done.returncode == 0
    for option in ("SWEEP_DIR", "--out", "--fit-start", "--fit-end", "first_lr_drop"):
        assert option in done.stdout


def test_all_runs_excluded_still_writes_a_report_and_exits_2(tmp_path):
    write_run(tmp_path / "0", status="failed")
    done = _cli(tmp_path)
    assert done.returncode == 2, done.stderr
    errors = error_lines(done)
    assert len(errors) == 1 and "every run was excluded" in errors[0]
    report = (tmp_path / "analysis" / "report.md").read_text()
    assert "status 'failed'" in report and "every run was excluded" in report


def test_gan_networks_and_short_windows_are_reported(tmp_path):
    for seed in range(2):
        write_run(tmp_path / f"gan{seed}", seed=seed, networks=("generator", "discriminator"))
    write_run(tmp_path / "short", batch_size=512, epochs=3, milestone_epochs=(1,))

    report = analyze([tmp_path], tmp_path / "out").read_text()

    assert "| generator |" in report and "| discriminator |" in report
    assert "a fit needs 3 (it ends at the first lr drop); fit skipped" in report


def test_importing_the_analysis_never_imports_the_training_stack():
    code = textwrap.dedent(
        """
        import importlib, pkgutil, sys
        import batchgap_analysis as package
        names = [m.name for m in pkgutil.iter_modules(package.__path__)]
        for name in names:
            importlib.import_module(f"batchgap_analysis.{name}")
        stack = {"torch", "lightning", "batchgap"}
        bad = sorted(m for m in sys.modules if m.split(".")[0] in stack)
        print(len(names), bad)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split(" ", 1)[1].strip() == "[]"
    assert int(done.stdout.split()[0]) >= 8


def test_a_thousand_runs_are_all_read_and_grouped(tmp_path):
    # Ten distinct runs, each copied a hundred times: writing 1,000 fresh ones would dominate.
    # Its speed is measured in benchmarks/run.py, not asserted here.
    batches = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]
    templates = [write_run(tmp_path / "templates" / str(b), batch_size=b) for b in batches]
    sweep = tmp_path / "sweep"
    for job in range(1000):
        run = shutil.copytree(templates[job % 10], sweep / str(job))
        # A seed of its own: copies with the same seed would be repeats of one run.
        for name, before, after in (
            ("config.yaml", "seed: 0\n", f"seed: {job}\n"),
            ("summary.json", '"seed": 0,', f'"seed": {job},'),
        ):
            text = (run / name).read_text()
            assert before in text
            (run / name).write_text(text.replace(before, after, 1))

    report = analyze([sweep], tmp_path / "analysis")

    text = report.read_text()
    assert "Runs found: 1000; included: 1000" in text
    assert "Groups: 10," in text
