import math

import pytest

from batchgap.errors import ConfigError
from batchgap.scaling.regime import training_regime
from batchgap.scaling.rules import scaled_lr


def test_rules():
    assert scaled_lr(0.1, "none", 4096, 128) == 0.1
    assert math.isclose(scaled_lr(0.1, "linear", 4096, 128), 3.2)
    assert math.isclose(scaled_lr(0.1, "sqrt", 4096, 128), 0.1 * math.sqrt(32))


@pytest.mark.parametrize(
    "args, message",
    [
        ((0.1, "cubic", 64, 128), "scaling.rule='cubic' is unknown; valid: linear, none, sqrt"),
        ((-0.1, "none", 64, 128), "optim.lr=-0.1 is invalid"),
        ((0.1, "sqrt", 64, 0), "scaling.reference_batch_size=0 is invalid"),
    ],
)
def test_bad_scaling_input(args, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        scaled_lr(*args)


def test_adapted_regime_matches_the_reference_update_count():
    fixed = training_regime("fixed", 10, 512, 16, updates_per_epoch=2)
    adapted = training_regime("adapted", 10, 512, 16, updates_per_epoch=2)
    assert fixed.epochs == 10
    assert adapted.epochs == 320
    assert adapted.epochs * 2 == 10 * (1024 // 16) // 2 * 2


def test_adapted_cap_below_reference_is_refused():
    with pytest.raises(ConfigError, match="regime.max_updates=5 is below the 640 updates"):
        training_regime("adapted", 10, 512, 16, updates_per_epoch=2, max_updates=5)
