"""fedstudy: how much accuracy a hospital keeps, and how much privacy it buys, by training with Flower.

Use from Python (a notebook)::

    from study import StudyConfig, run_study
    results = run_study(StudyConfig(seeds=(0,), epsilons=(1.0, 8.0)))
    results.table          # long format: arm, model, seed, epsilon, round, site, metric, value
"""

import os

# The study never phones home: Flower's telemetry is off unless the user explicitly turns it on.
os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")

from study.config import StudyConfig  # noqa: E402
from study.pipeline import run_study  # noqa: E402
from study.results import StudyResults, final_results, summarize  # noqa: E402

__all__ = ["StudyConfig", "StudyResults", "final_results", "run_study", "summarize"]
