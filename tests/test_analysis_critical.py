"""Steps-to-target and the critical-batch fit on synthetic records."""

import math

import numpy as np
import pandas as pd
import pytest
from analysis_fixtures.fake_runs import write_run

from batchgap_analysis import analyze
from batchgap_analysis.critical import (
    best_per_batch,
    fit_critical_batch,
    read_metric,
    steps_to_target,
)


def test_fit_recovers_known_s_min_and_b_crit():
    rng = np.random.default_rng(0)
    batch = 2.0 ** np.arange(3, 11)
    steps = 40 * (1 + 150 / batch) * rng.lognormal(0, 0.03, len(batch))
    fit = fit_critical_batch(batch, steps)
    # 3% multiplicative noise: both parameters within 10%.
    assert fit["s_min"] == pytest.approx(40, rel=0.1)
    assert fit["b_crit"] == pytest.approx(150, rel=0.1)
    assert 0 < fit["b_crit_se"] < 30


def test_fit_needs_three_batch_sizes():
    with pytest.raises(ValueError, match=">= 3 batch sizes"):
        fit_critical_batch([8, 16], [100, 60])


def test_a_run_that_never_reaches_the_target_counts_as_never():
    curve = pd.DataFrame({"step": [9, 19, 29], "value": [0.5, 0.2, 0.11]})
    assert math.isnan(steps_to_target(curve, 0.1))
    assert steps_to_target(curve, 0.2) == 20


def test_best_lr_ignores_lrs_where_a_seed_missed():
    table = pd.DataFrame(
        {
            "global_batch_size": [8, 8, 8, 8],
            "lr": [0.1, 0.1, 0.01, 0.01],
            "steps": [10.0, math.nan, 50.0, 70.0],
        }
    )
    best = best_per_batch(table)
    assert best["lr"].tolist() == [0.01] and best["steps"].tolist() == [60.0]


def write_metrics(run_dir, steps_needed, evaluations=40):
    csv_dir = run_dir / "csv" / "version_0"
    csv_dir.mkdir(parents=True)
    steps = np.linspace(1, 3 * steps_needed, evaluations).round()
    values = np.where(steps + 1 >= steps_needed, 0.03, 0.2)
    pd.DataFrame({"step": steps, "val/err": values}).to_csv(csv_dir / "metrics.csv", index=False)


def test_end_to_end_report_has_the_critical_batch(tmp_path):
    sweep = tmp_path / "sweep"
    job = 0
    for batch in (8, 32, 128, 512):
        for seed in (0, 1):
            run = write_run(
                sweep / str(job),
                batch_size=batch,
                seed=seed,
                config={"early_stop.val_err_below": 0.05},
            )
            write_metrics(run, round(30 * (1 + 100 / batch)))
            job += 1
    assert len(read_metric(sweep / "0")) == 40
    report = analyze([sweep], tmp_path / "out").read_text()
    assert "## Critical batch size (target val/err <= 0.05)" in report
    table = pd.read_csv(tmp_path / "out" / "steps_to_target.csv")
    assert table["steps"].notna().all()
    assert (tmp_path / "out" / "critical_batch.png").stat().st_size > 0
    line = next(r for r in report.splitlines() if r.startswith("| B_crit"))
    b_crit = float(line.split("|")[2].split("+-")[0])
    assert 60 < b_crit < 160
