"""Frechet distance, classifier inception score, mode coverage and the metric classifier."""

import importlib.util
import math

import pytest
import torch
import yaml

from batchgap.errors import ConfigError
from batchgap.metrics.evaluator import QualityEvaluator
from batchgap.metrics.inception import check_inception_weights
from batchgap.metrics.metric_classifier import FeatureClassifier, load_metric_classifier
from batchgap.metrics.quality import frechet_distance, inception_score, mode_coverage
from batchgap.models.mlp import MLP


def test_frechet_distance_of_a_set_with_itself_is_zero_and_grows_with_noise():
    torch.manual_seed(0)
    features = torch.randn(500, 16) @ torch.randn(16, 16)
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)
    distances = [
        frechet_distance(features, features + scale * torch.randn_like(features))
        for scale in (0.1, 0.5, 1.0, 2.0)
    ]
    assert distances[0] > 0
    assert distances == sorted(distances)


def test_frechet_distance_of_two_gaussians_matches_the_closed_form():
    # Diagonal covariances: |mu_a - mu_b|^2 + sum (sigma_a - sigma_b)^2.
    torch.manual_seed(1)
    a = torch.randn(200_000, 2) * torch.tensor([1.0, 2.0])
    b = torch.randn(200_000, 2) * torch.tensor([3.0, 2.0]) + torch.tensor([1.0, 0.0])
    assert frechet_distance(a, b) == pytest.approx(1.0 + 4.0, rel=0.02)


def test_inception_score_spans_one_to_the_class_count():
    confident = torch.eye(10).repeat(3, 1)
    assert inception_score(confident) == pytest.approx(10.0, rel=1e-6)
    one_class = torch.zeros(30, 10)
    one_class[:, 3] = 1
    assert inception_score(one_class) == pytest.approx(1.0, rel=1e-6)


def test_mode_coverage_of_uniform_and_collapsed_predictions():
    uniform = mode_coverage(torch.arange(100) % 10, 10)
    assert uniform["mode_coverage"] == 1.0 and uniform["mode_kl"] == pytest.approx(0.0)
    collapsed = mode_coverage(torch.full((100,), 7), 10)
    assert collapsed["classes_covered"] == 1
    assert collapsed["mode_kl"] == pytest.approx(math.log(10))


def test_features_are_the_input_of_the_last_linear_layer():
    net = MLP((1, 8, 8), 10, width=16, depth=2, norm="none")
    x = torch.randn(5, 1, 8, 8)
    features, probabilities = FeatureClassifier(net)(x)
    assert features.shape == (5, 16)
    assert torch.allclose(net.layers[-1](features).softmax(1), probabilities, atol=1e-6)


def test_metric_classifier_of_another_dataset_is_refused(tmp_path):
    run = tmp_path / "classifier_run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"data": {"name": "mnist5k"}, "model": {}}))
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    with pytest.raises(ConfigError) as err:
        load_metric_classifier(run / "checkpoints" / "last.ckpt", "digits", (1, 8, 8), 10)
    message = str(err.value)
    assert "was trained on 'mnist5k', not on 'digits'" in message and "\n" not in message


def test_inception_metrics_need_local_weights_and_torch_fidelity(tmp_path):
    with pytest.raises(ConfigError, match="is not a file; give a local Inception-v3 weights"):
        check_inception_weights(tmp_path / "missing.pth")
    weights = tmp_path / "pt_inception.pth"
    weights.write_bytes(b"")
    if importlib.util.find_spec("torch_fidelity") is None:
        with pytest.raises(ConfigError, match="needs the torch-fidelity package"):
            check_inception_weights(weights)
    else:
        assert check_inception_weights(weights) == weights


def test_quality_of_a_generator_against_real_images():
    # Real images are a few fixed patterns; a generator that draws only one of them covers one
    # class and scores a larger Frechet distance than the real test images do.
    torch.manual_seed(0)
    patterns = torch.rand(10, 1, 8, 8) * 2 - 1
    labels = torch.arange(200) % 10
    real = patterns[labels] + 0.05 * torch.randn(200, 1, 8, 8)
    net = MLP((1, 8, 8), 10, width=16, depth=1, norm="none")
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(200):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(net(real), labels).backward()
        optimizer.step()
    evaluator = QualityEvaluator(
        FeatureClassifier(net), real, real[:100], lambda x: x, 4, 100, 0, 10
    )
    assert evaluator.reference["mode_coverage"] == 1.0

    class OnePattern(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.image = torch.nn.Parameter(patterns[3].clone())

        def forward(self, z):
            return self.image.expand(len(z), -1, -1, -1)

    scores = evaluator.evaluate(OnePattern())
    assert scores["classes_covered"] == 1
    assert scores["fid"] > evaluator.reference["fid"]
    assert scores["inception_score"] == pytest.approx(1.0, abs=0.05)


@pytest.fixture
def random_inception_weights(tmp_path, monkeypatch):
    """A torch-fidelity Inception-v3 weights file with random weights, made with no network."""
    fidelity = pytest.importorskip("torch_fidelity.feature_extractor_inceptionv3")
    net_class = fidelity.FeatureExtractorInceptionV3
    # Build the architecture without its download: skip the load of the published weights.
    monkeypatch.setattr(fidelity, "load_state_dict_from_url", lambda *args, **kwargs: {})
    monkeypatch.setattr(net_class, "load_state_dict", lambda self, state, *args, **kwargs: None)
    torch.manual_seed(0)
    state = net_class("inception-v3-compat", ["2048"]).state_dict()
    monkeypatch.undo()
    path = tmp_path / "random_inception.pth"
    torch.save(state, path)
    return path


def test_inception_metrics_score_images_from_a_local_weights_file(random_inception_weights):
    from batchgap.metrics.inception import InceptionMetrics

    # Random weights make the scores meaningless in absolute terms; their order still holds.
    # Each image costs a 299x299 Inception pass on the CPU: keep the count small.
    torch.manual_seed(0)
    real = torch.rand(16, 1, 8, 8) * 2 - 1
    metrics = InceptionMetrics(check_inception_weights(random_inception_weights), real, 16)
    same = metrics(real)
    blank = metrics(torch.full_like(real, -1.0))

    assert set(same) == {"inception_fid", "inception_is"}
    assert abs(same["inception_fid"]) < 1e-3 * blank["inception_fid"]
    # Identical images give identical class probabilities: the score of no diversity, 1.
    # (A random net barely separates classes, so the score of real images is near 1 too.)
    assert blank["inception_is"] == pytest.approx(1.0, abs=1e-4)
    assert math.isfinite(same["inception_is"]) and same["inception_is"] >= 1.0 - 1e-6
