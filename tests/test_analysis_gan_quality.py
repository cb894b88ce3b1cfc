"""GAN quality against batch size in the analysis, on hand-made records."""

import pandas as pd
import pytest
from analysis_fixtures.fake_runs import write_run

from batchgap_analysis import analyze


def test_quality_table_and_figure_match_the_records(tmp_path):
    sweep = tmp_path / "sweep"
    fids = {16: (30.0, 34.0), 256: (12.0, 14.0)}
    job = 0
    for batch, values in fids.items():
        for seed, fid in enumerate(values):
            gan = {
                "fid": fid,
                "inception_score": 3.0,
                "mode_coverage": 0.9,
                "real_fid": 1.5,
                "real_inception_score": 8.0,
                "real_mode_coverage": 1.0,
                "objective": "wgan_gp",
            }
            write_run(
                sweep / str(job),
                batch_size=batch,
                seed=seed,
                metrics=gan,
                networks=("generator", "discriminator"),
            )
            job += 1
    report = analyze([sweep], tmp_path / "out").read_text()
    table = pd.read_csv(tmp_path / "out" / "quality.csv")
    assert table["fid_mean"].tolist() == pytest.approx([32.0, 13.0])
    assert table["fid_std"].tolist() == pytest.approx([2.0**0.5 * 2, 2.0**0.5])
    assert "## GAN sample quality" in report and "Frechet distance 1.50" in report
    assert (tmp_path / "out" / "quality_vs_batch.png").stat().st_size > 0
    fits = pd.read_csv(tmp_path / "out" / "fits.csv")
    assert set(fits["network"].dropna()) == {"generator", "discriminator"}
