"""Batches drawn by index from tensors already held on the training device."""

from __future__ import annotations

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler


class HeldTensors(Dataset):
    """A dataset whose items are whole batches: indexing with a list of indices gathers them."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        self.x = x
        self.y = y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, indices):
        return self.x[indices], self.y[indices]


class EpochBatchSampler(BatchSampler):
    """A batch sampler that forwards `set_epoch`, so Lightning reshuffles it every epoch."""

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)


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
    shard = DistributedSampler(
        data, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True
    )
    sampler = EpochBatchSampler(shard, batch_size=batch_size, drop_last=True)
    return DataLoader(data, sampler=sampler, batch_size=None, num_workers=0)


def evaluation_batches(
    data: HeldTensors, batch_size: int, rank: int, world_size: int
) -> DataLoader:
    """Ordered batches over this rank's unpadded shard, so no example is counted twice."""
    shard = StridedShard(len(data), rank, world_size)
    sampler = BatchSampler(shard, batch_size=batch_size, drop_last=False)
    return DataLoader(data, sampler=sampler, batch_size=None, num_workers=0)
