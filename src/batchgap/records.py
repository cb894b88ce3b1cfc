"""The run record: `summary.json` and the resolved config, written so a crash loses nothing."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path


def package_version() -> str:
    try:
        return metadata.version("batchgap")
    except metadata.PackageNotFoundError:
        return "unknown"


def git_revision() -> str | None:
    """The commit of the source tree batchgap runs from, when it is a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def write_text_atomic(path: Path, text: str) -> None:
    """Write through a temporary file and a rename, so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON atomically (see write_text_atomic)."""
    text = json.dumps(data, indent=2, sort_keys=True, default=_jsonable)
    write_text_atomic(path, text + "\n")


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def record_failure(path: Path, error: str) -> None:
    """Mark the summary at `path` failed with `error`, keeping whatever the run recorded."""
    summary = json.loads(path.read_text()) if path.exists() else {}
    summary.update(status="failed", error=error)
    write_json_atomic(path, summary)


def earlier_wall_time(path: Path) -> float:
    """The wall time, in seconds, that the summary at `path` recorded; 0 when it has none."""
    try:
        return float(json.loads(path.read_text()).get("wall_time_s") or 0.0)
    except (OSError, ValueError, TypeError, AttributeError):
        return 0.0


def read_summary(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "summary.json").read_text())
