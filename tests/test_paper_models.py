"""Hoffer et al.'s networks: each builds from its config and trains one step on a tiny batch."""

import pytest
import torch
from conftest import compose
from torch import nn

from batchgap.errors import ConfigError
from batchgap.models import build_model
from batchgap.models.ghost_norm import GhostBatchNorm
from batchgap.models.resnet import CifarResNet
from batchgap.models.wide_resnet import WideResNet

PAPER_MODELS = [
    ("c1", (3, 32, 32), 10),
    ("c3", (3, 32, 32), 100),
    ("resnet20", (3, 32, 32), 10),
    ("resnet44", (3, 32, 32), 10),
    ("wrn16_4", (3, 32, 32), 100),
    ("f1", (1, 28, 28), 10),
]
ALL_MODELS = [*PAPER_MODELS, ("mlp", (1, 8, 8), 10), ("convnet", (1, 8, 8), 10)]


def _one_step(net: nn.Module, input_shape, num_classes, batch: int = 8) -> torch.Tensor:
    torch.manual_seed(0)
    x = torch.randn(batch, *input_shape)
    y = torch.randint(0, num_classes, (batch,))
    net.train()
    logits = net(x)
    nn.functional.cross_entropy(logits, y).backward()
    return logits


@pytest.mark.parametrize("name, input_shape, num_classes", PAPER_MODELS)
def test_paper_model_builds_and_trains_a_step(name, input_shape, num_classes):
    torch.set_num_threads(1)
    net = build_model(compose(f"model={name}").model, input_shape, num_classes)
    logits = _one_step(net, input_shape, num_classes)
    assert logits.shape == (8, num_classes)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    assert any(isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d) for m in net.modules())


@pytest.mark.parametrize("name, input_shape, num_classes", ALL_MODELS)
def test_every_model_takes_ghost_batch_norm(name, input_shape, num_classes):
    torch.set_num_threads(1)
    cfg = compose(f"model={name}", "model.norm=ghost_bn", "model.ghost_batch_size=4")
    net = build_model(cfg.model, input_shape, num_classes)
    ghosts = [m for m in net.modules() if isinstance(m, GhostBatchNorm)]
    assert ghosts and all(m.ghost_batch_size == 4 for m in ghosts)
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules())
    assert _one_step(net, input_shape, num_classes).shape == (8, num_classes)


@pytest.mark.parametrize("name", ["c1", "resnet20", "wrn16_4", "mlp"])
def test_sync_bn_converts_every_norm_layer(name):
    net = build_model(compose(f"model={name}", "model.norm=sync_bn").model, (3, 32, 32), 10)
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms and all(isinstance(m, nn.SyncBatchNorm) for m in norms)


@pytest.mark.parametrize(
    "name, low, high",
    # He et al.: ResNet-20 0.27M, ResNet-44 0.66M (identity shortcuts; ours project, a few
    # thousand more); Zagoruyko & Komodakis: WRN-16-4 2.7M.
    [("resnet20", 0.26e6, 0.29e6), ("resnet44", 0.65e6, 0.69e6), ("wrn16_4", 2.65e6, 2.8e6)],
)
def test_parameter_counts_match_the_papers(name, low, high):
    net = build_model(compose(f"model={name}").model, (3, 32, 32), 10)
    count = sum(p.numel() for p in net.parameters())
    assert low < count < high, count


def test_resnet_depth_sets_blocks_per_stage():
    blocks = [m for m in CifarResNet((3, 32, 32), 10, depth=44).modules() if hasattr(m, "body")]
    assert len(blocks) == 3 * 7


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: CifarResNet((3, 32, 32), 10, depth=21), "model.depth=21 is invalid"),
        (lambda: WideResNet((3, 32, 32), 10, depth=18), "model.depth=18 is invalid"),
    ],
)
def test_bad_depths_are_refused(make, message):
    with pytest.raises(ConfigError, match=message):
        make()
