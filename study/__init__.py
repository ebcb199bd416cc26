"""fedstudy: how much accuracy a hospital keeps, and how much privacy it buys, by training with Flower.

Use from Python (a notebook)::

    from study import StudyConfig, run_study, save_run
    results = run_study(StudyConfig(seeds=(0, 1), epsilons=(1.0, 8.0)), progress=print)
    results.table          # long format: arm, model, seed, epsilon, round, site, metric, value
    save_run(results)      # reports/<run-id>/index.html, as the CLI writes it
"""

import importlib
import os
from typing import Any

# The study never phones home: Flower's telemetry is off unless the user explicitly turns it on.
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

# Loaded on first use, so that `python -m study.run --help` and Ctrl-C during start-up stay fast and clean.
_EXPORTS = {
    "StudyConfig": "study.config",
    "run_study": "study.pipeline",
    "save_run": "study.report.writer",
    "StudyResults": "study.results",
    "final_results": "study.results",
    "summarize": "study.results",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'study' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
