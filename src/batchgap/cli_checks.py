"""Checks of command-line overrides that Hydra would only report in several lines, or late."""

from __future__ import annotations

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
        is_path = key in ("output_root", "hydra.run.dir", "hydra.sweep.dir") and "$" not in value
        if is_path and not _writable_target(Path(value).expanduser()):
            raise ConfigError(f"{key}={value} is not a writable directory")


def first_values(argv: list[str]) -> list[str]:
    """One job of the sweep: the first value of each swept list, Hydra's own keys left out."""
    overrides = []
    for arg in argv:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, _, value = arg.partition("=")
        if key.lstrip("+~").startswith("hydra") or "(" in value or "[" in value:
            continue
        overrides.append(f"{key}={value.split(',')[0]}")
    return overrides


def check_composes(argv: list[str]) -> None:
    """Compose the config of the sweep's first job; a key that is not in it fails in one line."""
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_module(config_module="batchgap.conf", version_base="1.3"):
            compose(config_name="config", overrides=first_values(argv))
    except (HydraException, OmegaConfBaseException) as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        raise ConfigError(" ".join(lines[:2])) from err
