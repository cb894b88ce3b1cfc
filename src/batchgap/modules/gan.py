"""The LightningModule that trains a generator against a discriminator (critic), by hand.

Every training batch is one critic step on a fresh real batch; every `n_critic`-th batch also
ends with one generator update. Only generator updates go through Lightning's optimizer
wrapper, so `trainer.global_step`, `trainer.max_steps` and the recorded `update` all count
generator updates.
"""

from __future__ import annotations

import contextlib
import functools

import torch
import torch.distributed as dist
from torch import nn

from batchgap.modules.gan_objectives import Objective, clip_weights, gradient_penalty
from batchgap.modules.lean import LeanModule
from batchgap.modules.schedule import lr_multiplier, milestone_updates


def average_gradients(net: nn.Module) -> None:
    """Replace each gradient of `net` by its mean over processes (no-op in one process)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    grads = [p.grad for p in net.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset : offset + grad.numel()].view_as(grad))
        offset += grad.numel()


class GAN(LeanModule):
    """Owns both optimizers and lr schedules, the critic/generator alternation and its records."""

    def __init__(
        self,
        generator: nn.Module,
        discriminator: nn.Module,
        objective: Objective,
        latent_dim: int,
        n_critic: int,
        generator_optimizer: functools.partial,
        discriminator_optimizer: functools.partial,
        generator_lr: float,
        discriminator_lr: float,
        weight_clip: float | None = None,
        penalty_weight: float | None = None,
        lr_milestones: list[float] | None = None,
        lr_gamma: float = 0.1,
        warmup_updates: int = 0,
        noise_seed: int = 0,
    ):
        super().__init__()
        self.automatic_optimization = False
        self.generator = generator
        self.discriminator = discriminator
        self.objective = objective
        self.latent_dim = latent_dim
        self.n_critic = n_critic
        self.optimizer_factories = (generator_optimizer, discriminator_optimizer)
        self.lrs = (generator_lr, discriminator_lr)
        self.weight_clip = weight_clip
        self.penalty_weight = penalty_weight
        self.lr_milestones = list(lr_milestones or [])
        self.lr_gamma = lr_gamma
        self.warmup_updates = warmup_updates
        self.noise_seed = noise_seed
        self.lr_drop_updates: list[int] = []
        self.noise: torch.Generator | None = None
        # D(real) of the last critic step: the minimax generator loss reports V(G, D) with it.
        self._last_real_scores: torch.Tensor | None = None
        # Buffers, not attributes: they travel in checkpoints and back from spawned processes.
        self.register_buffer("critic_steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("diverged_at_update", torch.full((), -1, dtype=torch.long))
        self.register_buffer("collapsed_at_update", torch.full((), -1, dtype=torch.long))

    def weight_distance_networks(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "discriminator": self.discriminator}

    def forward(self, z):
        return self.generator(z)

    def on_train_start(self) -> None:
        # Each process draws its own latents (its share of the global batch); a resumed run
        # reseeds from the update count, so it is reproducible but not bit-equal to a
        # run that never stopped.
        seed = (self.noise_seed * 1_000_003 + self.global_rank) * 1_000_003 + self.global_step
        self.noise = torch.Generator(device=self.device).manual_seed(seed % 2**63)

    def _latents(self, count: int) -> torch.Tensor:
        return torch.randn(count, self.latent_dim, generator=self.noise, device=self.device)

    def _critic_step(self, real: torch.Tensor, optimizer: torch.optim.Optimizer) -> torch.Tensor:
        with torch.no_grad():
            fake = self.generator(self._latents(real.shape[0]))
        real_scores = self.discriminator(real)
        fake_scores = self.discriminator(fake)
        loss = self.objective.discriminator_loss(real_scores, fake_scores)
        if self.objective.penalizes_gradient:
            loss = loss + gradient_penalty(
                self.discriminator, real, fake, self.penalty_weight, self.noise
            )
        optimizer.zero_grad(set_to_none=True)
        self._backward_then_average(loss, self.discriminator)
        # The raw optimizer: a critic step must not count as an update (see the module doc).
        optimizer.step()
        if self.objective.clips_weights:
            clip_weights(self.discriminator, self.weight_clip)
        self._last_real_scores = real_scores.detach()
        return loss.detach()

    def _generator_step(self, count: int, optimizer) -> torch.Tensor:
        # No gradients into the discriminator's parameters: they would be wasted work.
        self.discriminator.requires_grad_(False)
        fake_scores = self.discriminator(self.generator(self._latents(count)))
        loss = self.objective.generator_loss(self._last_real_scores, fake_scores)
        optimizer.zero_grad(set_to_none=True)
        self._backward_then_average(loss, self.generator)
        self.discriminator.requires_grad_(True)
        optimizer.step()
        return loss.detach()

    def _backward_then_average(self, loss: torch.Tensor, net: nn.Module) -> None:
        # DDP's reducer expects every parameter in every backward; each backward here reaches
        # one network only, so DDP's sync is blocked and that network's gradients averaged here.
        # Single-process strategies have nothing to block.
        block = getattr(self.trainer.strategy, "block_backward_sync", contextlib.nullcontext)
        with block():
            self.manual_backward(loss)
        average_gradients(net)

    def training_step(self, batch, batch_idx):
        """One critic step; every `n_critic`-th batch also one generator update and lr step."""
        real, _ = batch
        generator_opt, discriminator_opt = self.optimizers()
        d_loss = self._critic_step(real, discriminator_opt.optimizer)
        self.critic_steps += 1
        self.log("train/discriminator_loss", d_loss, on_step=True, on_epoch=False)
        outputs = {"loss": d_loss}
        if int(self.critic_steps) % self.n_critic == 0:
            g_loss = self._generator_step(real.shape[0], generator_opt)
            for schedule in self.lr_schedulers():
                schedule.step()
            self.log("train/generator_loss", g_loss, on_step=True, on_epoch=False)
            outputs = {"loss": g_loss, "discriminator_loss": d_loss}
        losses = torch.stack([d_loss, outputs["loss"]])
        if not bool(torch.isfinite(losses).all()) and int(self.diverged_at_update) < 0:
            self.diverged_at_update.fill_(self.global_step)
        return outputs

    def configure_optimizers(self):
        """Generator first: `trainer.optimizers[0]` is the one whose steps are counted."""
        total_updates = int(self.trainer.estimated_stepping_batches)
        self.lr_drop_updates = milestone_updates(self.lr_milestones, total_updates)
        multiplier = functools.partial(
            lr_multiplier,
            drops=self.lr_drop_updates,
            gamma=self.lr_gamma,
            warmup_updates=self.warmup_updates,
        )
        optimizers, schedules = [], []
        for net, factory, lr in zip(
            (self.generator, self.discriminator), self.optimizer_factories, self.lrs
        ):
            optimizer = factory(net.parameters(), lr=lr)
            optimizers.append(optimizer)
            schedules.append(torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier))
        return optimizers, schedules
