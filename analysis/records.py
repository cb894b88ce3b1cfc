"""Find run directories and read their records; every unusable run gets a one-line reason."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

log = logging.getLogger(__name__)

SUMMARY = "summary.json"
# The experiment name of the classifier that batchgap trains to score a GAN's samples.
METRIC_CLASSIFIER = "metric_classifier"
CONFIG = "config.yaml"
WEIGHTS = "weights.csv"

# Where a run without config.yaml keeps the fields the analysis groups by: config key -> summary
# field, so config-less runs group with the same names as the others.
CONFIG_FROM_SUMMARY = {
    "seed": "seed",
    "experiment_name": "experiment_name",
    "data.name": "dataset",
    "data.global_batch_size": "global_batch_size",
    "model.name": "model",
    "model.norm": "norm",
    "model.ghost_batch_size": "ghost_batch_size",
    "optim.lr": "base_lr",
    "scaling.rule": "scaling_rule",
    "scaling.reference_batch_size": "reference_batch_size",
    "regime.name": "regime",
}

# Keys that say how or where a run ran, not what it computed (batchgap's resume check reads
# them alike): two runs equal in every other key, seed included, are one run made twice.
_HOW_IT_RAN = (
    "num_threads",
    "resume",
    "checkpoint",
    "output_root",
    "logger",
    "perf",
    "hydra",
    "paths",
    "trainer.enable_progress_bar",
    "trainer.profiler",
    "trainer.process_group_timeout_s",
)

# The analysis reads `update` and the weight_distance* columns only; per-layer columns stay on
# disk, which keeps 1,000 runs fast.
DISTANCE_PREFIX = "weight_distance"

try:
    _YAML_LOADER = yaml.CSafeLoader
except AttributeError:  # PyYAML built without libyaml: slower, same result
    _YAML_LOADER = yaml.SafeLoader


class NoRunsError(ValueError):
    """No directory given holds a run (a directory with a summary.json)."""


class BadRecord(ValueError):
    """A run's records cannot be used; the message is the one-line reason."""


@dataclass(frozen=True)
class Run:
    """One usable run: its summary, flattened config and weight-distance curve(s)."""

    path: Path
    summary: dict
    config: dict
    weights: pd.DataFrame
    has_config: bool = True

    @property
    def batch_size(self) -> int:
        """The global batch size, from the summary or, failing that, the config."""
        return int(_batch_size(self.summary, self.config))

    @property
    def networks(self) -> list[str]:
        """Names of the fitted distance curves: "" for the whole model, else the column suffix."""
        return [network_of(c) for c in self.weights.columns if c.startswith(DISTANCE_PREFIX)]


@dataclass(frozen=True)
class Excluded:
    """A run left out of every fit and table, with the one-line reason."""

    path: Path
    reason: str


@dataclass
class Records:
    """What was read: the usable runs, the excluded ones with reasons, and one-line warnings."""

    sweep_dirs: list[Path]
    runs: list[Run] = field(default_factory=list)
    excluded: list[Excluded] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def network_of(column: str) -> str:
    """The network a `weight_distance[/name]` column measures: "" for the whole model."""
    return column[len(DISTANCE_PREFIX) :].lstrip("/")


def distance_column(network: str) -> str:
    """The weights.csv column of a network's distance (inverse of network_of)."""
    return f"{DISTANCE_PREFIX}/{network}" if network else DISTANCE_PREFIX


def find_run_dirs(root: Path) -> list[Path]:
    """Every directory under root (root included) that holds a summary.json, sorted."""
    found = [root] if (root / SUMMARY).is_file() else []
    found += [p.parent for p in root.rglob(SUMMARY) if p.parent != root]
    return sorted(set(found), key=_natural_key)


def load_records(sweep_dirs: Sequence[str | Path]) -> Records:
    """Read every run under the given directories; raise NoRunsError when none holds a run."""
    dirs = [Path(d) for d in sweep_dirs]
    records = Records(sweep_dirs=dirs)

    run_dirs: list[Path] = []
    empty: list[Path] = []
    for d in dirs:
        if not d.is_dir():
            raise NoRunsError(f"{d} is not a directory")
        found = find_run_dirs(d)
        run_dirs += found
        if not found:
            empty.append(d)
    if not run_dirs:
        names = ", ".join(str(d) for d in dirs)
        raise NoRunsError(f"no runs under {names}: no directory below holds a {SUMMARY}")
    for d in empty:
        records.notes.append(f"{d}: no runs found (no {SUMMARY} below it)")
        log.warning(records.notes[-1])

    for run_dir in dict.fromkeys(run_dirs):
        try:
            records.runs.append(read_run(run_dir))
        except BadRecord as err:
            records.excluded.append(Excluded(run_dir, str(err)))
            log.warning("excluded %s: %s", run_dir, err)

    _exclude_repeats(records)
    records.notes += _schema_notes(records.runs)
    log.info(
        "read %d runs under %d dirs: %d usable, %d excluded",
        len(run_dirs),
        len(dirs),
        len(records.runs),
        len(records.excluded),
    )
    return records


def read_run(run_dir: Path) -> Run:
    """Read one run directory; raise BadRecord with a one-line reason if it cannot be used."""
    summary = _read_summary(run_dir / SUMMARY)
    status = summary.get("status")
    if status != "completed":
        error = _first_line(summary.get("error"))
        raise BadRecord(f"status {status!r}" + (f": {error}" if error else ""))

    if summary.get("experiment_name") == METRIC_CLASSIFIER:
        raise BadRecord("a GAN study's metric classifier (it scores samples), not a study run")

    config, has_config = _read_config(run_dir, summary)
    if _batch_size(summary, config) is None:
        raise BadRecord(f"no global_batch_size in {SUMMARY} or {CONFIG}")

    weights = _read_weights(run_dir / WEIGHTS, summary)
    return Run(run_dir, summary, config, weights, has_config)


def flatten(tree: dict, prefix: str = "") -> dict:
    """Nested mappings as one level with dotted keys; lists become hashable tuples."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = _hashable(value)
    return flat


def _read_summary(path: Path) -> dict:
    try:
        summary = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise BadRecord(f"{SUMMARY} unreadable: {err}") from err
    except json.JSONDecodeError as err:
        where = f"line {err.lineno} column {err.colno}"
        raise BadRecord(f"{SUMMARY} is not JSON ({err.msg.removesuffix(' at')}: {where})") from err
    if not isinstance(summary, dict):
        raise BadRecord(f"{SUMMARY} is not a JSON object")
    return summary


def _read_config(run_dir: Path, summary: dict) -> tuple[dict, bool]:
    # Hydra also keeps the resolved config in .hydra/; older runs may only have that copy.
    for path in (run_dir / CONFIG, run_dir / ".hydra" / CONFIG):
        if path.is_file():
            break
    else:
        return _config_from_summary(summary), False

    try:
        tree = yaml.load(path.read_text(), Loader=_YAML_LOADER)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise BadRecord(f"{CONFIG} is not valid YAML ({_first_line(str(err))})") from err
    if not isinstance(tree, dict):
        raise BadRecord(f"{CONFIG} is not a mapping")

    config = flatten(tree)
    for key, value in _config_from_summary(summary).items():
        config.setdefault(key, value)
    return config, True


def _config_from_summary(summary: dict) -> dict:
    return {
        key: _hashable(summary[name])
        for key, name in CONFIG_FROM_SUMMARY.items()
        if name in summary
    }


def _read_weights(path: Path, summary: dict) -> pd.DataFrame:
    try:
        raw = path.read_bytes()
    except FileNotFoundError as err:
        raise BadRecord(f"no {WEIGHTS}") from err
    except OSError as err:
        raise BadRecord(f"{WEIGHTS} unreadable: {err}") from err
    if not raw.strip():
        raise BadRecord(f"{WEIGHTS} is empty")

    # A writer always ends its rows with a newline; a missing one means the file was cut short.
    if not raw.endswith(b"\n"):
        raise BadRecord(f"{WEIGHTS} is truncated (last line incomplete)")

    header = next(csv.reader([raw[: raw.find(b"\n")].decode("utf-8", "replace")]), [])
    distances = [c for c in header if c.startswith(DISTANCE_PREFIX)]
    if "update" not in header or not distances:
        raise BadRecord(f"{WEIGHTS} lacks the update or {DISTANCE_PREFIX} columns")

    try:
        frame = pd.read_csv(io.BytesIO(raw), usecols=["update", *distances])
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise BadRecord(f"{WEIGHTS} cannot be parsed ({_first_line(str(err))})") from err
    if frame.empty:
        raise BadRecord(f"{WEIGHTS} has a header but no rows")
    try:
        values = frame.to_numpy(dtype=float)
    except (TypeError, ValueError) as err:
        raise BadRecord(f"{WEIGHTS} holds non-numeric values") from err
    if not np.isfinite(values).all():
        raise BadRecord(f"{WEIGHTS} has empty or non-finite values in update or distance columns")

    updates = values[:, list(frame.columns).index("update")]
    # Limitation: a file cut exactly at a line end is caught only when the summary has `updates`.
    last = int(updates.max())
    expected = summary.get("updates")
    if isinstance(expected, int | float) and not math.isnan(expected) and last < expected:
        raise BadRecord(f"{WEIGHTS} is truncated: ends at update {last} of {int(expected)}")

    # Log-spaced rows and epoch ends can fall on the same update; keep one row per update.
    if not (np.diff(updates) > 0).all():
        frame = frame.drop_duplicates("update", keep="last").sort_values("update", kind="stable")
        frame = frame.reset_index(drop=True)
    return frame


def _batch_size(summary: dict, config: dict) -> int | None:
    value = summary.get("global_batch_size")
    if value is None:
        value = config.get("data.global_batch_size")
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def how_it_ran(key: str) -> bool:
    """Whether a config key says how or where a run ran, never what it computed."""
    if key.rsplit(".", 1)[-1].endswith(("dir", "path", "root", "cache")):
        return True
    return any(key == k or key.startswith(f"{k}.") for k in _HOW_IT_RAN)


def _exclude_repeats(records: Records) -> None:
    """Keep the first of runs with the same config and seed: a repeat is not another sample."""
    first: dict[tuple, Path] = {}
    kept = []
    for run in records.runs:
        identity = tuple(sorted((k, v) for k, v in run.config.items() if not how_it_ran(k)))
        # A run known from summary.json alone may differ in settings the summary omits.
        if run.has_config and identity in first:
            reason = f"a repeat of {first[identity]} (the same config and seed)"
            records.excluded.append(Excluded(run.path, reason))
            log.warning("excluded %s: %s", run.path, reason)
        else:
            if run.has_config:
                first[identity] = run.path
            kept.append(run)
    records.runs = kept


def _schema_notes(runs: Iterable[Run]) -> list[str]:
    runs = list(runs)
    notes = []
    missing = [r for r in runs if not r.has_config]
    if missing:
        notes.append(
            f"{len(missing)} run(s) have no {CONFIG}; grouped by {SUMMARY} fields"
            f" (e.g. {missing[0].path})"
        )
        log.warning(notes[-1])

    limited = [r for r in runs if r.config.get("trainer.limit_train_batches") not in (None, 1.0)]
    if limited:
        notes.append(
            f"{len(limited)} run(s) cut their epochs short with trainer.limit_train_batches"
            f" (debug runs, e.g. {limited[0].path}): their fits and gaps say little"
        )
        log.warning(notes[-1])

    key_sets = [frozenset(r.config) for r in runs]
    if len(set(key_sets)) > 1:
        common = frozenset.intersection(*key_sets)
        partial = sorted(frozenset.union(*key_sets) - common)
        shown = ", ".join(partial[:5]) + (", ..." if len(partial) > 5 else "")
        how = (
            "grouped by the keys all runs share, since some runs have no config.yaml"
            if missing
            else "runs that differ in them are grouped apart (an absent key reads as none)"
        )
        notes.append(
            f"runs have mismatched config keys: {len(partial)} key(s) only in some runs"
            f" ({shown}); {how}"
        )
        log.warning(notes[-1])
    return notes


def _hashable(value):
    if isinstance(value, list | tuple):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def _first_line(text) -> str:
    lines = str(text or "").strip().splitlines()
    line = lines[0] if lines else ""
    return line if len(line) <= 120 else line[:117] + "..."


def _natural_key(path: Path) -> list:
    # Hydra numbers jobs 0, 1, ..., 10: sort 2 before 10.
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in path.parts]
