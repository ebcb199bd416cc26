"""`python -m study.run`: parse the command line, run the study, write the report, print where it is."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, NoReturn, Sequence

from study.federation.engine import EarlyEngine

if TYPE_CHECKING:
    from study.config import StudyConfig

PROG = "python -m study.run"


class ProgressPrinter:
    """Timestamped progress lines on stderr; silent with --quiet."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.started = time.perf_counter()

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"[{time.perf_counter() - self.started:6.1f} s] {message}", file=sys.stderr, flush=True)


INTERRUPTED = f"{PROG}: interrupted; no run folder was written and earlier runs are untouched"


class _Interrupts:
    """Ctrl-C handling for the CLI. While the study runs, an interrupt says so in one line, ends every process the
    run started and leaves at once: nothing is half-written then (results are cached and run folders written
    atomically). While the run folder is written, it unwinds instead, so the half-filled folder is removed; once the
    folder is there, interrupts are ignored: the run finishes."""

    def __init__(self) -> None:
        self.writing = False
        self._previous = signal.getsignal(signal.SIGINT)
        self._active = threading.current_thread() is threading.main_thread()
        if self._active:
            signal.signal(signal.SIGINT, self._interrupted)

    def _interrupted(self, signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # one interrupt is enough
        print(INTERRUPTED, file=sys.stderr, flush=True)
        if self.writing:
            raise KeyboardInterrupt
        _end_at_once()

    def ignore(self) -> None:
        if self._active:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    def restore(self) -> None:
        if self._active:
            signal.signal(signal.SIGINT, self._previous)


def _end_at_once() -> NoReturn:
    """End every process the run started and exit 130 now, joining no thread."""
    from study.stop import kill_started_processes

    kill_started_processes()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(130)


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI; Ctrl-C at any point (even while libraries load) ends in one line and writes nothing."""
    interrupts = _Interrupts()
    try:
        return _run(argv, interrupts)
    except KeyboardInterrupt:  # while the run folder was written: it is removed, the engine already stopped
        _end_at_once()
    finally:
        interrupts.restore()


def _run(argv: Sequence[str] | None, interrupts: _Interrupts) -> int:
    """Parse, start the engine early, load and check the data, run, write."""
    from study.cli import parse, reproduce_command
    from study.config import FEDERATED_ARMS, ConfigError

    try:
        config, args = parse(argv)
    except ConfigError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    engine = EarlyEngine(args.ray_address) if any(arm in FEDERATED_ARMS for arm in config.arms) else None
    try:  # the engine starts while torch, Opacus and Flower load below
        return _run_study(config, args, reproduce_command(config, args.output), interrupts)
    finally:
        if engine:
            engine.release()


def _run_study(config: StudyConfig, args: argparse.Namespace, command: str, interrupts: _Interrupts) -> int:
    from study.config import ConfigError
    # Imported after parsing (so --help is instant) and not at module level, so that an interrupt while torch and
    # Flower load is handled by main().
    from study.federation.site_queries import SiteFailure
    from study.pipeline import preflight, run_study
    from study.report.writer import write_run
    from study.rundir import CACHE_FOLDER, OutputError, prepare_output

    try:
        preflight(config)
        prepare_output(args.output)
    except (ConfigError, OutputError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    progress = ProgressPrinter(args.quiet)
    started = datetime.now(timezone.utc)
    cache_dir = None if args.no_cache else args.output / CACHE_FOLDER
    try:
        results = run_study(config, progress, cache_dir=cache_dir, ray_address=args.ray_address)
    except SiteFailure as failure:
        print(f"{PROG}: error: a site failed during federated training ({failure}); no run folder was written, "
              "finished results are kept in the cache for the next run", file=sys.stderr)
        return 1
    interrupts.writing = True
    try:
        run_dir = write_run(results, args.output, command, started)
    except OSError as error:  # a full disk, a folder made read-only meanwhile: the half-written folder is removed
        print(f"{PROG}: error: could not write the run folder in {args.output} ({error.strerror or error}); free some "
              "space or choose another --output (the results are cached: the next run only writes)", file=sys.stderr)
        return 1
    interrupts.ignore()
    progress(f"done in {results.seconds['total']:.0f} s: {results.trained} results trained, "
             f"{results.reused} reused from the cache")
    print(Path(run_dir) / "index.html")
    return 0


if __name__ == "__main__":
    exit_code = main()
    # Every file is written and closed: skip the interpreter's teardown of torch, Ray and Flower (about 1.5 s).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)
