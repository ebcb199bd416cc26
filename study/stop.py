"""Stopping Flower's simulation engine (Ray) when a run is interrupted."""

from __future__ import annotations

import threading


def stop_engine(timeout: float = 15.0) -> None:
    """Shut Ray down if it runs, waiting at most `timeout` seconds (an interrupted engine can hang on shutdown)."""
    import ray

    if not ray.is_initialized():
        return
    stopper = threading.Thread(target=ray.shutdown, daemon=True)
    stopper.start()
    stopper.join(timeout)
