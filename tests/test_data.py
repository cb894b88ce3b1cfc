import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from torch.utils.data import BatchSampler, DistributedSampler

from batchgap.data.batches import (
    HeldTensors,
    ShuffledShardBatches,
    evaluation_batches,
    training_batches,
)
from batchgap.data.datamodule import DATASETS, load_splits
from batchgap.data.sizes import EXAMPLES, training_examples
from batchgap.data.sources import load_mnist5k
from batchgap.errors import ConfigError


def data_cfg(**overrides):
    base = dict(
        name="digits",
        global_batch_size=64,
        eval_batch_size=256,
        val_fraction=0.15,
        test_fraction=0.15,
        split_seed=0,
        on_device=True,
        data_dir=None,
        download=False,
    )
    base.update(overrides)
    return OmegaConf.create(base)


def test_digits_split_is_stratified_disjoint_and_fixed():
    splits = load_splits(data_cfg())
    sizes = {k: len(v.y) for k, v in splits.items()}
    assert sum(sizes.values()) == 1797
    assert sizes["test"] == round(0.15 * 1797) or abs(sizes["test"] - 0.15 * 1797) < 1
    for part in splits.values():
        counts = np.bincount(part.y, minlength=10) / len(part.y)
        assert np.all(np.abs(counts - 0.1) < 0.02)
    rows = {k: {v.x[i].tobytes() for i in range(len(v.y))} for k, v in splits.items()}
    assert not rows["train"] & rows["test"]
    again = load_splits(data_cfg())
    assert np.array_equal(again["test"].y, splits["test"].y)


def test_standardized_with_training_statistics():
    train = load_splits(data_cfg())["train"].x
    assert abs(train.mean()) < 1e-4
    assert abs(train.std() - 1) < 1e-3


def test_mnist5k_is_the_bundled_real_subset():
    data = load_mnist5k()
    assert data.x.shape == (5000, 1, 28, 28)
    assert np.bincount(data.y).tolist() == [500] * 10


def test_unknown_dataset_names_the_valid_ones():
    with pytest.raises(ConfigError, match=r"data.name='svhn' is unknown; valid: .*digits"):
        load_splits(data_cfg(name="svhn"))


def test_missing_torchvision_files_say_where(tmp_path):
    with pytest.raises(ConfigError, match=str(tmp_path / "MNIST" / "raw")):
        load_splits(data_cfg(name="mnist", data_dir=str(tmp_path)))


@pytest.mark.parametrize("name", ["digits", "mnist5k"])
@pytest.mark.parametrize("val,test", [(0.15, 0.15), (0.1, 0.2), (0.33, 0.01)])
def test_split_sizes_known_before_loading_match_the_loaded_splits(name, val, test):
    cfg = data_cfg(name=name, val_fraction=val, test_fraction=test)
    assert training_examples(cfg) == len(load_splits(cfg)["train"].y)


def test_every_dataset_has_a_size_for_the_sweep_check():
    assert sorted(EXAMPLES) == DATASETS


def test_torchvision_training_split_is_the_official_set_less_validation():
    assert training_examples(data_cfg(name="mnist", val_fraction=0.1, test_fraction=None)) == 54000
    assert training_examples(data_cfg(name="svhn")) is None
    assert training_examples(data_cfg(test_fraction=None)) is None


def held(n=103):
    return HeldTensors(torch.arange(n).float()[:, None], torch.arange(n))


def test_training_shards_are_disjoint_and_reshuffled_each_epoch():
    data = held(103)
    seen = []
    for rank in range(2):
        loader = training_batches(data, batch_size=10, rank=rank, world_size=2, seed=3)
        loader.sampler.set_epoch(0)
        seen.append(torch.cat([y for _, y in loader]).tolist())
        assert all(len(y) == 10 for _, y in loader)
    assert not set(seen[0]) & set(seen[1])
    assert len(seen[0]) == len(seen[1]) == 50
    loader = training_batches(data, batch_size=10, rank=0, world_size=2, seed=3)
    loader.sampler.set_epoch(1)
    assert torch.cat([y for _, y in loader]).tolist() != seen[0]


@pytest.mark.parametrize(
    "length,world_size,batch_size", [(103, 2, 10), (1257, 1, 64), (1257, 3, 7), (100, 4, 25)]
)
def test_training_batches_follow_distributed_sampler_order(length, world_size, batch_size):
    # Runs recorded before the tensor sampler must replay the same examples in the same order.
    for rank in range(world_size):
        for epoch in (0, 3):
            shard = DistributedSampler(
                range(length), world_size, rank, shuffle=True, seed=5, drop_last=True
            )
            shard.set_epoch(epoch)
            expected = list(BatchSampler(shard, batch_size, drop_last=True))
            ours = ShuffledShardBatches(length, batch_size, rank, world_size, seed=5)
            ours.set_epoch(epoch)
            assert [batch.tolist() for batch in ours] == expected
            assert len(ours) == len(expected)


def test_training_batches_draw_their_order_at_the_first_batch():
    # Lightning can create an epoch's iterator before calling set_epoch (on a resume).
    ours = ShuffledShardBatches(50, 10, rank=0, world_size=1, seed=5)
    early = iter(ours)
    ours.set_epoch(2)
    reference = ShuffledShardBatches(50, 10, rank=0, world_size=1, seed=5)
    reference.set_epoch(2)
    assert next(early).tolist() == next(iter(reference)).tolist()


def test_held_tensors_gather_by_list_or_tensor():
    data = held(20)
    x, y = data[[3, 1, 7]]
    assert y.tolist() == [3, 1, 7] and x[:, 0].tolist() == [3.0, 1.0, 7.0]
    assert data[torch.tensor([5, 2])][1].tolist() == [5, 2]


def test_evaluation_shards_cover_every_example_once():
    data = held(103)
    ys = []
    for rank in range(3):
        ys += torch.cat([y for _, y in evaluation_batches(data, 16, rank, 3)]).tolist()
    assert sorted(ys) == list(range(103))
