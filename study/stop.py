"""Stopping Flower's simulation engine (Ray): cleanly after a run, at once when a run is interrupted."""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path


def stop_engine(timeout: float = 15.0) -> None:
    """Shut Ray down if it runs, waiting at most `timeout` seconds (an interrupted engine can hang on shutdown)."""
    import ray

    if not ray.is_initialized():
        return
    stopper = threading.Thread(target=ray.shutdown, daemon=True)
    stopper.start()
    stopper.join(timeout)


def kill_started_processes() -> None:
    """End every process this one started, directly or through another (Ray's GCS, raylet, workers and agents), at
    once. Ray's own shutdown cannot be used while Flower's threads still talk to it: it races them and can end this
    process before it has said why. Without /proc (not Linux), Ray is shut down instead."""
    if not Path("/proc").is_dir():
        if "ray" in sys.modules:
            stop_engine()
        return
    for pid in _descendants(os.getpid()):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue  # already gone


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, waiting = [], [root]
    while waiting:
        for child in children.get(waiting.pop(), []):
            found.append(child)
            waiting.append(child)
    return found
