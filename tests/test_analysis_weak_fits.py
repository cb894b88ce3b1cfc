"""The report warns when the law AIC prefers is a poor or thinly supported fit."""

import re

from analysis_fixtures.fake_runs import write_run

from batchgap_analysis import analyze


def test_thin_windows_are_flagged_and_good_fits_are_not(tmp_path):
    for seed in range(2):
        write_run(tmp_path / "good" / str(seed), batch_size=16, seed=seed, epochs=10)
    report = analyze([tmp_path / "good"], tmp_path / "out_good").read_text()
    assert "Read with care" not in report

    for seed in range(2):
        write_run(tmp_path / "thin" / str(seed), batch_size=256, seed=seed, epochs=5)
    report = analyze([tmp_path / "thin"], tmp_path / "out_thin").read_text()
    assert "Read with care" in report and re.search(r"group 1: only [3-9] points", report)
