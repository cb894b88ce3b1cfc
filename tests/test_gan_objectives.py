"""GAN objectives, the gradient penalty and weight clipping against hand computations."""

import math

import pytest
import torch
from torch import nn

from batchgap.errors import ConfigError
from batchgap.modules.gan_objectives import (
    OBJECTIVES,
    check_objective_settings,
    clip_weights,
    get_objective,
    gradient_penalty,
    value_function,
)


def sigmoid(s):
    return 1 / (1 + math.exp(-s))


def test_minimax_losses_are_minus_v_for_d_and_v_for_g():
    real, fake = [2.0, -0.5, 1.0], [-1.0, 0.3]
    v = sum(math.log(sigmoid(s)) for s in real) / 3
    v += sum(math.log(1 - sigmoid(s)) for s in fake) / 2
    real_t, fake_t = torch.tensor(real), torch.tensor(fake)
    minimax = get_objective("minimax")
    assert float(value_function(real_t, fake_t)) == pytest.approx(v, rel=1e-6)
    assert float(minimax.discriminator_loss(real_t, fake_t)) == pytest.approx(-v, rel=1e-6)
    assert float(minimax.generator_loss(real_t, fake_t)) == pytest.approx(v, rel=1e-6)


def test_other_generator_losses_match_their_formulas():
    real, fake = torch.tensor([0.5, 1.5]), torch.tensor([-2.0, 0.0, 1.0])
    expected = -sum(math.log(sigmoid(s)) for s in fake.tolist()) / 3
    assert float(OBJECTIVES["non_saturating"].generator_loss(real, fake)) == pytest.approx(
        expected, rel=1e-6
    )
    for name in ("wgan", "wgan_gp"):
        assert float(OBJECTIVES[name].discriminator_loss(real, fake)) == pytest.approx(
            float(fake.mean() - real.mean())
        )
        assert float(OBJECTIVES[name].generator_loss(real, fake)) == pytest.approx(
            -float(fake.mean())
        )


def test_value_at_the_optimal_discriminator_is_minus_log4_plus_twice_jsd():
    # p_data and p_G on {0, 1, 2, 3}; sample multisets with exactly these frequencies make the
    # sample means exact expectations.
    p = torch.tensor([0.5, 0.25, 0.25, 0.0])
    q = torch.tensor([0.25, 0.25, 0.25, 0.25])
    real_x, fake_x = torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 2, 3])
    # D*(x) = p / (p + q), as a logit: log p - log q (-inf where p = 0).
    logit = p.log() - q.log()
    v = float(value_function(logit[real_x], logit[fake_x]))
    m = (p + q) / 2

    def kl(a, b):
        mask = a > 0
        return float((a[mask] * (a[mask] / b[mask]).log()).sum())

    jsd = 0.5 * kl(p, m) + 0.5 * kl(q, m)
    assert jsd > 0.05
    assert v == pytest.approx(-math.log(4) + 2 * jsd, abs=1e-6)


def test_gradient_penalty_is_zero_for_a_unit_gradient_linear_critic():
    torch.manual_seed(0)
    critic = nn.Sequential(nn.Flatten(), nn.Linear(12, 1))
    with torch.no_grad():
        critic[1].weight /= critic[1].weight.norm()
    real, fake = torch.randn(8, 3, 2, 2), torch.randn(8, 3, 2, 2)
    penalty = gradient_penalty(critic, real, fake, 10.0).detach()
    assert float(penalty) == pytest.approx(0.0, abs=1e-10)
    with torch.no_grad():
        critic[1].weight *= 3.0
    # ||grad|| = 3 everywhere: lambda * (3 - 1)^2.
    assert float(gradient_penalty(critic, real, fake, 10.0).detach()) == pytest.approx(
        40.0, rel=1e-5
    )


def test_weight_clipping_bounds_every_parameter():
    net = nn.Linear(5, 3)
    with torch.no_grad():
        net.weight.mul_(100)
    clip_weights(net, 0.01)
    assert max(float(p.abs().max()) for p in net.parameters()) <= 0.01


@pytest.mark.parametrize(
    "name, n_critic, clip, penalty, expected",
    [
        ("minimax", 0, None, None, "gan_objective.n_critic=0 is invalid"),
        ("wgan", 2.5, 0.01, None, "gan_objective.n_critic=2.5 is invalid"),
        ("wgan_gp", 5, 0.01, 10.0, "gan_objective.weight_clip=0.01 cannot be used with wgan_gp"),
        ("wgan", 5, None, None, "gan_objective.weight_clip=None is invalid; wgan needs > 0"),
        ("non_saturating", 1, None, 10.0, "gan_objective.gradient_penalty=10.0 cannot be used"),
    ],
)
def test_bad_objective_settings_fail_in_one_line(name, n_critic, clip, penalty, expected):
    with pytest.raises(ConfigError) as err:
        check_objective_settings(get_objective(name), n_critic, clip, penalty)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_unknown_objective_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="'hinge' is unknown; valid: minimax, non_saturating"):
        get_objective("hinge")
