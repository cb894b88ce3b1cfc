import pytest

from batchgap.batching import batch_layout, limited_updates_per_epoch, updates_per_epoch
from batchgap.errors import ConfigError


def test_per_device_batch_is_global_over_world_and_accumulation():
    layout = batch_layout(4096, devices=4, num_nodes=2, accumulate_grad_batches=2)
    assert layout.world_size == 8
    assert layout.per_device_batch_size == 256
    assert "4096 = 2 node(s) x 4 device(s) x 2 micro-batch(es) x 256" in layout.describe()


def test_non_dividing_batch_shows_the_arithmetic():
    with pytest.raises(ConfigError, match=r"100 / \(3 devices x 1 nodes x 1 accumulation\)"):
        batch_layout(100, devices=3)


@pytest.mark.parametrize("value", [0, -4, 2.5, "64", True])
def test_non_positive_or_non_integer_batch_is_refused(value):
    with pytest.raises(ConfigError, match="data.global_batch_size"):
        batch_layout(value, devices=1)


def test_updates_per_epoch_drops_the_incomplete_batch():
    assert updates_per_epoch(1257, 16) == 78
    assert updates_per_epoch(1257, 1024) == 1


@pytest.mark.parametrize(
    "per_epoch,accumulate,limit,expected",
    [
        (19, 1, None, 19),
        (19, 1, 10, 10),  # debug=fast
        (19, 1, 40, 19),
        (19, 1, 0.5, 9),
        (19, 1, 1.0, 19),
        (10, 4, 6, 2),  # 6 batches: one full accumulation, then a stepped remainder
        (10, 4, 8, 2),
    ],
)
def test_limit_train_batches_cuts_the_updates_an_epoch_makes(
    per_epoch, accumulate, limit, expected
):
    assert limited_updates_per_epoch(per_epoch, accumulate, limit) == expected
