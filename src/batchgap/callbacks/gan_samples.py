"""PNG grids of generated images from fixed latents, comparable across updates and batch sizes."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torchvision.utils import save_image


class SampleGrids(L.Callback):
    """Rank zero saves `update_<t>.png` at start, every `every_n_updates` and `final.png`.

    The latents come from `seed` alone, so the same cell shows the same latent in every run.
    """

    def __init__(
        self, out_dir: Path, latent_dim: int, count: int, seed: int, every_n_updates: int
    ):
        self.out_dir = Path(out_dir)
        self.latents = torch.randn(
            count, latent_dim, generator=torch.Generator().manual_seed(seed)
        )
        self.every_n_updates = every_n_updates
        self._last_update = -1

    def on_train_start(self, trainer, pl_module) -> None:
        self._last_update = trainer.global_step
        if trainer.is_global_zero:
            self.save(pl_module.generator, f"update_{trainer.global_step:06d}.png")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        update = trainer.global_step
        if update == self._last_update or update % self.every_n_updates:
            return
        self._last_update = update
        if trainer.is_global_zero:
            self.save(pl_module.generator, f"update_{update:06d}.png")

    def on_train_end(self, trainer, pl_module) -> None:
        if trainer.is_global_zero:
            self.save(pl_module.generator, "final.png")

    @torch.no_grad()
    def save(self, generator: torch.nn.Module, name: str) -> Path:
        """Write one grid (eval mode, tanh range [-1, 1] shown as black..white)."""
        was_training = generator.training
        generator.eval()
        try:
            device = next(generator.parameters()).device
            images = generator(self.latents.to(device)).float().cpu()
        finally:
            generator.train(was_training)
        # Small images (8x8 digits) are enlarged, pixel for pixel, to be seen at all.
        side = images.shape[-1]
        if side < 32:
            images = F.interpolate(images, scale_factor=math.ceil(32 / side), mode="nearest")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / name
        nrow = math.ceil(math.sqrt(len(images)))
        save_image(images.nan_to_num(0.0), path, nrow=nrow, normalize=True, value_range=(-1, 1))
        return path
