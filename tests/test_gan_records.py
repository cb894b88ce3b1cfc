"""GAN runs in-process: divergence and mode collapse are recorded, not crashes."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from conftest import compose
from omegaconf import OmegaConf

from batchgap import train as classifier_train
from batchgap import train_gan
from batchgap.callbacks.gan_quality import QualityMonitor, read_quality
from batchgap.errors import ConfigError
from batchgap.modules import gan_objectives

GAN_ARGS = [
    "task=gan",
    "regime.epochs=1000",
    "regime.max_updates=12",
    "gan_net.generator.width=16",
    "gan_net.discriminator.width=16",
    "task.checkpoint_every_n_updates=4",
    "task.metrics.every_n_updates=4",
    "task.metrics.num_samples=100",
    "task.samples.every_n_updates=4",
    "task.samples.count=4",
    "num_threads=1",
    "trainer.enable_progress_bar=false",
]


@pytest.fixture(scope="module")
def classifier_checkpoint(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("classifier")
    cfg = compose("model.width=16", "regime.epochs=1", "num_threads=1")
    classifier_train.train(cfg, run_dir)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    return run_dir / "checkpoints" / "last.ckpt"


def test_a_diverging_gan_is_recorded_and_keeps_its_last_good_checkpoint(
    tmp_path, monkeypatch, classifier_checkpoint
):
    calls = {"n": 0}

    def nan_after_six_updates(real_scores, fake_scores):
        calls["n"] += 1
        loss = -F.logsigmoid(fake_scores).mean()
        return loss * float("nan") if calls["n"] > 6 else loss

    broken = gan_objectives.Objective(
        "non_saturating", gan_objectives.minimax_discriminator_loss, nan_after_six_updates
    )
    monkeypatch.setitem(gan_objectives.OBJECTIVES, "non_saturating", broken)
    cfg = compose(*GAN_ARGS, f"task.metrics.classifier_checkpoint={classifier_checkpoint}")
    summary = train_gan.train(cfg, tmp_path)
    assert summary["status"] == "diverged"
    assert summary["diverged_at_update"] == 7
    assert summary["last_good_checkpoint"] is not None
    good = torch.load(summary["last_good_checkpoint"], weights_only=False)
    assert good["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in good["state_dict"].values())


class StubEvaluator:
    reference = {"fid": 0.5, "inception_score": 9.0, "mode_coverage": 1.0}

    def __init__(self, scores):
        self.scores = iter(scores)

    def evaluate(self, generator):
        fid, coverage = next(self.scores)
        return {"fid": fid, "inception_score": 2.0, "mode_coverage": coverage}


def stub_trainer(saved):
    return SimpleNamespace(
        global_step=0,
        is_global_zero=True,
        should_stop=False,
        loggers=[],
        strategy=SimpleNamespace(broadcast=lambda obj, src=0: obj),
        save_checkpoint=lambda path: saved.append(trainer_step(path)),
    )


def trainer_step(path):
    return path


def test_collapse_after_reaching_coverage_stops_and_bad_scores_are_not_kept(tmp_path):
    # Coverage low at first (a young generator), then reached, then lost: only the loss is
    # a collapse; a non-finite score is never a good checkpoint.
    scores = [(90.0, 0.2), (20.0, 0.9), (float("nan"), 0.0), (25.0, 0.3)]
    saved: list = []
    monitor = QualityMonitor(
        StubEvaluator(scores), tmp_path / "quality.csv", tmp_path / "good.ckpt", 10, 0.5
    )
    trainer = stub_trainer(saved)
    module = SimpleNamespace(generator=None, collapsed_at_update=torch.tensor(-1))
    monitor.on_train_start(trainer, module)
    for update in (10, 20, 30, 40):
        trainer.global_step = update
        monitor.on_train_batch_end(trainer, module, None, None, 0)
        monitor.on_train_batch_end(trainer, module, None, None, 1)  # no new update: no score
    assert len(saved) == 2
    assert trainer.should_stop and int(module.collapsed_at_update) == 40
    reference, last = read_quality(tmp_path / "quality.csv")
    assert reference["fid"] == 0.5 and last == pytest.approx(
        {"fid": 25.0, "inception_score": 2.0, "mode_coverage": 0.3}
    )


@pytest.mark.parametrize(
    "override, expected",
    [
        ("task.metrics.collapse_below=1.5", "task.metrics.collapse_below=1.5 is invalid"),
        ("task.metrics.every_n_updates=0", "task.metrics.every_n_updates=0 is invalid"),
        (
            "trainer.accumulate_grad_batches=2",
            "trainer.accumulate_grad_batches=2 is not supported",
        ),
        ("task.metrics.inception_weights=/nonexistent.pth", "is not a file"),
    ],
)
def test_bad_gan_settings_are_refused_before_any_work(tmp_path, override, expected):
    with pytest.raises(ConfigError) as err:
        train_gan.train(compose("task=gan", override), tmp_path / "run")
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "run" / "summary.json").exists()
