"""The report's tables, computed from the results table."""

from __future__ import annotations

import math

import pandas as pd

from study.evaluation import ALL_SITES
from study.report.figures import ARM_ORDER, MODEL_NAMES
from study.results import final_results, format_budget, summarize

METRIC_LABELS = {"auc": "ROC AUC", "accuracy": "accuracy", "f1": "F1", "brier": "Brier score (lower is better)"}


def format_estimate(mean: float, low: float, high: float, *, percent: bool = False) -> str:
    """'0.981 ± 0.006' or '98.1% (± 0.6)' (half-width of the 95% CI); just the mean when there is no interval."""
    if math.isnan(mean):
        return "n/a"
    scale, unit, digits = (100, "%", 1) if percent else (1, "", 3)
    shown = f"{scale * mean:.{digits}f}{unit}"
    if math.isnan(low):
        return shown
    half_width = f"{scale * (high - low) / 2:.{digits}f}"
    return f"{shown} (± {half_width})" if percent else f"{shown} ± {half_width}"


def arm_label(arm: str, epsilon: float) -> str:
    return arm if math.isnan(epsilon) else f"{arm}, ε = {format_budget(epsilon)}"


def _sorted(summary: pd.DataFrame) -> pd.DataFrame:
    order = {arm: number for number, arm in enumerate(ARM_ORDER)}
    return summary.assign(_arm=summary["arm"].map(order), _eps=summary["epsilon"].fillna(-1)).sort_values(
        ["_arm", "_eps"]
    )


def results_table(table: pd.DataFrame) -> list[dict[str, str]]:
    """One row per (arm, budget, model): each metric on all sites' test rows, mean ± 95% CI half-width."""
    summary = summarize(final_results(table))
    summary = _sorted(summary[(summary["site"] == ALL_SITES) & summary["metric"].isin(METRIC_LABELS)])
    rows = []
    for (arm, epsilon, model), group in summary.groupby(["arm", "epsilon", "model"], dropna=False, sort=False):
        by_metric = group.set_index("metric")
        row = {"arm": arm_label(arm, epsilon), "model": MODEL_NAMES[model]}
        for metric, label in METRIC_LABELS.items():
            estimate = by_metric.loc[metric]
            row[label] = format_estimate(estimate["mean"], estimate["ci_low"], estimate["ci_high"])
        row["seeds"] = str(int(group["n"].max()))
        rows.append(row)
    return rows


def privacy_table(table: pd.DataFrame) -> list[dict[str, str]]:
    """Per DP arm and budget: the accountant's epsilon per site (worst seed) and the noise used."""
    private = table[table["metric"].isin(["epsilon", "noise_multiplier"])]
    rows = []
    for (arm, epsilon, model), group in _sorted(private).groupby(["arm", "epsilon", "model"], sort=False):
        spent = group[group["metric"] == "epsilon"]
        per_site = spent[spent["site"] != ALL_SITES].groupby("site")["value"].max()
        noise = group[group["metric"] == "noise_multiplier"]["value"]
        rows.append(
            {
                "arm": arm,
                "model": MODEL_NAMES[model],
                "target ε": format_budget(epsilon),
                "ε spent (max over sites and seeds)": f"{spent['value'].max():.3f}",
                "ε spent per site (largest over seeds)": ", ".join(f"{site}: {value:.3f}" for site, value in per_site.items()) or "pooled data",
                "noise multiplier": f"{noise.min():.2f}" if noise.min() == noise.max() else f"{noise.min():.2f}–{noise.max():.2f}",
            }
        )
    return rows
