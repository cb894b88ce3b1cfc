"""The remedy table against a hand computation, and the paper's numbers beside ours."""

import pandas as pd
import pytest
from analysis_fixtures.fake_runs import write_run

from batchgap_analysis import analyze

ERRORS = {
    "sb": (0.02, 0.02),
    "lb": (0.06, 0.06),
    "lb_lr": (0.05, 0.05),
    "lb_lr_gbn_ra": (0.01, 0.03),
}


def write_study(root, experiment):
    job = 0
    for remedy, errors in ERRORS.items():
        for seed, err in enumerate(errors):
            write_run(
                root / str(job),
                batch_size=16 if remedy == "sb" else 512,
                seed=seed,
                metrics={"test_err": err, "train_err": 0.0, "remedy": remedy},
                config={"experiment_name": experiment, "remedy": remedy},
            )
            job += 1


def test_gap_closed_matches_a_hand_computation(tmp_path):
    write_study(tmp_path / "sweep", "hoffer_cifar10_resnet44")
    report = analyze([tmp_path / "sweep"], tmp_path / "out").read_text()
    table = pd.read_csv(tmp_path / "out" / "hoffer_table.csv").set_index("remedy")
    assert table.index.tolist() == ["sb", "lb", "lb_lr", "lb_lr_gbn_ra"]
    # (0.06 - 0.05) / (0.06 - 0.02) = 25 %; (0.06 - 0.02) / 0.04 = 100 % for +RA's mean 0.02.
    assert table.loc["lb_lr", "gap_closed"] == pytest.approx(0.25)
    assert table.loc["lb_lr_gbn_ra", "gap_closed"] == pytest.approx(1.0)
    assert table.loc["lb", "paper_test_err_pct"] == pytest.approx(100 - 86.10)
    assert "### hoffer_cifar10_resnet44 (paper: ResNet-44, CIFAR-10)" in report
    assert "not meaningful" not in report


def test_a_large_batch_gap_inside_the_noise_is_flagged(tmp_path):
    noisy = {"sb": (0.02, 0.06), "lb": (0.03, 0.05)}
    for remedy, errors in noisy.items():
        for seed, err in enumerate(errors):
            write_run(
                tmp_path / "sweep" / f"{remedy}{seed}",
                batch_size=16 if remedy == "sb" else 512,
                seed=seed,
                metrics={"test_err": err, "train_err": 0.0, "remedy": remedy},
                config={"experiment_name": "hoffer_digits", "remedy": remedy},
            )
    report = analyze([tmp_path / "sweep"], tmp_path / "out").read_text()
    assert "the fraction closed is not meaningful" in report
    assert "paper test err" not in report
