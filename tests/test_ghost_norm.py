"""Ghost batch norm against plain batch norm and against statistics computed by hand."""

import pytest
import torch
from torch import nn

from batchgap.errors import ConfigError
from batchgap.models.ghost_norm import GhostBatchNorm, check_ghost_batch_size
from batchgap.models.norm import check_norm, make_norm


def _pair(dims: int, ghost: int):
    torch.manual_seed(0)
    bn = nn.BatchNorm1d(5) if dims == 1 else nn.BatchNorm2d(5)
    gbn = GhostBatchNorm(5, ghost)
    with torch.no_grad():
        bn.weight.uniform_(0.5, 2.0)
        bn.bias.uniform_(-1.0, 1.0)
    gbn.load_state_dict(bn.state_dict())
    return bn, gbn


def _input(dims: int, batch: int) -> torch.Tensor:
    shape = (batch, 5) if dims == 1 else (batch, 5, 3, 4)
    return torch.randn(shape) * 3 + 1


@pytest.mark.parametrize("dims", [1, 2])
def test_equals_batch_norm_when_the_ghost_is_the_whole_batch(dims):
    bn, gbn = _pair(dims, ghost=8)
    for _ in range(3):
        x = _input(dims, 8)
        torch.testing.assert_close(gbn(x), bn(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gbn.running_mean, bn.running_mean)
    torch.testing.assert_close(gbn.running_var, bn.running_var)
    assert int(gbn.num_batches_tracked) == int(bn.num_batches_tracked) == 3


@pytest.mark.parametrize("dims", [1, 2])
def test_each_ghost_batch_is_normalized_with_its_own_statistics(dims):
    _, gbn = _pair(dims, ghost=4)
    x = _input(dims, 12)
    out = gbn(x)
    reduce = (0,) if dims == 1 else (0, 2, 3)
    shape = (1, 5) if dims == 1 else (1, 5, 1, 1)
    for k in range(3):
        part = x[4 * k : 4 * (k + 1)]
        mean = part.mean(dim=reduce, keepdim=True)
        var = ((part - mean) ** 2).mean(dim=reduce, keepdim=True)
        expected = (part - mean) / torch.sqrt(var + 1e-5)
        expected = expected * gbn.weight.view(shape) + gbn.bias.view(shape)
        torch.testing.assert_close(out[4 * k : 4 * (k + 1)], expected, rtol=1e-5, atol=1e-5)
    # Not what one batch norm over all 12 examples gives.
    whole = (x - x.mean(dim=reduce, keepdim=True)) / x.std(dim=reduce, keepdim=True)
    assert not torch.allclose(out, whole * gbn.weight.view(shape) + gbn.bias.view(shape))


@pytest.mark.parametrize("dims", [1, 2])
def test_running_stats_are_k_sequential_updates_with_momentum_over_k(dims):
    _, gbn = _pair(dims, ghost=4)
    with torch.no_grad():
        gbn.running_mean.fill_(0.5)
        gbn.running_var.fill_(2.0)
    x = _input(dims, 12)
    gbn(x)
    # By hand: three batch-norm updates in ghost order, each with momentum 0.1 / 3.
    reduce = (0,) if dims == 1 else (0, 2, 3)
    mean, var = torch.full((5,), 0.5), torch.full((5,), 2.0)
    alpha = 0.1 / 3
    for k in range(3):
        part = x[4 * k : 4 * (k + 1)]
        mean = (1 - alpha) * mean + alpha * part.mean(dim=reduce)
        var = (1 - alpha) * var + alpha * part.var(dim=reduce, unbiased=True)
    torch.testing.assert_close(gbn.running_mean, mean)
    torch.testing.assert_close(gbn.running_var, var)


@pytest.mark.parametrize("dims", [1, 2])
def test_eval_uses_running_stats_like_batch_norm(dims):
    bn, gbn = _pair(dims, ghost=2)
    for _ in range(4):
        gbn(_input(dims, 8))
    bn.load_state_dict(gbn.state_dict())
    bn.eval()
    gbn.eval()
    x = _input(dims, 6)  # any batch size in eval, even one no ghost size divides
    torch.testing.assert_close(gbn(x), bn(x))
    assert not torch.allclose(gbn.running_mean, torch.zeros(5))


def test_gradients_flow_through_the_ghost_statistics():
    _, gbn = _pair(1, ghost=4)
    x = _input(1, 8).requires_grad_(True)
    gbn(x).pow(2).sum().backward()
    assert x.grad is not None and gbn.weight.grad is not None
    # Per ghost, the sum of gradients wrt the inputs vanishes (mean subtraction).
    torch.testing.assert_close(x.grad[:4].sum(0), torch.zeros(5), atol=1e-4, rtol=0)


def test_make_norm_builds_ghost_batch_norm():
    layer = make_norm("ghost_bn", 7, dims=2, ghost_batch_size=16)
    assert isinstance(layer, GhostBatchNorm) and layer.ghost_batch_size == 16


@pytest.mark.parametrize(
    "ghost, per_device, message",
    [
        (32, 16, "model.ghost_batch_size=32 exceeds the per-device batch 16"),
        (6, 16, "model.ghost_batch_size=6 does not divide the per-device batch 16"),
        (0, 16, "model.ghost_batch_size=0 is invalid"),
        (None, 16, "model.ghost_batch_size=None is invalid with model.norm=ghost_bn"),
    ],
)
def test_bad_ghost_sizes_are_refused_in_one_line(ghost, per_device, message):
    with pytest.raises(ConfigError, match=message) as caught:
        check_ghost_batch_size(ghost, per_device)
    assert "\n" not in str(caught.value)
    assert "use a divisor of 16 (16, 8, 4, 2, 1)" in str(caught.value)


def test_ghost_size_dividing_the_batch_passes():
    check_ghost_batch_size(16, 64)
    check_norm("ghost_bn", 16, 64, "cpu")
    check_norm("bn", None, 64, "cpu")


def test_sync_bn_is_refused_on_cpu_in_one_line():
    with pytest.raises(ConfigError, match="model.norm='sync_bn' needs GPUs") as caught:
        check_norm("sync_bn", None, 64, "cpu")
    assert "\n" not in str(caught.value)


def test_sync_bn_builds_a_sync_batch_norm_layer():
    assert isinstance(make_norm("sync_bn", 4, dims=2), nn.SyncBatchNorm)


def test_unknown_norm_is_refused():
    with pytest.raises(ConfigError, match="model.norm='layer' is unknown; valid: bn, ghost_bn"):
        check_norm("layer", None, 64, "cpu")
