"""The classifier whose penultimate features and class probabilities score generated images.

It is a batchgap classifier run on the same dataset: given as a checkpoint, or trained once on
demand by the real CLI and cached, so every GAN run on that dataset is scored by the same net.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml
from omegaconf import OmegaConf
from torch import nn

from batchgap.errors import ConfigError
from batchgap.models import build_model

log = logging.getLogger(__name__)

# The classifier's own run must not take itself for a rank of this run's process group (nor,
# under Slurm, for a task of this allocation).
_DIST_ENV = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_", "NODE_RANK", "GROUP_RANK", "SLURM_")


class FeatureClassifier(nn.Module):
    """A classifier net that also returns the input of its last linear layer (its features)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net.eval()
        linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ConfigError("the metric classifier has no linear head to take features from")
        self._features: torch.Tensor | None = None
        linears[-1].register_forward_hook(self._keep_input)

    def _keep_input(self, module, inputs, output) -> None:
        self._features = inputs[0]

    @torch.no_grad()
    def forward(self, x: torch.Tensor, batch_size: int = 1024):
        """(features (N, F), class probabilities (N, K)) in eval mode, in batches."""
        features, probabilities = [], []
        for chunk in x.split(batch_size):
            logits = self.net(chunk)
            features.append(self._features.flatten(1).float())
            probabilities.append(logits.float().softmax(1))
        return torch.cat(features), torch.cat(probabilities)


def load_metric_classifier(
    checkpoint: str | Path, dataset: str, input_shape: tuple[int, ...], num_classes: int
) -> tuple[FeatureClassifier, dict]:
    """The classifier a batchgap run saved (`checkpoints/*.ckpt`), checked against `dataset`.

    Returns the net and a description: checkpoint, model name, dataset, its test error.
    """
    checkpoint = Path(checkpoint).expanduser().resolve()
    run_dir = checkpoint.parent.parent
    config_path = run_dir / "config.yaml"
    if not checkpoint.is_file() or not config_path.is_file():
        raise ConfigError(
            f"task.metrics.classifier_checkpoint={checkpoint} is not a batchgap classifier "
            f"checkpoint (needs the file and {config_path})"
        )
    run_cfg = OmegaConf.create(yaml.safe_load(config_path.read_text()))
    # Limitation: only the dataset name is checked; a classifier trained on another split of it
    # standardizes with slightly different statistics.
    trained_on = run_cfg.data.name
    if trained_on != dataset:
        raise ConfigError(
            f"task.metrics.classifier_checkpoint={checkpoint} was trained on {trained_on!r}, "
            f"not on {dataset!r}; use a classifier of {dataset!r} or null to train one"
        )
    net = build_model(run_cfg.model, input_shape, num_classes)
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    net.load_state_dict({k[len("net.") :]: v for k, v in state.items() if k.startswith("net.")})
    summary_path = run_dir / "summary.json"
    test_err = None
    if summary_path.is_file():
        test_err = json.loads(summary_path.read_text()).get("test_err")
    info = {
        "checkpoint": str(checkpoint),
        "model": run_cfg.model.get("name"),
        "dataset": trained_on,
        "test_err": test_err,
    }
    return FeatureClassifier(net), info


def cached_classifier_checkpoint(data_cfg, overrides: list[str], cache_root: Path, threads: int):
    """The checkpoint of a classifier trained by `batchgap-train` on this data, trained once.

    The cache key is the dataset, its split and the overrides; a file lock makes concurrent
    runs (sweep jobs, DDP processes) wait for one training instead of racing.
    """
    split = [
        f"data.split_seed={data_cfg.split_seed}",
        f"data.val_fraction={data_cfg.val_fraction}",
    ]
    if data_cfg.get("test_fraction") is not None:
        split.append(f"data.test_fraction={data_cfg.test_fraction}")
    if data_cfg.get("data_dir"):
        split.append(f"data.data_dir={data_cfg.data_dir}")
    args = [f"data={data_cfg.name}", *split, *overrides]
    key = hashlib.sha1(" ".join(args).encode()).hexdigest()[:10]
    run_dir = Path(cache_root).expanduser() / f"{data_cfg.name}-{key}"
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    # Limitation: flock serializes processes of one machine; nodes sharing NFS may race.
    with open(run_dir.parent / f".{run_dir.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _completed(run_dir) and checkpoint.is_file():
            return checkpoint
        log.info("training the metric classifier: batchgap-train %s", " ".join(args))
        command = [
            sys.executable,
            "-m",
            "batchgap.train",
            "task=classify",
            *args,
            # The name batchgap-analyze knows it by: it scores GAN samples, it is not a study run.
            "experiment_name=metric_classifier",
            f"num_threads={threads}",
            "trainer.enable_progress_bar=false",
            "logger=csv",
            f"hydra.run.dir={run_dir}",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith(_DIST_ENV)}
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode != 0 or not _completed(run_dir):
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"training the metric classifier in {run_dir} failed: {tail}")
    return checkpoint


def _completed(run_dir: Path) -> bool:
    summary = run_dir / "summary.json"
    return summary.is_file() and json.loads(summary.read_text()).get("status") == "completed"
