"""GAN objectives as plain functions of discriminator scores, and a registry of them.

Scores are raw discriminator outputs of shape (N,): logits D = sigmoid(score) for the minimax
objectives (Goodfellow et al. 2014), critic values f(x) for the Wasserstein ones (Arjovsky et al.
2017; Gulrajani et al. 2017). Every loss is the quantity its network minimizes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from batchgap.errors import ConfigError


def value_function(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """V(G, D) = E_data[log D(x)] + E_z[log(1 - D(G(z)))], with D = sigmoid(score)."""
    # log(1 - sigmoid(s)) = logsigmoid(-s), exact where 1 - D would round to zero.
    return F.logsigmoid(real_scores).mean() + F.logsigmoid(-fake_scores).mean()


def minimax_discriminator_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """-V(G, D): the discriminator ascends the value function."""
    return -value_function(real_scores, fake_scores)


def minimax_generator_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """V(G, D) itself: the generator descends it (only its fake term depends on G)."""
    return value_function(real_scores.detach(), fake_scores)


def non_saturating_generator_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """-E_z[log D(G(z))]: the same fixed point as minimax, with strong gradients early on."""
    return -F.logsigmoid(fake_scores).mean()


def wasserstein_critic_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """E[f(fake)] - E[f(real)]: minus the critic's estimate of the Wasserstein-1 distance."""
    return fake_scores.mean() - real_scores.mean()


def wasserstein_generator_loss(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """-E[f(G(z))]."""
    return -fake_scores.mean()


def gradient_penalty(
    critic: nn.Module,
    real: Tensor,
    fake: Tensor,
    weight: float,
    noise: torch.Generator | None = None,
) -> Tensor:
    """lambda * E[(||grad_x f(x_hat)||_2 - 1)^2] on uniform random real/fake interpolates."""
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    alpha = torch.rand(shape, generator=noise, device=real.device, dtype=real.dtype)
    mixed = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    norms = grad.flatten(1).norm(dim=1)
    return weight * (norms - 1).pow(2).mean()


def clip_weights(critic: nn.Module, bound: float) -> None:
    """Clamp every critic parameter to [-bound, bound] (WGAN's crude Lipschitz constraint)."""
    with torch.no_grad():
        for param in critic.parameters():
            param.clamp_(-bound, bound)


Loss = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Objective:
    """One GAN objective: each network's loss and the critic's constraint."""

    name: str
    discriminator_loss: Loss
    generator_loss: Loss
    clips_weights: bool = False
    penalizes_gradient: bool = False


OBJECTIVES: dict[str, Objective] = {
    "minimax": Objective("minimax", minimax_discriminator_loss, minimax_generator_loss),
    "non_saturating": Objective(
        "non_saturating", minimax_discriminator_loss, non_saturating_generator_loss
    ),
    "wgan": Objective(
        "wgan", wasserstein_critic_loss, wasserstein_generator_loss, clips_weights=True
    ),
    "wgan_gp": Objective(
        "wgan_gp", wasserstein_critic_loss, wasserstein_generator_loss, penalizes_gradient=True
    ),
}


def get_objective(name: str) -> Objective:
    """The registered objective called `name`, or ConfigError listing the valid ones."""
    if name not in OBJECTIVES:
        raise ConfigError(
            f"gan_objective.name={name!r} is unknown; valid: {', '.join(sorted(OBJECTIVES))}"
        )
    return OBJECTIVES[name]


def check_objective_settings(objective: Objective, n_critic, weight_clip, penalty_weight) -> None:
    """Raise ConfigError when the critic steps, clipping or penalty do not fit the objective."""
    if isinstance(n_critic, bool) or not isinstance(n_critic, int) or n_critic < 1:
        raise ConfigError(
            f"gan_objective.n_critic={n_critic!r} is invalid; it must be an integer >= 1 "
            "(critic steps per generator update)"
        )
    name = objective.name
    if objective.clips_weights and not (weight_clip is not None and weight_clip > 0):
        raise ConfigError(
            f"gan_objective.weight_clip={weight_clip!r} is invalid; {name} needs > 0"
        )
    if not objective.clips_weights and weight_clip is not None:
        raise ConfigError(
            f"gan_objective.weight_clip={weight_clip!r} cannot be used with {name}"
            + (", which uses the gradient penalty" if objective.penalizes_gradient else "")
            + "; set gan_objective.weight_clip=null (weight clipping belongs to wgan)"
        )
    if objective.penalizes_gradient and not (penalty_weight is not None and penalty_weight > 0):
        raise ConfigError(
            f"gan_objective.gradient_penalty={penalty_weight!r} is invalid; {name} needs > 0"
        )
    if not objective.penalizes_gradient and penalty_weight is not None:
        raise ConfigError(
            f"gan_objective.gradient_penalty={penalty_weight!r} cannot be used with {name}; "
            "set it to null (the penalty belongs to wgan_gp)"
        )
