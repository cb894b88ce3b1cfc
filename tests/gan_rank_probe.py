"""`batchgap-train` whose every rank saves its GAN parameters at the end (for DDP tests).

Usage: python gan_rank_probe.py <out dir> <overrides...>; writes <out dir>/rank<r>.pt.
"""

import sys
from pathlib import Path

import torch

from batchgap import train
from batchgap.modules.gan import GAN

OUT = Path(sys.argv.pop(1))


def save_parameters(self) -> None:
    params = {name: p.detach().cpu().clone() for name, p in self.named_parameters()}
    torch.save(params, OUT / f"rank{self.global_rank}.pt")


GAN.on_train_end = save_parameters
train.cli()
