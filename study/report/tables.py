"""The report's tables, computed from the results table."""

from __future__ import annotations

import math

import pandas as pd

from study.config import CONTRAST_ARMS, DP_ARMS
from study.evaluation import ALL_SITES
from study.report.figures import ARM_ORDER, MODEL_NAMES, STRATEGY_ARM_NAMES, raw_training_bytes
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
        if arm in CONTRAST_ARMS:
            continue  # protected exactly like the arm it repeats on an IID split
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


def comparison_table(table: pd.DataFrame, split: pd.DataFrame, metadata: dict,
                     sweep: pd.DataFrame) -> list[dict[str, str]]:
    """The common 'traditional ML vs federated learning' comparison, each row measured in this run (`sweep`: the
    round times of the scaling sweep over site counts)."""
    config = metadata["config"]
    final = final_results(table)
    n_features = metadata["n_features"]
    raw = raw_training_bytes(split, n_features)
    train_rows = int(split[(split["part"] == "train") & (split["seed"] == split["seed"].min())]["rows"].sum())
    statistics = metadata["data"]["sites"] * (1 + 2 * n_features) * 8
    rows = [{
        "aspect": "Data centralization",
        "centralized": f"{_kilobytes(raw)} of raw patient data leave the sites ({train_rows} training rows × "
                       f"{n_features} features + label, 8 bytes each)",
        "federated": f"0 bytes of patient rows; {_kilobytes(statistics)} of per-site feature sums for scaling "
                     "(none in the DP arms, which use public ranges)",
        "reading": "Federation keeps every row at its hospital; pooling copies all of them to one place.",
    }]
    rows.append(_privacy_row(final))
    rows.append(_time_row(final, table, config, metadata["data"]["sites"], sweep))
    rows.append(_communication_row(table, raw, config))
    rows.append(_data_dependency_row(final))
    return rows


def _privacy_row(final: pd.DataFrame) -> dict[str, str]:
    def claim(arm: str) -> str:
        spent = final[(final["arm"] == arm) & (final["metric"] == "epsilon") & (final["site"] == ALL_SITES)]
        audit = final[(final["arm"] == arm) & (final["metric"] == "audit_epsilon_lower_bound")]
        if spent.empty:
            shown = "none: no formal guarantee"
        else:
            budgets = spent.groupby("epsilon")["value"].max()
            unit = "per patient record, whole run" if arm.startswith("centralized") else "per record at each site, whole run"
            shown = ", ".join(f"ε ≤ {_epsilon_text(value)}" for value in budgets) + f" ({unit})"
        if not audit.empty:
            shown += f"; audit: empirical ε ≥ {audit['value'].max():.2f} (95%)"
        return shown

    private = [arm for arm in ("centralized-dp", "federated-dp") if arm in set(final["arm"])]
    return {
        "aspect": "Privacy",
        "centralized": claim("centralized") + "".join(f". {arm}: " + claim(arm) for arm in private[:1]),
        "federated": claim("federated") + "".join(f". {arm}: " + claim(arm) for arm in private[1:]),
        "reading": "Federation alone gives no formal privacy: updates can leak. DP gives a bound, at a cost in accuracy.",
    }


def _time_row(final: pd.DataFrame, table: pd.DataFrame, config: dict, n_sites: int,
              sweep: pd.DataFrame) -> dict[str, str]:
    central = final[(final["arm"] == "centralized") & (final["metric"] == "train_seconds")]["value"]
    rounds = table[(table["arm"] == "federated") & (table["metric"] == "round_seconds")]["value"]
    per_run = rounds.sum() / max(table[table["arm"] == "federated"].groupby(["model", "seed"]).ngroups, 1)
    federated = (f"{rounds.mean():.2f} s per round with {n_sites} sites; {per_run:.1f} s for {config['rounds']} "
                 "rounds" if len(rounds) else "not run")
    growth = ""
    if not sweep.empty:
        by_sites = sweep.groupby("site")["value"].mean()
        ordered = sorted(by_sites.items(), key=lambda item: int(item[0].split()[0]))
        federated += (". Time per round against the number of sites (logistic regression, IID split, "
                      f"{int(sweep['round'].max())} rounds each): "
                      + ", ".join(f"{sites}: {seconds:.2f} s" for sites, seconds in ordered))
        (fewest, first), (most, last) = ordered[0], ordered[-1]
        growth = f"Measured here, a round with {most} took {last / first:.1f}× the time of one with {fewest}. "
    return {
        "aspect": "Scalability (time)",
        "centralized": f"{central.mean():.2f} s of training per model and seed" if len(central) else "not run",
        "federated": federated,
        "reading": growth + "Pooled training time grows with the rows; a federated round also pays for messages to "
                   "and from every site, which is small here (all sites on one machine, two training at a time) "
                   "and larger across a real network, where sites train in parallel but each round waits for the "
                   "slowest.",
    }


def _communication_row(table: pd.DataFrame, raw: float, config: dict) -> dict[str, str]:
    traffic = table[(table["arm"] == "federated") & table["metric"].isin(["bytes_sent", "bytes_received"])]
    if traffic.empty:
        return {"aspect": "Communication", "centralized": _kilobytes(raw) + " once", "federated": "not run", "reading": ""}
    per_round = traffic.groupby(["model", "seed", "round"])["value"].sum().groupby("model").mean()
    parts, crossings = [], []
    for model, bytes_per_round in per_round.items():
        parts.append(f"{MODEL_NAMES[model]}: {_kilobytes(bytes_per_round)} per round, "
                     f"{_kilobytes(bytes_per_round * config['rounds'])} in {config['rounds']} rounds")
        crossings.append(f"{MODEL_NAMES[model]} after {math.ceil(raw / bytes_per_round)} rounds")
    return {
        "aspect": "Communication",
        "centralized": f"{_kilobytes(raw)}, once",
        "federated": "; ".join(parts),
        "reading": "Federation sends more bytes than pooling once rounds × per-round traffic exceeds the raw data: "
                   + ", ".join(crossings) + " here. Bigger datasets favour federation; bigger models and more rounds "
                   "favour pooling.",
    }


def _data_dependency_row(final: pd.DataFrame) -> dict[str, str]:
    accuracy = final[(final["metric"] == "accuracy") & (final["site"] == ALL_SITES)]

    def gap(federated: str, central: str) -> str:
        by_seed = accuracy.pivot_table(index=["model", "seed"], columns="arm", values="value")
        if not {federated, central} <= set(by_seed.columns):
            return "not run"
        difference = (100 * (by_seed[federated] - by_seed[central])).rename("value").reset_index()
        summary = summarize(difference.assign(metric="accuracy gap"), by=["model", "metric"])
        return "; ".join(
            f"{MODEL_NAMES[row.model]} {row.mean:+.1f}" + ("" if math.isnan(row.ci_low) else f" ± {(row.ci_high - row.ci_low) / 2:.1f}")
            + " points" for row in summary.itertuples()
        )

    return {
        "aspect": "Data dependency",
        "centralized": "the reference: pooled data does not care how rows are spread",
        "federated": f"federated minus centralized accuracy: {gap('federated', 'centralized')} on this run's split; "
                     f"{gap('federated-iid', 'centralized-iid')} on an IID split of the same data",
        "reading": "The more the hospitals differ (label skew), the more federated averaging can fall behind pooling.",
    }


def _kilobytes(value: float) -> str:
    return f"{value / 1e3:,.1f} kB"


def strategy_table(table: pd.DataFrame) -> list[dict[str, str]]:
    """With more than one Flower strategy: each site's test accuracy alone, under every strategy and pooled (mean
    over seeds), and the strategy that served it best. Empty with a single strategy."""
    final = final_results(table)
    final = final[(final["metric"] == "accuracy") & final["epsilon"].isna()]
    strategies = [arm for arm in STRATEGY_ARM_NAMES if arm in set(final["arm"])]
    if len(strategies) < 2:
        return []
    shown = ["local", *strategies, "centralized"]
    means = final[final["arm"].isin(shown)].groupby(["model", "site", "arm"])["value"].mean().unstack("arm")
    rows = []
    for (model, site), row in means.iterrows():
        site_order = (site == ALL_SITES, site)
        best = row[strategies].idxmax() if row[strategies].notna().any() else "n/a"
        rows.append((model, site_order, {
            "model": MODEL_NAMES[model], "site": "all sites" if site == ALL_SITES else site,
            **{arm: "n/a" if math.isnan(row.get(arm, math.nan)) else f"{100 * row[arm]:.1f}%" for arm in shown},
            "best strategy": best,
        }))
    return [row for _, _, row in sorted(rows, key=lambda item: (item[0], item[1]))]
