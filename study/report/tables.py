"""The report's tables, computed from the results table."""

from __future__ import annotations

import math

import pandas as pd

from study.config import DP_ARMS
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


# Per arm: what one guarantee covers, who it holds against, and what the arm's feature scaling shares.
PROTECTION = {
    "centralized": ("nothing (no formal guarantee)", "—: every site sends its raw rows to whoever holds the pool",
                    "exact statistics of the pooled training rows"),
    "local": ("nothing formal; no row or model leaves the site", "— (each site's model is its own)",
              "exact statistics of the site's own training rows"),
    "federated": ("nothing formal: raw rows stay at the sites, but model updates can leak them",
                  "— (the server sees every site's update each round)",
                  "exact per-site counts, sums and sums of squares, sent to the server"),
    "centralized-dp": ("one patient record of the pooled training data",
                       "anyone who sees the final model; not whoever holds the pooled raw data",
                       "public feature ranges (no statistic of the data)"),
    "federated-dp": ("one patient record at a site, accounted per site",
                     "the server, the other sites and anyone who sees any round's model",
                     "public feature ranges (no site statistic is released)"),
    "federated-client-dp": ("a whole site: all its patient records at once",
                            "the other sites and anyone who sees any global model; not the server, which sees each "
                            "site's unclipped update", "public feature ranges (no site statistic is released)"),
}


def protection_table(table: pd.DataFrame, arms: list[str], delta: float, accountant: str) -> list[dict[str, str]]:
    """One row per arm: unit protected, against whom, (epsilon, delta) over the whole run, accountant, scaling."""
    spent = table[(table["metric"] == "epsilon")]
    rows = []
    for arm in sorted(arms, key=ARM_ORDER.index):
        unit, against, scaling = PROTECTION[arm]
        budgets = spent[spent["arm"] == arm].groupby("epsilon")["value"].max()
        guarantee = "none" if budgets.empty else "; ".join(
            f"target {format_budget(target)}: ε ≤ {_epsilon_text(value)}" for target, value in budgets.items()
        ) + f" (δ = {delta:g}, worst site and seed)"
        rows.append({"arm": arm, "protects": unit, "against": against, "(ε, δ) over the whole run": guarantee,
                     "accountant": accountant if arm in DP_ARMS else "—", "feature scaling": scaling})
    return rows


def audit_table(table: pd.DataFrame) -> list[dict[str, str]]:
    """Per arm, budget and model: claimed epsilon next to what the canary audit could show, over seeds."""
    audit = final_results(table)
    audit = audit[audit["site"] == ALL_SITES]
    rows = []
    for (arm, epsilon, model), group in _sorted(audit).groupby(["arm", "epsilon", "model"], dropna=False, sort=False):
        by_metric = group.groupby("metric")["value"]
        if "audit_auc" not in by_metric.groups:
            continue
        claimed = by_metric.max().get("epsilon", math.inf)
        auc = summarize(group[group["metric"] == "audit_auc"]).iloc[0]
        rows.append({
            "arm": arm_label(arm, epsilon),
            "model": MODEL_NAMES[model],
            "claimed ε (accountant)": "none (∞)" if math.isinf(claimed) else f"{claimed:.3f}",
            "empirical ε lower bound (95%, largest over seeds)": f"{by_metric.max()['audit_epsilon_lower_bound']:.2f}",
            "membership AUC": format_estimate(auc["mean"], auc["ci_low"], auc["ci_high"]),
            "TPR at ≤ 1% FPR (mean)": f"{by_metric.mean()['audit_tpr_at_1pct_fpr']:.2f}",
        })
    return rows


def _epsilon_text(value: float) -> str:
    return "∞ (no noise)" if math.isinf(value) else f"{value:.3f}"
