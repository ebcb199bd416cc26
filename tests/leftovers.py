"""Finding the processes a test started that are still alive after it stopped them."""

from __future__ import annotations

import os
import time
from pathlib import Path


def processes_left_in(folder: Path, grace_seconds: float = 20.0) -> list[str]:
    """Live processes (zombies aside) whose working folder is `folder` or below, after waiting up to
    `grace_seconds` for stopping ones to end. Every process a test starts there (the CLI, Ray's GCS, raylet,
    workers and agents, Flower's SuperLink and SuperNodes) inherits that folder, so other programs on the machine,
    another Ray among them, never count."""
    deadline = time.monotonic() + grace_seconds
    while True:
        alive = _alive_in(folder)
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.5)


def _alive_in(folder: Path) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if not Path(os.readlink(entry / "cwd")).is_relative_to(folder):
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue
        if state != "Z":
            found.append(f"{entry.name}: {command[:120]}")
    return found
