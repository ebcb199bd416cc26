"""`python -m study.run`: parse the command line, run the study, write the report, print where it is."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

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


def main(argv: Sequence[str] | None = None) -> int:
    """The CLI; Ctrl-C at any point (even while libraries load) ends in one line and writes nothing."""
    engine: list[EarlyEngine] = []
    try:
        return _run(argv, engine)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; no run folder was written and earlier runs are untouched", file=sys.stderr)
        if engine:
            engine[0].release()
        if "ray" in sys.modules:
            from study.stop import stop_engine

            # Flower's ServerApp thread may still wait for sites whose actors died with the interrupt: stop the
            # engine and leave without joining that thread (all writes are atomic, so nothing is half-written).
            stop_engine()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        return 130


def _run(argv: Sequence[str] | None, engine: list[EarlyEngine]) -> int:
    """Parse, start the engine early, load and check the data, run, write; `engine` receives the early engine so
    that main() can stop it on Ctrl-C."""
    from study.cli import parse, reproduce_command
    from study.config import FEDERATED_ARMS, ConfigError

    try:
        config, args = parse(argv)
    except ConfigError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    if any(arm in FEDERATED_ARMS for arm in config.arms):
        engine.append(EarlyEngine(args.ray_address))  # starts while torch, Opacus and Flower load below
    try:
        return _run_study(config, args, reproduce_command(config, args.output))
    finally:
        if engine:
            engine[0].release()


def _run_study(config: StudyConfig, args: argparse.Namespace, command: str) -> int:
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
    run_dir = write_run(results, args.output, command, started)
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
