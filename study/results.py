"""The results table (long format, one row a metric) and its summary over seeds."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from study.config import StudyConfig
from study.metrics import METRICS

COLUMNS = ["arm", "model", "seed", "epsilon", "round", "site", "metric", "value"]
PREDICTION_COLUMNS = ["arm", "model", "seed", "epsilon", "site", "label", "probability"]
# Wall-clock measurements: real, but not reproducible to the bit like every other metric.
TIMING_METRICS = ("train_seconds", "round_seconds")
GROUP = ["arm", "model", "epsilon", "site", "metric"]


@dataclass
class UnitResult:
    """One arm x model x seed x budget: its metric records (COLUMNS) and its final model's test predictions
    (PREDICTION_COLUMNS)."""

    records: list[dict]
    predictions: list[dict] = field(default_factory=list)


@dataclass
class StudyResults:
    """Everything a report is made from: re-rendering never needs training."""

    config: StudyConfig
    table: pd.DataFrame
    split: pd.DataFrame
    predictions: pd.DataFrame = field(default_factory=lambda: make_predictions([]))
    seconds: dict[str, float] = field(default_factory=dict)
    reused: int = 0  # results taken from the cache
    trained: int = 0  # results trained in this run
    data: dict = field(default_factory=dict)  # study.data.summary.describe_data of the study's data
    # Where the federated arms ran: Flower's simulation engine, or its deployment engine (SuperLink + SuperNodes).
    engine: dict = field(default_factory=lambda: {"name": "simulation"})


def format_budget(epsilon: float) -> str:
    """Shortest text that still tells budgets apart: '1', '0.5', 'inf', but '1.0000001' stays whole."""
    short = f"{epsilon:g}"
    return short if float(short) == epsilon else repr(epsilon)


def make_table(records: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame.from_records(records, columns=COLUMNS)
    table["epsilon"] = table["epsilon"].astype(float)
    table["round"] = table["round"].astype("Int64")
    table["value"] = table["value"].astype(float)
    return table


def make_predictions(records: list[dict]) -> pd.DataFrame:
    predictions = pd.DataFrame.from_records(records, columns=PREDICTION_COLUMNS)
    predictions["epsilon"] = predictions["epsilon"].astype(float)
    predictions["label"] = predictions["label"].astype(int)
    predictions["probability"] = predictions["probability"].astype(float)
    return predictions


def final_results(table: pd.DataFrame) -> pd.DataFrame:
    """Each arm's final model: rows of non-federated arms, and federated rows of each arm's own last round (the
    scaling sweep runs fewer rounds than the study, a deployment may run other numbers)."""
    last_round = table.groupby(["arm", "model", "seed"], dropna=False)["round"].transform("max")
    return table[table["round"].isna() | (table["round"] == last_round)]


def summarize(table: pd.DataFrame, by: list[str] | None = None) -> pd.DataFrame:
    """Mean and two-sided 95% t confidence interval over seeds (no interval from a single seed; metrics clipped to [0, 1])."""
    by = by or GROUP
    grouped = table.groupby(by, dropna=False, sort=False)["value"]
    summary = grouped.agg(mean="mean", sd="std", n="count").reset_index()
    half_width = stats.t.ppf(0.975, np.maximum(summary["n"] - 1, 1)) * summary["sd"] / np.sqrt(summary["n"])
    # probabilities and rates: an interval never leaves [0, 1]
    bounded = summary["metric"].isin(METRICS + ("audit_auc", "audit_tpr_at_1pct_fpr"))
    low, high = summary["mean"] - half_width, summary["mean"] + half_width
    summary["ci_low"] = np.where(summary["n"] > 1, np.where(bounded, low.clip(lower=0.0), low), np.nan)
    summary["ci_high"] = np.where(summary["n"] > 1, np.where(bounded, high.clip(upper=1.0), high), np.nan)
    return summary.drop(columns="sd")
