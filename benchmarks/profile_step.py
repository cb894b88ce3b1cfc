"""Where an update's time goes: `python benchmarks/profile_step.py [--updates N]`.

Times the work both loops share (forward, backward, the SGD update) in the plain loop and in
batchgap's Lightning run of the benchmark, at batch 64 and 1024, each of batchgap's per-update
hooks, and Lightning's own loop around a trivial step. Cumulative wall time of each call, so it
is as noisy as the machine; compare columns of one run, not runs.
"""

from __future__ import annotations

import argparse
import collections
import functools
import logging
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from common import machine_line  # noqa: E402

# "module:class" -> methods timed per call; a nested call is also inside its caller's time.
HOOKS = {
    # The shared work, timed in both loops.
    "batchgap.models.mlp:MLP": ["forward"],
    "torch:Tensor": ["backward"],
    "torch.optim.sgd:": ["sgd"],  # the update itself; SGD.step also runs Lightning's closure
    # batchgap's own hooks.
    "batchgap.data.batches:HeldTensors": ["__getitem__"],
    "batchgap.modules.classifier:Classifier": [
        "training_step",
        "_loss_and_mistakes",
        "on_train_epoch_end",
    ],
    "batchgap.callbacks.divergence:DivergenceGuard": ["on_train_batch_end"],
    "batchgap.callbacks.weight_distance:WeightDistance": [
        "on_train_batch_start",
        "on_train_batch_end",
    ],
    "lightning.pytorch.loggers:CSVLogger": ["log_metrics", "save"],
}


# The work both loops share, with the names the table gives it.
SHARED = {
    "MLP.forward": "forward pass",
    "Tensor.backward": "backward pass",
    "torch.optim.sgd.sgd": "SGD update",
}
# Timed calls that no other timed call of ours encloses (the loss and error are counted here).
TOP_LEVEL_OURS = (
    "HeldTensors.__getitem__",
    "Classifier.training_step",
    "Classifier.on_train_epoch_end",
    "DivergenceGuard.on_train_batch_end",
    "WeightDistance.on_train_batch_start",
    "WeightDistance.on_train_batch_end",
    "CSVLogger.save",
)


def instrument() -> dict[str, list[float]]:
    """Wrap every hook in HOOKS with a timer; returns {name: [calls, seconds]}."""
    import importlib

    totals: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])
    for target, methods in HOOKS.items():
        module_name, class_name = target.split(":")
        module = importlib.import_module(module_name)
        cls = getattr(module, class_name) if class_name else module
        for method in methods:
            original = getattr(cls, method)

            @functools.wraps(original)
            def timed(
                *args, _original=original, _key=f"{class_name or module_name}.{method}", **kwargs
            ):
                start = time.perf_counter()
                try:
                    return _original(*args, **kwargs)
                finally:
                    entry = totals[_key]
                    entry[0] += 1
                    entry[1] += time.perf_counter() - start

            setattr(cls, method, timed)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=600, help="timed updates at batch 64")
    args = parser.parse_args()
    from bench_step import WARMUP_UPDATES, lightning_updates, loop_floor_seconds, plain_updates

    # Lightning's start-up notes would split the tables; they say nothing about speed.
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")

    totals = instrument()
    print(machine_line())
    plain_floor, lightning_floor = loop_floor_seconds(4 * args.updates)
    print(
        f"Lightning's bare loop, trivial step: {lightning_floor * 1e6:.0f} us per update "
        f"against {plain_floor * 1e6:.0f} us plain (+{(lightning_floor - plain_floor) * 1e6:.0f})"
    )
    for batch, updates in ((64, args.updates), (1024, max(20, args.updates // 4))):
        counted = updates + WARMUP_UPDATES
        totals.clear()
        plain = plain_updates(batch, updates)
        plain_totals = dict(totals)
        totals.clear()
        ours = lightning_updates(batch, updates)
        plain_us = {k: v[1] / counted * 1e6 for k, v in plain_totals.items()}
        ours_us = collections.defaultdict(
            float, {k: v[1] / counted * 1e6 for k, v in totals.items()}
        )
        # The forward pass runs inside training_step: our hook is shown without it.
        ours_us["Classifier.training_step"] -= ours_us["MLP.forward"]
        hooks = {name: ours_us[name] for name in TOP_LEVEL_OURS}
        print(f"\nbatch {batch}, us per update ({ours / plain:.2f}x)")
        rows = [("whole update", plain * 1e6, ours * 1e6)]
        for name, label in SHARED.items():
            rows.append((f"  {label} [{name}]", plain_us.get(name, 0.0), ours_us[name]))
        rows.append(("  batchgap's hooks, in all", None, sum(hooks.values())))
        for name, value in sorted(hooks.items(), key=lambda kv: -kv[1]):
            label = f"{name} (less the forward)" if name == "Classifier.training_step" else name
            rows.append((f"    {label}", None, value))
        rest_plain = plain * 1e6 - sum(plain_us.get(name, 0.0) for name in SHARED)
        rest_ours = ours * 1e6 - sum(ours_us[name] for name in SHARED) - sum(hooks.values())
        rows.append(
            ("  the rest: loop, zero_grad, lr step (plain: + loss)", rest_plain, rest_ours)
        )
        print(f"{'':50s} {'plain':>8s} {'batchgap':>9s}")
        for label, reference, value in rows:
            shown = f"{reference:8.0f}" if reference is not None else f"{'-':>8s}"
            print(f"{label:50s} {shown} {value:9.0f}")


if __name__ == "__main__":
    main()
