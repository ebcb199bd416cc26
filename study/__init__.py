"""fedstudy: how much accuracy a hospital keeps, and how much privacy it buys, by training with Flower.

Use from Python (a notebook)::

    from study import StudyConfig, run_study
    results = run_study(StudyConfig(seeds=(0, 1), epsilons=(1.0, 8.0)), progress=print)
    results.table          # long format: arm, model, seed, epsilon, round, site, metric, value
    save_run(results)      # reports/<run-id>/index.html, as the CLI writes it
"""

import os

# The study never phones home: Flower's telemetry is off unless the user explicitly turns it on.
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

from study.config import StudyConfig  # noqa: E402
from study.pipeline import run_study  # noqa: E402
from study.report.writer import save_run  # noqa: E402
from study.results import StudyResults, final_results, summarize  # noqa: E402

__all__ = ["StudyConfig", "StudyResults", "final_results", "run_study", "save_run", "summarize"]
