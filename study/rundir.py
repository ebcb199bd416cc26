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
PREDICTIONS_CSV = "predictions.csv"
METADATA_JSON = "results.json"
REPORT_HTML = "index.html"


def run_id(config: dict, now: datetime | None = None) -> str:
    """A sortable, unique-enough id: UTC time plus a digest of the config."""
    now = now or datetime.now(timezone.utc)
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]
    return f"{now:%Y%m%d-%H%M%S}-{digest}"


class OutputError(OSError):
    """The reports folder cannot be used; the message names --output and the fix."""


def prepare_output(reports_dir: Path) -> None:
    """Fail early (before training) when the reports folder cannot be written: really create something there."""
    if reports_dir.exists() and not reports_dir.is_dir():
        raise OutputError(f"--output: {reports_dir} is a file, not a folder; choose another --output")
    try:
        reports_dir.mkdir(parents=True, exist_ok=True)
        os.rmdir(tempfile.mkdtemp(prefix=".write-check.", dir=reports_dir))
    except OSError as error:
        raise OutputError(
            f"--output: cannot write run folders in {reports_dir} ({error.strerror}); choose a writable --output"
        ) from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_readable(path: Path) -> None:
    """Temporary files and folders are private (0600/0700); a finished run gets the usual permissions."""
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~_umask())


def write_text_atomically(path: Path, text: str) -> Path:
    """Replace `path` with `text` in one step: readers see the old file or the new one, never half of it."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".partial")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(text)
    make_readable(Path(temporary))
    os.replace(temporary, path)
    return path


def write_atomically(reports_dir: Path, name: str, fill: Callable[[Path], None]) -> Path:
    """Call `fill(folder)` on a fresh temporary folder inside reports_dir, then move it to reports_dir/name."""
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=reports_dir))
    try:
        fill(staging)
        make_readable(staging)
        final = _rename_to_free_name(staging, reports_dir, name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def _rename_to_free_name(staging: Path, reports_dir: Path, name: str) -> Path:
    """Two runs of one config finishing in the same second get <id> and <id>-2: neither result is lost."""
    for attempt in range(1, 100):
        final = reports_dir / (name if attempt == 1 else f"{name}-{attempt}")
        try:
            os.rename(staging, final)
            return final
        except OSError as error:
            if not final.exists():
                raise error
    raise FileExistsError(f"no free run folder name for {name} in {reports_dir}")
