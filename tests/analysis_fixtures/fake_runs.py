"""Write run directories (config.yaml, summary.json, weights.csv) with known distance laws."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

METRICS = ("train_err", "val_err", "test_err", "train_loss", "val_loss", "test_loss")


def log_spaced_updates(total: int, updates_per_epoch: int, per_decade: int = 20) -> np.ndarray:
    """Every update up to 10, then about per_decade per decade, plus every epoch end."""
    early = np.arange(1, min(10, total) + 1)
    decades = max(math.log10(total) - 1, 0)
    later = np.round(np.logspace(1, math.log10(total), int(decades * per_decade) + 1))
    ends = np.arange(updates_per_epoch, total + 1, updates_per_epoch)
    return np.unique(np.concatenate([early, later, ends]).astype(int))


def write_run(
    path: Path,
    *,
    batch_size: int = 16,
    seed: int = 0,
    law: str = "log",
    a: float = 0.5,
    b: float = 1.0,
    c: float = 0.3,
    p: float = 0.5,
    noise: float = 0.01,
    updates_per_epoch: int | None = None,
    epochs: int = 10,
    milestone_epochs: tuple[int, ...] = (),
    metrics: dict | None = None,
    status: str = "completed",
    config: dict | None = None,
    networks: tuple[str, ...] = ("",),
    write_config: bool = True,
) -> Path:
    """A complete run directory whose whole-model distance follows the given law plus noise."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    upe = updates_per_epoch or max(1, 1024 // batch_size)
    updates = upe * epochs
    milestones = [upe * e for e in milestone_epochs]

    t = log_spaced_updates(updates, upe)
    rng = np.random.default_rng(seed + 1000 * batch_size)
    clean = a + b * np.log(t) if law == "log" else c * t**p
    weights = pd.DataFrame(
        {
            "update": t,
            "epoch": (t - 1) // upe,
            "epoch_end": (t % upe == 0).astype(int),
            "lr": 0.1,
            "train_loss": 1.0 / np.sqrt(t),
        }
    )
    for network in networks:
        suffix = f"/{network}" if network else ""
        weights[f"weight_distance{suffix}"] = clean + rng.normal(0.0, noise, t.size)
        weights[f"weight_norm{suffix}"] = 10.0 + clean
    weights["layer_distance/fc1.weight"] = 0.5 * clean
    weights["layer_norm/fc1.weight"] = 5.0
    weights.to_csv(path / "weights.csv", index=False)

    values = {"train_err": 0.01, "val_err": 0.05, "test_err": 0.05}
    values.update({"train_loss": 0.05, "val_loss": 0.2, "test_loss": 0.2})
    values.update(metrics or {})
    summary = {
        "status": status,
        "seed": seed,
        "experiment_name": (config or {}).get("experiment_name", "fake"),
        "dataset": "digits",
        "model": "mlp",
        "global_batch_size": batch_size,
        "per_device_batch_size": batch_size,
        "world_size": 1,
        "accumulate_grad_batches": 1,
        "scaling_rule": "none",
        "reference_batch_size": 16,
        "base_lr": 0.1,
        "lr": 0.1,
        "ghost_batch_size": None,
        "regime": "standard",
        "epochs": epochs,
        "updates": updates,
        "updates_per_epoch": upe,
        "lr_milestone_updates": milestones,
        **values,
        "gap": None
        if values["test_err"] is None or values["train_err"] is None
        else values["test_err"] - values["train_err"],
        "final_weight_distance": float(weights["weight_distance"].iloc[-1])
        if "" in networks
        else None,
        "wall_time_s": 1.0,
        "version": "0.1.0",
        "git_revision": None,
        "error": None if status == "completed" else "loss is nan",
    }
    (path / "summary.json").write_text(json.dumps(summary, indent=2))

    if write_config:
        tree = {
            "seed": seed,
            "experiment_name": "fake",
            "paths": {"output_dir": str(path), "data_dir": "/tmp/data"},
            "data": {"name": "digits", "global_batch_size": batch_size},
            "model": {"name": "mlp", "norm": "batch", "ghost_batch_size": None},
            "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9},
            "scaling": {"rule": "none", "reference_batch_size": 16},
            "regime": {"name": "standard", "milestones": list(milestone_epochs)},
            "trainer": {"max_epochs": epochs, "accelerator": "cpu"},
            "hydra": {"run": {"dir": str(path)}},
        }
        for key, value in (config or {}).items():
            node = tree
            *parents, leaf = key.split(".")
            for parent in parents:
                node = node.setdefault(parent, {})
            node[leaf] = value
        (path / "config.yaml").write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


# The Hoffer et al. (2017) design at toy scale: small batch, large batch, and the large batch
# with each remedy added in turn. Slopes b and test errors are made up so the gaps are known.
HOFFER_CONDITIONS = [
    ("sb", 16, {}, 1.0, 0.050),
    ("lb", 256, {}, 0.6, 0.090),
    ("lb_lr", 256, {"scaling.rule": "sqrt"}, 0.9, 0.070),
    ("lb_gbn", 256, {"scaling.rule": "sqrt", "model.ghost_batch_size": 16}, 0.95, 0.060),
    (
        "lb_ra",
        256,
        {"scaling.rule": "sqrt", "model.ghost_batch_size": 16, "regime.name": "adapted"},
        0.95,
        0.052,
    ),
]


def hoffer_study(root: Path, seeds: int = 3, epochs: int = 6) -> Path:
    """A Hydra-style multirun SWEEP_DIR/<job>/ with the five Hoffer conditions x seeds."""
    job = 0
    for name, batch, overrides, slope, test_err in HOFFER_CONDITIONS:
        regime_epochs = epochs * (batch // 16) if "regime.name" in overrides else epochs
        for seed in range(seeds):
            write_run(
                root / str(job),
                batch_size=batch,
                seed=seed,
                b=slope,
                epochs=regime_epochs,
                milestone_epochs=(regime_epochs // 2,),
                metrics={"test_err": test_err + 0.002 * (seed - 1)},
                config={"experiment_name": name, **overrides},
            )
            job += 1
    return root
