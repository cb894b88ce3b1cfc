"""Batches drawn by index from tensors already held on the training device."""

from __future__ import annotations

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, Sampler


class HeldTensors(Dataset):
    """A dataset whose items are whole batches: indexing with indices gathers them."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x = x
        self.y = y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, indices):
        # A gather by index tensor costs a tenth of indexing with a Python list of the same ints.
        index = torch.as_tensor(indices, device=self.x.device)
        return self.x.index_select(0, index), self.y.index_select(0, index)


class ShuffledShardBatches(Sampler):
    """Index tensors of full batches from this rank's shard of a permutation drawn each epoch.

    The order is DistributedSampler's (shuffle, drop_last) cut by BatchSampler (drop_last),
    without turning every index into a Python int; `set_epoch` reshuffles.
    """

    def __init__(self, length: int, batch_size: int, rank: int, world_size: int, seed: int):
        self.length = length
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.epoch = 0
        self.shard_size = length // world_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.shard_size // self.batch_size

    def __iter__(self):
        # A generator, so the permutation is drawn at the first batch, as BatchSampler draws
        # it: Lightning may create the epoch's iterator before it calls set_epoch on a resume.
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.length, generator=generator)
        shard = order[: self.shard_size * self.world_size][self.rank :: self.world_size]
        yield from shard[: len(self) * self.batch_size].view(len(self), self.batch_size)


class StridedShard(torch.utils.data.Sampler):
    """Every `world_size`-th index from `rank`: disjoint, covering, unpadded shards for eval."""

    def __init__(self, length: int, rank: int, world_size: int):
        self.indices = list(range(rank, length, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def training_batches(
    data: HeldTensors, batch_size: int, rank: int, world_size: int, seed: int
) -> DataLoader:
    """Shuffled per-device batches; each rank sees a disjoint shard, reshuffled every epoch.

    Incomplete batches are dropped so every update sees exactly the global batch size.
    """
    sampler = ShuffledShardBatches(len(data), batch_size, rank, world_size, seed)
    return DataLoader(data, sampler=sampler, batch_size=None, num_workers=0)


def evaluation_batches(
    data: HeldTensors, batch_size: int, rank: int, world_size: int
) -> DataLoader:
    """Ordered batches over this rank's unpadded shard, so no example is counted twice."""
    shard = StridedShard(len(data), rank, world_size)
    sampler = BatchSampler(shard, batch_size=batch_size, drop_last=False)
    return DataLoader(data, sampler=sampler, batch_size=None, num_workers=0)
