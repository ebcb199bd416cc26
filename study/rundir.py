"""Run folders: written in a hidden temporary folder, then renamed, so a run either exists whole or not at all."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

CACHE_FOLDER = ".cache"
CONFIG_TOML = "config.toml"
RESULTS_CSV = "results.csv"
SPLIT_CSV = "split.csv"
METADATA_JSON = "results.json"
REPORT_HTML = "index.html"


def run_id(config: dict, now: datetime | None = None) -> str:
    """A sortable, unique-enough id: UTC time plus a digest of the config."""
    now = now or datetime.now(timezone.utc)
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]
    return f"{now:%Y%m%d-%H%M%S}-{digest}"


def prepare_output(reports_dir: Path) -> None:
    """Fail early (before training) when the reports folder cannot be written."""
    if reports_dir.exists() and not reports_dir.is_dir():
        raise NotADirectoryError(f"--output: {reports_dir} is a file, not a folder; choose another --output")
    reports_dir.mkdir(parents=True, exist_ok=True)
    if not os.access(reports_dir, os.W_OK):
        raise PermissionError(f"--output: cannot write to {reports_dir}; choose a writable --output")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_readable(path: Path) -> None:
    """Temporary files and folders are private (0600/0700); a finished run gets the usual permissions."""
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~_umask())


def write_atomically(reports_dir: Path, name: str, fill: Callable[[Path], None]) -> Path:
    """Call `fill(folder)` on a fresh temporary folder inside reports_dir, then move it to reports_dir/name."""
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=reports_dir))
    try:
        fill(staging)
        make_readable(staging)
        final = reports_dir / name
        os.rename(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final
