"""Checks of command-line overrides that Hydra would only report in several lines, or late."""

from __future__ import annotations

import copy
import difflib
import itertools
import os
import re
import tempfile
from importlib import resources
from pathlib import Path

from batchgap.errors import ConfigError


def config_groups() -> dict[str, list[str]]:
    """Every config group shipped in `batchgap.conf` and its options."""
    root = resources.files("batchgap.conf")
    groups = {}
    for entry in root.iterdir():
        if entry.is_dir() and not entry.name.startswith(("_", ".")):
            options = sorted(f.name[:-5] for f in entry.iterdir() if f.name.endswith(".yaml"))
            groups[entry.name] = options
    return groups


def _writable_target(path: Path) -> bool:
    """Whether `path` exists and is writable, or could be created under a writable ancestor."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            return False
        probe = probe.parent
    if not probe.is_dir():
        return False
    # A real probe: root passes os.access even on read-only or pseudo file systems like /proc.
    try:
        tempfile.TemporaryDirectory(dir=probe).cleanup()
    except OSError:
        return False
    return True


OUTPUT_KEYS = ("output_root", "hydra.run.dir", "hydra.sweep.dir")


def check_overrides(argv: list[str]) -> None:
    """Raise ConfigError naming the first unknown group option or unwritable output path."""
    groups = config_groups()
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, _, value = arg.partition("=")
        key = key.lstrip("+~")
        if key in groups and "(" not in value:
            for option in value.split(","):
                if option and option != "null" and option not in groups[key]:
                    raise ConfigError(
                        f"{key}={option!r} is unknown; valid: {', '.join(groups[key])}"
                    )
        is_path = key in OUTPUT_KEYS and "$" not in value
        if is_path and not _writable_target(Path(value).expanduser()):
            raise ConfigError(f"{key}={value} is not a writable directory")
    # The default output root comes from the environment unless the command line moves it.
    moved = any(arg.lstrip("+~").partition("=")[0] in OUTPUT_KEYS for arg in argv)
    env_root = os.environ.get("BATCHGAP_OUTPUT")
    if env_root and not moved and not _writable_target(Path(env_root).expanduser()):
        raise ConfigError(f"BATCHGAP_OUTPUT={env_root} is not a writable directory")


def uses_own_configs(argv: list[str]) -> bool:
    """Whether the command line adds a config directory of the user's to batchgap's."""
    return any(
        arg in ("--config-dir", "-cd")
        or arg.startswith("--config-dir=")
        or arg.lstrip("+~").startswith("hydra.searchpath")
        for arg in argv
    )


def _overrides(argv: list[str]) -> list[str]:
    return [arg for arg in argv if not arg.startswith("-") and "=" in arg]


def sweep_jobs(overrides: list[str], sweeper_params: dict | None = None) -> list[list[str]]:
    """Each job's overrides as Hydra's basic sweeper forms them: the product of swept values.

    `sweeper_params` are the config's `hydra.sweeper.params`; a command-line override of the
    same key replaces its list, and the product runs over keys in first-seen order.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import Glob

    parser = OverridesParser.create()
    arguments = [f"{key}={value}" for key, value in (sweeper_params or {}).items()]
    choices: dict[str, list[str]] = {}
    for arg in [*arguments, *overrides]:
        override = parser.parse_override(arg)
        if override.key_or_group.startswith("hydra"):
            continue
        key = override.get_key_element()
        value = override.value()
        if isinstance(value, Glob):
            # glob(...) picks among a group's options; Hydra needs its config loader for that.
            options = value.filter(config_groups().get(override.key_or_group, []))
            choices[key] = [f"{key}={option}" for option in options]
        elif override.is_sweep_override():
            choices[key] = [f"{key}={value}" for value in override.sweep_string_iterator()]
        else:
            choices[key] = [arg]
    return [list(job) for job in itertools.product(*choices.values())]


class JobComposer:
    """Hydra's config of each sweep job, composed once per set of config-group choices.

    Composing costs about 0.1 s; jobs that differ only in plain values (batch, lr, seed) get
    a copy of their choices' composition with the values set as Hydra sets them
    (OmegaConf.update with merge), so a sweep of hundreds of jobs is checked in seconds.
    Call inside Hydra's initialize_config_module.
    """

    def __init__(self):
        from hydra.core.override_parser.overrides_parser import OverridesParser

        self.parser = OverridesParser.create()
        self.groups = set(config_groups())
        self.bases: dict[tuple[str, ...], object] = {}

    def _is_value(self, override) -> bool:
        prefixed = override.is_add() or override.is_delete() or override.is_force_add()
        key = override.key_or_group
        return not prefixed and key not in self.groups and "/" not in key

    def base(self, job: list[str]):
        """The composition of the job's config-group choices alone, before its plain values."""
        from hydra import compose

        parsed = [(arg, self.parser.parse_override(arg)) for arg in job]
        choices = tuple(arg for arg, o in parsed if not self._is_value(o))
        if choices not in self.bases:
            self.bases[choices] = compose(config_name="config", overrides=list(choices))
        return self.bases[choices]

    def __call__(self, job: list[str]):
        from hydra import compose
        from omegaconf import OmegaConf

        parsed = [(arg, self.parser.parse_override(arg)) for arg in job]
        choices = tuple(arg for arg, o in parsed if not self._is_value(o))
        if choices not in self.bases:
            # The first job of these choices goes through Hydra whole, for Hydra's own errors.
            whole = compose(config_name="config", overrides=job)
            self.bases[choices] = compose(config_name="config", overrides=list(choices))
            return whole
        cfg = copy.deepcopy(self.bases[choices])
        for _, override in parsed:
            if self._is_value(override):
                OmegaConf.update(cfg, override.key_or_group, override.value(), merge=True)
        return cfg


def check_jobs(argv: list[str]) -> None:
    """Compose every job of the command line and check its values, before any job starts.

    A key that is not in the config, an unresolvable interpolation or a value out of range
    fails in one line, naming the job when there are several.
    """
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    from batchgap.config_values import check_values

    overrides = _overrides(argv)
    multirun = "-m" in argv or "--multirun" in argv
    with initialize_config_module(config_module="batchgap.conf", version_base="1.3"):
        composer = JobComposer()
        explained = overrides
        try:
            # Hydra's own settings (launcher, sweeper, run dir) are checked once, with the first
            # job's choices; the jobs below are composed without them.
            hydra_args = [a for a in overrides if a.lstrip("+~").startswith("hydra")]
            jobs = [overrides]
            if multirun:
                explained = [*sweep_jobs(overrides)[0], *hydra_args]
                first = compose(
                    config_name="config", overrides=explained, return_hydra_config=True
                )
                params = first.hydra.sweeper.get("params")
                jobs = sweep_jobs(overrides, OmegaConf.to_container(params) if params else None)
            elif hydra_args:
                compose(config_name="config", overrides=overrides, return_hydra_config=True)
        except (HydraException, OmegaConfBaseException) as err:
            message = unknown_key_message(str(err), explained, composer) or _first_lines(err)
            raise ConfigError(message) from err
        for number, job in enumerate(jobs):
            where = f" (sweep job {number}: {' '.join(job)})" if len(jobs) > 1 else ""
            cfg = None
            try:
                cfg = composer(job)
                OmegaConf.resolve(cfg)
                check_values(cfg)
                check_added_keys(job, composer)
            except (HydraException, OmegaConfBaseException) as err:
                hint = ""
                if cfg is not None and "study." in str(err) and "remedy" in cfg:
                    hint = "; remedy=... needs an experiment that sets study.* (hoffer_digits)"
                message = unknown_key_message(str(err), job, composer) or _first_lines(err)
                raise ConfigError(message + hint + where) from err
            except ConfigError as err:
                raise ConfigError(f"{err}{where}") from err


_COULD_NOT_OVERRIDE = re.compile(r"Could not override '([^']+)'")

# Config groups and settings outside the root defaults, and the choice that brings each in.
BROUGHT_BY = {
    "remedy": "experiment=hoffer_digits",
    "study": "experiment=hoffer_digits",
    "gan_net": "task=gan",
    "gan_objective": "task=gan",
}


def _config_keys(cfg) -> list[str]:
    """Every dotted key of a composed config, nested ones included."""
    from omegaconf import OmegaConf

    def walk(tree: dict, prefix: str) -> list[str]:
        keys = []
        for key, value in tree.items():
            keys.append(f"{prefix}{key}")
            if isinstance(value, dict):
                keys += walk(value, f"{prefix}{key}.")
        return keys

    return walk(OmegaConf.to_container(cfg, resolve=False), "")


def unknown_key_message(error: str, job: list[str], composer: JobComposer) -> str | None:
    """One line for Hydra's refusal of a key or group the config lacks, naming the nearest."""
    from hydra import compose
    from omegaconf import OmegaConf

    from batchgap.config_values import trainer_argument_refusal

    match = _COULD_NOT_OVERRIDE.search(error)
    if match is None:
        return None
    key = match.group(1)
    value = next(
        (a.partition("=")[2] for a in job if a.lstrip("+~").partition("=")[0] == key), "..."
    )
    groups = config_groups()
    root, _, rest = key.partition(".")
    if key in groups and key not in BROUGHT_BY:
        return f"{key}={value}: the {key} group is not in this config; add it with +{key}={value}"
    if root == "trainer" and (refusal := trainer_argument_refusal(rest)):
        return refusal
    others = [a for a in job if a.lstrip("+~").partition("=")[0] != key]
    try:
        # Hydra's own settings are in the config only when it is composed with them.
        hydra = root == "hydra"
        base = compose(config_name="config", overrides=others, return_hydra_config=hydra)
    except Exception:
        return None
    if root in BROUGHT_BY and OmegaConf.select(base, root, default=None) is None:
        brought_by = BROUGHT_BY[root]
        return f"{key}={value} is chosen on top of {brought_by}: use {brought_by} {key}={value}"
    # Private keys (`_target_`) are never what a user meant.
    known = [k for k in _config_keys(base) if not k.rpartition(".")[2].startswith("_")]
    parent = key.rpartition(".")[0]
    siblings = [k.rpartition(".")[2] for k in known if k.rpartition(".")[0] == parent]
    # A misspelt name beside the right one first; then a key that its parent passes on.
    near = _nearest_sibling(key, siblings)
    if near:
        return f"{key}={value}: no such setting; did you mean {near}?"
    if not hydra and _takes_extra_keys(base, key):
        return f"{key}={value} is not in the config; add it with +{key}={value}"
    # The key's own parents are no suggestion: the user named them already.
    candidates = [k for k in [*known, *groups] if not key.startswith(f"{k}.")]
    nearest = difflib.get_close_matches(key, candidates, n=1, cutoff=0.7)
    if nearest:
        return f"{key}={value}: no such setting; did you mean {nearest[0]}?"
    if parent == "hydra.launcher":
        return (
            f"{key}={value}: this launcher has no such setting; the launchers with settings of "
            "their own are hydra/launcher=parallel and hydra/launcher=slurm"
        )
    if not siblings:
        return None
    where = f"the settings of {parent}" if parent else "the top-level settings"
    return f"{key}={value}: no such setting; {where} are {', '.join(siblings)}"


def _nearest_sibling(key: str, siblings: list[str]) -> str | None:
    """The dotted key of the name among `siblings` (under `key`'s parent) closest to `key`'s."""
    parent, _, leaf = key.rpartition(".")
    nearest = difflib.get_close_matches(leaf, siblings, n=1, cutoff=0.75)
    if not nearest:
        return None
    return f"{parent}.{nearest[0]}" if parent else nearest[0]


def _takes_extra_keys(cfg, key: str) -> bool:
    """Whether something reads keys under `key`'s parents that the config does not list:
    Lightning's Trainer (trainer.*) and every object built from a `_target_`."""
    from omegaconf import DictConfig, OmegaConf

    parts = key.split(".")
    if parts[0] == "trainer" and len(parts) > 1:
        return True
    for depth in range(1, len(parts)):
        node = OmegaConf.select(cfg, ".".join(parts[:depth]), default=None)
        if isinstance(node, DictConfig) and "_target_" in node:
            return True
    return False


def _receiver_arguments(cfg, key: str) -> tuple[str, list[str]] | None:
    """The name and keyword arguments of what receives `key` (Lightning's Trainer, or the
    `_target_` of its parent node); None when any name is taken or the receiver is unknown."""
    import inspect

    from hydra.utils import get_object
    from omegaconf import DictConfig, OmegaConf

    parent = key.rpartition(".")[0]
    if parent == "trainer":
        import lightning

        receiver, name = lightning.Trainer, "Lightning's Trainer"
    else:
        node = OmegaConf.select(cfg, parent, default=None) if parent else None
        if not (isinstance(node, DictConfig) and "_target_" in node):
            return None
        try:
            receiver, name = get_object(str(node._target_)), str(node._target_)
        except Exception:
            return None
    try:
        parameters = inspect.signature(receiver).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return name, [p.name for p in parameters if p.kind is not inspect.Parameter.VAR_POSITIONAL]


def check_added_keys(job: list[str], composer: JobComposer) -> None:
    """Refuse a `+key=value` that adds a setting nothing reads, which would pass silently.

    Extra keys reach Lightning's Trainer (trainer.*) and objects built from a `_target_`
    (optim.optimizer, model); batchgap's other settings are read by name.
    """
    from omegaconf import OmegaConf

    def added_setting(arg: str) -> bool:
        key = arg.lstrip("+").partition("=")[0]
        return arg.startswith("+") and key not in composer.groups and "/" not in key

    added = [arg for arg in job if added_setting(arg)]
    if not added:
        return
    # The config before these additions, to tell a new key from a `++` override of one.
    base = composer.base([arg for arg in job if arg not in added])
    for arg in added:
        key = arg.lstrip("+").partition("=")[0]
        if key.split(".")[0] == "hydra":
            continue
        if OmegaConf.select(base, key, default=_ABSENT) is not _ABSENT:
            continue  # ++ of an existing key: an ordinary override
        parent, _, leaf = key.rpartition(".")
        if _takes_extra_keys(base, key):
            receiver = _receiver_arguments(base, key)
            if receiver is None or leaf in receiver[1]:
                continue
            near = _nearest_sibling(key, receiver[1])
            hint = f"; did you mean {near}?" if near else ""
            raise ConfigError(f"{arg}: {receiver[0]} takes no argument {leaf!r}{hint}")
        siblings = [
            k.rpartition(".")[2] for k in _config_keys(base) if k.rpartition(".")[0] == parent
        ]
        near = _nearest_sibling(key, siblings)
        hint = f"; did you mean {near}?" if near else ""
        raise ConfigError(
            f"{arg} adds a setting batchgap never reads (only trainer.* and objects with a "
            f"_target_ take extra keys){hint}"
        )


_ABSENT = object()


def _first_lines(err: Exception) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return " ".join(lines[:2])
