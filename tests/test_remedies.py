"""Hoffer's remedy rows as configs: the study presets compose, run, and refuse bad input."""

import math
from importlib import resources

import pytest
import torch
from conftest import compose, error_lines, read_json, run_cli
from omegaconf import OmegaConf
from torch import nn

from batchgap.batching import batch_layout
from batchgap.errors import ConfigError
from batchgap.models import build_model
from batchgap.models.norm import check_norm

REMEDIES = ["sb", "lb", "lb_lr", "lb_lr_gbn", "lb_lr_gbn_ra"]

# remedy -> (batch is the large one, scaling rule, norm, regime)
ROWS = {
    "sb": (False, "none", "bn", "fixed"),
    "lb": (True, "none", "bn", "fixed"),
    "lb_lr": (True, "sqrt", "bn", "fixed"),
    "lb_lr_gbn": (True, "sqrt", "ghost_bn", "fixed"),
    "lb_lr_gbn_ra": (True, "sqrt", "ghost_bn", "adapted"),
}

PRESETS = {
    # experiment: (data, model, small, large, ghost batch, epochs, trainer accelerator)
    "hoffer_digits": ("digits", "mlp", 16, 512, 16, 30, "cpu"),
    "hoffer_mnist5k_f1": ("mnist5k", "f1", 64, 512, 64, 20, "cpu"),
    "hoffer_mnist_f1": ("mnist", "f1", 128, 4096, 128, 40, "gpu"),
    "hoffer_cifar10_resnet44": ("cifar10", "resnet44", 128, 4096, 128, 182, "gpu"),
    "hoffer_cifar10_c1": ("cifar10", "c1", 128, 4096, 128, 182, "gpu"),
    "hoffer_cifar100_c3": ("cifar100", "c3", 128, 4096, 128, 182, "gpu"),
}
# data: (input shape, classes)
INPUTS = {
    "digits": ((1, 8, 8), 10),
    "mnist5k": ((1, 28, 28), 10),
    "mnist": ((1, 28, 28), 10),
    "cifar10": ((3, 32, 32), 10),
    "cifar100": ((3, 32, 32), 100),
}


@pytest.mark.parametrize("experiment", sorted(PRESETS))
def test_presets_sweep_exactly_the_five_rows_times_three_seeds(experiment):
    preset = resources.files("batchgap.conf") / "experiment" / f"{experiment}.yaml"
    params = OmegaConf.create(preset.read_text()).hydra.sweeper.params
    assert params.remedy.split(",") == REMEDIES
    assert len(params.seed.split(",")) >= 3
    assert set(params) == {"remedy", "seed"}


@pytest.mark.parametrize("remedy", REMEDIES)
@pytest.mark.parametrize("experiment", sorted(PRESETS))
def test_each_row_sets_batch_rule_norm_and_regime(experiment, remedy):
    data, model, small, large, ghost, epochs, accelerator = PRESETS[experiment]
    cfg = compose(f"experiment={experiment}", f"remedy={remedy}")
    is_large, rule, norm, regime = ROWS[remedy]
    assert cfg.remedy == remedy and cfg.experiment_name == experiment
    assert (cfg.data.name, cfg.model.name, cfg.trainer.accelerator) == (data, model, accelerator)
    assert cfg.data.global_batch_size == (large if is_large else small)
    assert cfg.scaling.reference_batch_size == small
    assert (cfg.scaling.rule, cfg.model.norm, cfg.regime.name) == (rule, norm, regime)
    assert cfg.model.ghost_batch_size == (ghost if norm == "ghost_bn" else None)
    assert cfg.regime.epochs == epochs
    assert cfg.optim.gradient_clip_norm == 5.0
    # Every preset's row passes the pre-training checks on one device.
    layout = batch_layout(cfg.data.global_batch_size, 1)
    check_norm(cfg.model.norm, cfg.model.ghost_batch_size, layout.per_device_batch_size, "gpu")


def test_paper_regime_presets_carry_their_milestones():
    resnet = compose("experiment=hoffer_cifar10_resnet44").optim
    assert [round(f * 182) for f in resnet.lr_milestones] == [81, 122, 164]
    assert (resnet.lr, resnet.optimizer.momentum, resnet.optimizer.weight_decay) == (
        0.1,
        0.9,
        1e-4,
    )
    f1 = compose("experiment=hoffer_mnist_f1").optim
    assert [f * 40 for f in f1.lr_milestones] == [10, 20, 30]


@pytest.mark.parametrize("experiment", sorted(PRESETS))
def test_preset_model_trains_one_ghost_batch_step_on_cpu(experiment):
    input_shape, num_classes = INPUTS[PRESETS[experiment][0]]
    torch.set_num_threads(1)
    # The preset's model with its ghost norm, on a CPU-sized batch of 2 ghosts of 4.
    cfg = compose(f"experiment={experiment}", "remedy=lb_lr_gbn_ra", "study.ghost_batch_size=4")
    net = build_model(cfg.model, input_shape, num_classes)
    x, y = torch.randn(8, *input_shape), torch.randint(0, num_classes, (8,))
    nn.functional.cross_entropy(net(x), y).backward()
    assert all(p.grad is not None for p in net.parameters())


def test_ghost_size_is_checked_against_the_per_device_batch():
    layout = batch_layout(64, devices=2)
    check_norm("ghost_bn", 32, layout.per_device_batch_size, "cpu")
    with pytest.raises(ConfigError, match="ghost_batch_size=64 exceeds the per-device batch 32"):
        check_norm("ghost_bn", 64, layout.per_device_batch_size, "cpu")


@pytest.mark.slow
def test_digits_rows_run_and_record_their_remedy(tmp_path):
    sweep = tmp_path / "sweep"
    result = run_cli(
        "batchgap.train",
        "-m",
        "experiment=hoffer_digits",
        "remedy=sb,lb_lr_gbn_ra",
        "seed=0",
        "regime.epochs=1",
        "model.width=32",
        f"hydra.sweep.dir={sweep}",
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    sb, ra = (read_json(sweep / job / "summary.json") for job in ("0", "1"))
    assert (sb["remedy"], ra["remedy"]) == ("sb", "lb_lr_gbn_ra")
    assert sb["status"] == ra["status"] == "completed"
    assert (sb["norm"], sb["ghost_batch_size"], sb["regime"]) == ("bn", None, "fixed")
    assert (ra["norm"], ra["ghost_batch_size"], ra["regime"]) == ("ghost_bn", 16, "adapted")
    assert sb["updates"] == 1257 // 16
    # 32 x the epochs at 1257 // 512 = 2 updates each.
    assert (ra["epochs"], ra["updates"]) == (32, 64)
    assert ra["lr"] == pytest.approx(0.1 * math.sqrt(512 / 16))
    assert ra["scaling_rule"] == "sqrt" and ra["reference_batch_size"] == 16


@pytest.mark.slow
@pytest.mark.parametrize(
    "overrides, expected",
    [
        (
            ["remedy=lb_lr_gbn", "study.ghost_batch_size=24"],
            "model.ghost_batch_size=24 does not divide the per-device batch 512",
        ),
        (
            ["remedy=lb_lr_gbn", "trainer.accumulate_grad_batches=64"],
            "model.ghost_batch_size=16 exceeds the per-device batch 8",
        ),
        (["remedy=sb", "model.norm=sync_bn"], "model.norm='sync_bn' needs GPUs"),
        (
            ["remedy=lb", "scaling.reference_batch_size=0"],
            "scaling.reference_batch_size=0 is invalid",
        ),
        (
            ["remedy=lb_lr_gbn_ra", "regime.max_updates=100"],
            "regime.max_updates=100 is below the 1920 updates",
        ),
    ],
)
def test_bad_remedy_input_fails_in_one_line_before_training(tmp_path, overrides, expected):
    result = run_cli(
        "batchgap.train",
        "experiment=hoffer_digits",
        *overrides,
        f"hydra.run.dir={tmp_path}/run",
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    errors = error_lines(result)
    assert len(errors) == 1 and expected in errors[0], result.stderr[-2000:]
    assert not (tmp_path / "run" / "checkpoints").exists()
