"""The gap table, the updates needed to close it and the remedies, against hand computations."""

import math

import pytest
from analysis_fixtures import write_run

from batchgap_analysis.fits import fit_runs, summarize_groups
from batchgap_analysis.gap import (
    closing_table,
    gap_table,
    remedy_table,
    run_table,
    updates_to_reach,
)
from batchgap_analysis.groups import group_runs
from batchgap_analysis.records import load_records

# (batch, rule, seed, train_err, test_err, a, b) of each hand-made run.
RUNS = [
    (16, "none", 0, 0.01, 0.05, 0.5, 1.0),
    (16, "none", 1, 0.02, 0.07, 0.5, 1.0),
    (64, "none", 0, 0.02, 0.10, 0.2, 0.5),
    (64, "none", 1, 0.02, 0.12, 0.2, 0.5),
    (64, "none", 2, 0.05, 0.14, 0.2, 0.5),
    (64, "sqrt", 0, 0.01, 0.08, 0.3, 0.8),
    (64, "sqrt", 1, 0.01, 0.08, 0.3, 0.8),
]


@pytest.fixture
def study(tmp_path):
    for job, (batch, rule, seed, train, test, a, b) in enumerate(RUNS):
        write_run(
            tmp_path / str(job),
            batch_size=batch,
            seed=seed,
            a=a,
            b=b,
            noise=0.0,
            metrics={"train_err": train, "test_err": test},
            config={"scaling.rule": rule},
        )
    grouping = group_runs(load_records([tmp_path]).runs)
    runs = run_table(grouping)
    return grouping, runs, gap_table(runs, grouping)


def test_gap_table_matches_a_hand_computation(study):
    grouping, _, gap = study
    rows = gap.set_index("label")

    assert list(rows.index) == ["B=16", "B=64", "B=64 rule=sqrt"]
    small, large = rows.loc["B=16"], rows.loc["B=64"]
    assert small["n_seeds"] == 2 and large["n_seeds"] == 3
    assert small["test_err_mean"] == pytest.approx(0.06)
    assert small["test_err_std"] == pytest.approx(math.sqrt(2 * 0.01**2))
    assert small["gap_mean"] == pytest.approx(0.045)
    assert large["test_err_mean"] == pytest.approx(0.12)
    assert large["test_err_std"] == pytest.approx(0.02)
    assert large["gap_mean"] == pytest.approx(0.09)
    assert large["gap_std"] == pytest.approx(0.01)
    assert large["train_err_mean"] == pytest.approx(0.03)

    assert math.isnan(small["lb_gap"])
    assert large["lb_gap"] == pytest.approx(0.06)
    assert large["lb_gap_se"] == pytest.approx(math.sqrt(0.02**2 / 3 + 2 * 0.01**2 / 2))
    assert rows.loc["B=64 rule=sqrt", "lb_gap"] == pytest.approx(0.02)
    assert large["reference"] == "B=16"


def test_remedy_closes_its_share_of_the_large_batch_gap(study):
    grouping, _, gap = study
    remedies = remedy_table(gap, grouping)

    assert list(remedies["label"]) == ["B=64 rule=sqrt"]
    (row,) = remedies.itertuples()
    assert row.large_batch == "B=64" and row.small_batch == "B=16"
    assert row.gap_closed == pytest.approx((0.12 - 0.08) / (0.12 - 0.06))


def test_updates_needed_follow_from_the_fitted_log_law(study):
    grouping, runs, _ = study
    fits = summarize_groups(fit_runs(grouping, fit_start=10, fit_end="end")[0])

    closing = closing_table(fits, runs, grouping).set_index("label")

    # Noise-free curves: the fit is exact, so t* = exp((d_small - a) / b) in closed form.
    small_updates = 64 * 10  # 1024 // 16 updates per epoch, 10 epochs
    d_small = 0.5 + math.log(small_updates)
    large = closing.loc["B=64"]
    assert large["d_small"] == pytest.approx(d_small)
    assert large["t_star"] == pytest.approx(math.exp((d_small - 0.2) / 0.5), rel=1e-6)
    assert large["batch_ratio"] == 4
    assert large["updates"] == 160 and large["reference_updates"] == small_updates
    assert large["t_star_over_updates"] == pytest.approx(large["t_star"] / 160)
    # The window runs to the end here, so the first-phase distance is the final one.
    assert large["d_small_window"] == pytest.approx(d_small)
    assert large["t_star_window"] == pytest.approx(large["t_star"])
    assert "B=16" not in closing.index


def test_a_flat_or_falling_law_never_reaches_the_distance():
    t_star, note = updates_to_reach(5.0, a=1.0, b=-0.1)
    assert math.isinf(t_star) and "b = -0.1 <= 0" in note
    t_star, note = updates_to_reach(5.0, a=math.nan, b=1.0)
    assert math.isnan(t_star) and note
    assert updates_to_reach(3.0, a=1.0, b=2.0) == (pytest.approx(math.e), "")


def test_group_fits_average_seeds_and_vote(study):
    grouping, _, _ = study
    run_fits, notes = fit_runs(grouping, fit_start=10, fit_end="end")
    fits = summarize_groups(run_fits).set_index("label")

    assert not notes
    assert fits.loc["B=64", "n_seeds"] == 3
    assert fits.loc["B=64", "log_b"] == pytest.approx(0.5)
    assert fits.loc["B=64", "log_a"] == pytest.approx(0.2)
    assert fits.loc["B=64", "preferred"] == "log"
    assert fits.loc["B=64", "votes"].startswith("log 3/3")


def test_a_too_short_window_skips_that_fit_only(study):
    grouping, _, _ = study
    run_fits, notes = fit_runs(grouping, fit_start=10, fit_end=11)

    assert (run_fits["n_points"] == 0).all()
    assert len(notes) == len(RUNS)
    assert all("fit skipped" in n and "\n" not in n for n in notes)
    fits = summarize_groups(run_fits)
    assert (fits["n_seeds"] == 0).all() and fits["note"].str.contains("point").all()
