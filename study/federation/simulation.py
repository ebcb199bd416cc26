"""Run the study's federated experiments in Flower's simulation engine: one engine start per study."""

from __future__ import annotations

import logging
import signal
import threading
import time
from contextlib import contextmanager
from types import FrameType
from typing import Callable, Iterator

from flwr.server.superlink.fleet.vce import vce_api
from flwr.simulation import run_simulation

from study.federation.client_app import app as client_app
from study.federation.engine import quiet_engine_notices, ray_init_args
from study.federation.protocol import FederatedExperiment
from study.federation.server_app import FederatedOutcome, Progress, build_server_app
from study.federation.site_queries import SiteFailure


def run_federated(experiments: list[FederatedExperiment], progress: Progress, ray_address: str | None = None,
                  on_outcome: Callable[[FederatedOutcome], None] = lambda outcome: None,
                  on_sites_ready: Callable[[], None] = lambda: None) -> list[FederatedOutcome]:
    """Train every experiment on simulated SuperNodes (as many as the largest experiment has sites); outcomes in
    experiment order, each also handed to `on_outcome` (from the server's thread) as soon as it is done;
    `on_sites_ready` is called once every simulated site has loaded the study's code and answered. With
    `ray_address`, the simulation runs on that existing Ray cluster instead of starting one here."""
    if not experiments:
        return []
    outcomes: list[FederatedOutcome] = []
    failures: list[SiteFailure] = []
    n_nodes = max(experiment.split.n_sites for experiment in experiments)
    server_app = build_server_app(experiments, n_nodes, outcomes, failures, progress, on_outcome, on_sites_ready)
    quiet_engine_notices()
    flwr_logger = logging.getLogger("flwr")
    previous_level = flwr_logger.level
    # Flower warns that run_simulation is deprecated in favour of `flwr run` (which starts a detached SuperLink and
    # cannot run in-process) and, per experiment, that federated evaluation is off (the study evaluates centrally).
    flwr_logger.setLevel(logging.ERROR)
    restore_interrupt = _silence_engine_on_interrupt(flwr_logger)
    try:
        with _prompt_message_pump():
            run_simulation(
                server_app=server_app,
                client_app=client_app,
                num_supernodes=n_nodes,
                backend_config={
                    # One CPU per simulated site lets two sites train at once on a 2-core machine.
                    "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                    "init_args": ray_init_args(ray_address),
                },
            )
    finally:
        restore_interrupt()
        flwr_logger.setLevel(previous_level)
    if failures:
        raise failures[0]
    if len(outcomes) != len(experiments):
        raise RuntimeError(
            f"the federated simulation finished {len(outcomes)} of {len(experiments)} experiments; "
            "see the Flower log above for the failing site"
        )
    return outcomes


MESSAGE_PUMP_MIN_POLL_SECONDS = 0.01
# The pump asks the state for every node's messages on each pass: with many nodes a pass costs real time, so the wait
# between passes stays at least this many times the last pass (the pump then uses at most a fifth of a core).
MESSAGE_PUMP_WAIT_PER_PASS = 4.0


class _PromptStopEvent:
    """Flower's stop event for its message pump, with each poll wait cut to 10 ms, or to four times the pass before
    it when that is longer, but never longer than Flower's own wait."""

    def __init__(self, event: threading.Event) -> None:
        self._event = event
        self._pass_started = time.perf_counter()

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        last_pass = time.perf_counter() - self._pass_started
        wait = max(MESSAGE_PUMP_MIN_POLL_SECONDS, MESSAGE_PUMP_WAIT_PER_PASS * last_pass)
        stopped = self._event.wait(wait if timeout is None else min(timeout, wait))
        self._pass_started = time.perf_counter()
        return stopped


@contextmanager
def _prompt_message_pump() -> Iterator[None]:
    """Flower 1.42's simulation moves the server's messages to the sites in a loop that sleeps 0.1 s between
    passes, so every round of a small model waits about that long for nothing (most of its wall time). While the
    study's simulation runs, that loop polls every 10 ms instead (less often when a pass over many nodes takes
    long); nothing else about it changes."""
    original = vce_api.add_messages_to_queue

    def add_messages_promptly(state, queue, nodes_mapping, f_stop: threading.Event) -> None:  # type: ignore[no-untyped-def]
        original(state, queue, nodes_mapping, _PromptStopEvent(f_stop))

    vce_api.add_messages_to_queue = add_messages_promptly
    try:
        yield
    finally:
        vce_api.add_messages_to_queue = original


def _silence_engine_on_interrupt(flwr_logger: logging.Logger) -> Callable[[], None]:
    """On Ctrl-C, mute Flower for good (its threads go on reporting the actors the interrupt stopped while the
    process ends), then interrupt as before: the caller's handler, or KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGINT)

    def interrupted(signum: int, frame: FrameType | None) -> None:
        flwr_logger.disabled = True
        if callable(previous):
            previous(signum, frame)
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupted)
    return lambda: signal.signal(signal.SIGINT, previous)
