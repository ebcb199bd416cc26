"""Flower's simulation engine (Ray): the settings it starts with, and an early start while the study loads.

Starting Ray takes about 3-4 s, and so does loading torch, Opacus and Flower in the study's own process. The CLI
starts Ray in a background thread first, so both happen at once; Flower's RayBackend then finds Ray running and
uses it (it starts Ray only when none runs), and shuts it down when the simulation ends, as it always does.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

RAY_START_TIMEOUT_SECONDS = 60.0
RAY_STOP_TIMEOUT_SECONDS = 15.0  # an interrupted engine can hang on shutdown


def ray_init_args(ray_address: str | None) -> dict[str, Any]:
    """The options the study gives `ray.init` (through Flower's backend config or the early start): no dashboard,
    no worker logs or logging set-up in the study's process; an existing cluster when `ray_address` is given."""
    return {"include_dashboard": False, "log_to_driver": False, "configure_logging": False,
            **({"address": ray_address} if ray_address else {})}


def quiet_engine_notices() -> None:
    """Ray's start-up notice about GPU variables does not apply (no GPU is used), unless the user set it."""
    os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")


def _flower_runtime_env() -> dict[str, Any]:
    """The runtime environment Flower 1.42's RayBackend.init_ray gives Ray: the driver's import path for the
    workers (and in this process's environment), so that the sites import the same code as the server."""
    pythonpath = os.pathsep.join(sys.path)
    if os.environ.get("PYTHONPATH"):
        pythonpath = f"{pythonpath}{os.pathsep}{os.environ['PYTHONPATH']}"
    os.environ["PYTHONPATH"] = pythonpath
    return {"env_vars": {"PYTHONPATH": pythonpath}}


class EarlyEngine:
    """Ray, started now in a background thread, for the study's Flower simulation to pick up.

    The thread lives until `release()`: Ray's local processes end with the thread that started them. Call
    `release()` when the run ends, however it ends: it shuts Ray down if the simulation did not (nothing was left
    to train, or the run stopped early) and waits until it is down.
    """

    def __init__(self, ray_address: str | None) -> None:
        self._ray_address = ray_address
        self._started = threading.Event()
        self._released = threading.Event()
        self._thread = threading.Thread(target=self._keep, name="early-engine", daemon=True)
        self._thread.start()

    def _keep(self) -> None:
        import ray

        quiet_engine_notices()
        # Ray warns that it cannot set its SIGTERM handler outside the main thread; the study handles signals itself.
        worker_logger = logging.getLogger("ray._private.worker")
        previous_level = worker_logger.level
        worker_logger.setLevel(logging.ERROR)
        try:
            ray.init(runtime_env=_flower_runtime_env(), **ray_init_args(self._ray_address))
        except Exception:  # Flower then starts Ray itself and reports the problem there
            return
        finally:
            worker_logger.setLevel(previous_level)
            self._started.set()
        # Until released, even after Flower has shut Ray down: a thread that ended early would take Ray's processes
        # with it while they are still stopping (and orphan the agents they started).
        self._released.wait()
        if ray.is_initialized():
            ray.shutdown()

    def release(self) -> None:
        """Shut Ray down unless the simulation already did, and wait (a bounded time) until it is down."""
        self._started.wait(RAY_START_TIMEOUT_SECONDS)
        self._released.set()
        self._thread.join(RAY_STOP_TIMEOUT_SECONDS)

