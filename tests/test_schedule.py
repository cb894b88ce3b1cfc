import math

from batchgap.callbacks.schedule import log_spaced_updates
from batchgap.modules.schedule import lr_multiplier, milestone_updates


def test_dense_then_about_twenty_per_decade():
    updates = sorted(log_spaced_updates(10_000))
    assert updates[:10] == list(range(1, 11))
    assert updates[-1] == 10_000
    per_decade = [sum(10**k < u <= 10 ** (k + 1) for u in updates) for k in (1, 2, 3)]
    assert all(18 <= n <= 20 for n in per_decade), per_decade
    ratios = [b / a for a, b in zip(updates[10:], updates[11:])]
    assert max(ratios) < 10 ** (1 / 20) * 1.1


def test_short_runs_record_every_update():
    assert log_spaced_updates(7) == set(range(1, 8))


def test_milestones_are_fractions_of_all_updates():
    assert milestone_updates([0.5, 0.75], 1000) == [500, 750]


def test_lr_steps_down_and_warms_up():
    drops = [500, 750]
    assert lr_multiplier(499, drops, 0.1, 0) == 1
    assert math.isclose(lr_multiplier(500, drops, 0.1, 0), 0.1)
    assert math.isclose(lr_multiplier(800, drops, 0.1, 0), 0.01)
    assert math.isclose(lr_multiplier(0, drops, 0.1, 10), 0.1)
    assert lr_multiplier(10, drops, 0.1, 10) == 1
