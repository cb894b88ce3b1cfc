"""Generator and discriminator shapes, norms and the WGAN-GP batch-norm refusal."""

import pytest
import torch
from conftest import compose

from batchgap.errors import ConfigError
from batchgap.models.gan_nets import (
    DCGANDiscriminator,
    DCGANGenerator,
    MLPDiscriminator,
    MLPGenerator,
    uses_batch_statistics,
)
from batchgap.train_gan import build_nets


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32)])
def test_dcgan_nets_map_latents_to_images_and_images_to_scores(shape):
    generator = DCGANGenerator(shape, latent_dim=8, channels=4)
    discriminator = DCGANDiscriminator(shape, channels=4, norm="ln")
    images = generator(torch.randn(3, 8))
    assert images.shape == (3, *shape)
    assert images.abs().max() <= 1
    assert discriminator(images).shape == (3,)


def test_mlp_nets_and_batch_statistics():
    generator = MLPGenerator((1, 8, 8), latent_dim=8, width=16, norm="bn")
    discriminator = MLPDiscriminator((1, 8, 8), width=16, norm="ln")
    assert generator(torch.randn(4, 8)).shape == (4, 1, 8, 8)
    assert discriminator(torch.randn(4, 1, 8, 8)).shape == (4,)
    assert uses_batch_statistics(generator) and not uses_batch_statistics(discriminator)


def test_dcgan_refuses_images_it_cannot_upsample_to():
    with pytest.raises(ConfigError, match="square images with a side divisible by 4"):
        DCGANGenerator((3, 30, 30), latent_dim=8)


def test_unknown_gan_norm_lists_the_valid_ones():
    with pytest.raises(ConfigError, match=r"gan_net.generator.norm='wn' is unknown; valid: .*ln"):
        MLPGenerator((1, 8, 8), latent_dim=8, norm="wn")


@pytest.mark.parametrize("norm", ["bn", "ghost_bn"])
def test_wgan_gp_critic_with_batch_norm_is_refused(norm):
    cfg = compose(
        "task=gan",
        "gan_objective=wgan_gp",
        f"gan_net.discriminator.norm={norm}",
        "gan_net.discriminator.ghost_batch_size=4",
    )
    with pytest.raises(ConfigError) as err:
        build_nets(cfg, (1, 8, 8))
    assert f"gan_net.discriminator.norm='{norm}' normalizes over the batch" in str(err.value)
    # Layer norm is fine, and batch norm is fine for the non-saturating GAN.
    build_nets(
        compose("task=gan", "gan_objective=wgan_gp", "gan_net.discriminator.norm=ln"), (1, 8, 8)
    )
    build_nets(compose("task=gan", "gan_net.discriminator.norm=bn"), (1, 8, 8))
