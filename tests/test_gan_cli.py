"""GAN runs through the real command line: records, samples, DDP and bad input."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import cli_env, error_lines, read_json, run_cli

pytestmark = pytest.mark.slow

TINY_GAN = [
    "task=gan",
    "data.global_batch_size=64",
    "regime.epochs=1000",
    "regime.max_updates=12",
    "gan_net.generator.width=32",
    "gan_net.discriminator.width=32",
    "task.checkpoint_every_n_updates=6",
    "task.metrics.every_n_updates=6",
    "task.metrics.num_samples=200",
    "task.samples.every_n_updates=6",
    "task.samples.count=16",
    "task.metrics.classifier_overrides=['model=mlp','model.width=32','regime.epochs=2']",
    "num_threads=1",
]


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_tiny_wgan_run_leaves_complete_records_and_png_grids(tmp_path):
    run = tmp_path / "run"
    result = run_cli(
        "batchgap.train", *TINY_GAN, "gan_objective=wgan", f"hydra.run.dir={run}", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]

    summary = read_json(run / "summary.json")
    assert summary["status"] == "completed" and summary["task"] == "gan"
    assert summary["updates"] == 12 and summary["critic_steps"] == 5 * 12
    assert summary["global_batch_size"] == summary["per_device_batch_size"] == 64
    assert summary["world_size"] == 1 and summary["objective"] == "wgan"
    for key in ("fid", "inception_score", "mode_coverage", "real_fid", "lr", "wall_time_s"):
        assert summary[key] is not None, key
    assert summary["test_err"] is None and summary["version"]
    assert summary["real_inception_score"] > summary["inception_score"] >= 1

    rows = read_rows(run / "weights.csv")
    assert int(rows[-1]["update"]) == 12
    for net in ("generator", "discriminator"):
        assert float(rows[-1][f"weight_distance/{net}"]) > float(rows[0][f"weight_distance/{net}"])
    assert [r["update"] for r in read_rows(run / "quality.csv")] == ["real", "6", "12"]

    for name in ("update_000000.png", "update_000006.png", "final.png"):
        assert (run / "samples" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    critic = [v for k, v in checkpoint["state_dict"].items() if k.startswith("discriminator.")]
    assert max(float(v.abs().max()) for v in critic) <= 0.01 + 1e-7, "critic weights clipped"
    assert (run / "checkpoints" / "last_good.ckpt").exists()

    # The analysis reads the run and fits one distance curve per network.
    from batchgap_analysis.records import read_run

    assert {"generator", "discriminator"} <= set(read_run(run).networks)


@pytest.mark.distributed
def test_ddp_keeps_generator_and_critic_identical_across_ranks(tmp_path):
    run = tmp_path / "run"
    probe = Path(__file__).with_name("gan_rank_probe.py")
    result = subprocess.run(
        [
            sys.executable,
            str(probe),
            str(tmp_path),
            *TINY_GAN,
            "gan_objective=wgan_gp",
            "gan_net.discriminator.norm=ln",
            "trainer=ddp_cpu",
            f"hydra.run.dir={run}",
        ],
        cwd=tmp_path,
        env=cli_env(1),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = read_json(run / "summary.json")
    assert summary["status"] == "completed"
    assert summary["world_size"] == 2 and summary["per_device_batch_size"] == 32
    assert summary["updates"] == 12
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    assert any(k.startswith("generator.") for k in ranks[0])
    for name, value in ranks[0].items():
        assert torch.equal(value, ranks[1][name]), name
    assert int(read_rows(run / "weights.csv")[-1]["update"]) == 12


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["gan_objective=hinge"], "gan_objective='hinge' is unknown; valid: minimax,"),
        (["gan_objective.n_critic=0"], "gan_objective.n_critic=0 is invalid"),
        (
            ["gan_objective=wgan_gp", "gan_net.discriminator.norm=ghost_bn"],
            "gan_net.discriminator.norm='ghost_bn' normalizes over the batch",
        ),
    ],
)
def test_bad_gan_input_fails_in_one_line_before_training(tmp_path, overrides, expected):
    result = run_cli(
        "batchgap.train", "task=gan", *overrides, f"hydra.run.dir={tmp_path}/run", cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr[-2000:]
    errors = error_lines(result)
    assert len(errors) == 1 and expected in errors[0], result.stderr[-2000:]
    assert not (tmp_path / "run" / "checkpoints").exists()
