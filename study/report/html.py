"""Render the self-contained HTML report (figures embedded, no external requests) with jinja2."""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from study.config import SCALING_ARM
from study.evaluation import ALL_SITES
from study.privacy import ACCOUNTANT_NAMES
from study.report import page_templates
from study.report.figures import MODEL_NAMES, Figure
from study.report.tables import (audit_table, comparison_table, format_estimate, privacy_table, protection_table,
                                 results_table, strategy_table)
from study.results import final_results, format_budget, summarize

TEMPLATES = jinja2.Environment(
    loader=jinja2.DictLoader({"report.html.j2": page_templates.REPORT, "runs.html.j2": page_templates.RUNS_INDEX}),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def headline(table: pd.DataFrame, metadata: dict[str, Any]) -> list[str]:
    """One plain-language sentence per model: accuracy of each way of training, and the price of DP."""
    config = metadata["config"]
    summary = summarize(final_results(table))
    summary = summary[(summary["site"] == ALL_SITES) & (summary["metric"] == "accuracy")]
    sentences = []
    for model in config["models"]:
        rows = summary[summary["model"] == model]

        def accuracy(arm: str, epsilon: float | None = None) -> tuple[str, float] | None:
            match = rows[(rows["arm"] == arm) & (rows["epsilon"].isna() if epsilon is None else rows["epsilon"] == epsilon)]
            if match.empty:
                return None
            first = match.iloc[0]
            return format_estimate(first["mean"], first["ci_low"], first["ci_high"], percent=True), float(first["mean"])

        name = MODEL_NAMES[model]
        federated, central, local = accuracy("federated"), accuracy("centralized"), accuracy("local")
        parts = []
        if federated:
            parts.append(f"training together with Flower reached {federated[0]} test accuracy")
        if central:
            parts.append(f"pooling all data reached {central[0]}")
        if local:
            parts.append(f"each hospital alone reached {local[0]}")
        sentence = f"{name[0].upper() + name[1:]}: " + ", ".join(parts) + "."
        if federated and central:
            sentence += f" Federation costs {100 * (central[1] - federated[1]):.1f} percentage points against pooling."
        finite = [float(epsilon) for epsilon in config["epsilons"] if math.isfinite(float(epsilon))]
        strongest = min(finite) if finite else None
        if strongest is not None and (private := accuracy("federated-dp", strongest)):
            sentence += (f" Protecting every patient record with differential privacy at ε = {format_budget(strongest)} per "
                         f"hospital, federated training reached {private[0]}.")
        if strongest is not None and (whole_site := accuracy("federated-client-dp", strongest)):
            sentence += f" Protecting each whole hospital at the same ε (client-level DP) reached {whole_site[0]}."
        if federated and (noiseless := accuracy("federated-dp", math.inf)):
            sentence += (f" Without any noise (ε = ∞) but with the DP arm's public-range scaling and clipping, federated "
                         f"DP-SGD reached {noiseless[0]}")
            scaling_cost = federated[1] - noiseless[1]
            noisy_cost = federated[1] - private[1] if strongest is not None and private else None
            if scaling_cost > 0 and noisy_cost is not None and scaling_cost >= noisy_cost:
                sentence += (f": all of the {100 * noisy_cost:.1f} points lost at ε = {format_budget(strongest)} are "
                             "explained by not sharing the sites' exact statistics and by clipping, not by noise (the "
                             "differences between budgets are within the confidence intervals).")
            elif scaling_cost > 0:
                sentence += (f": {100 * scaling_cost:.1f} points of the cost of privacy come from not sharing the "
                             "sites' exact statistics and from clipping, not from noise.")
            else:
                sentence += "."
        sentences.append(sentence)
    return sentences


ARM_PHRASES = {
    "centralized": "training on pooled data (centralized)",
    "local": "each hospital alone (local)",
    "federated": "training together with Flower's FedAvg without moving any patient row (federated)",
    "centralized-dp": "pooled training with differential privacy for every patient record (centralized-dp, DP-SGD)",
    "federated-dp": "federated training with differential privacy for every patient record at every hospital "
                    "(federated-dp, DP-SGD)",
    "federated-client-dp": "federated training that hides each whole hospital (federated-client-dp)",
}


def compared_arms(arms: list[str]) -> str:
    """What the run compared, in words, naming only the arms it ran."""
    phrases = [phrase for arm, phrase in ARM_PHRASES.items() if arm in arms]
    if not phrases:  # contrast arms only
        return "ran the arms " + ", ".join(arms)
    if len(phrases) == 1:
        return f"ran {phrases[0]}"
    return "compared " + ", ".join(phrases[:-1]) + " and " + phrases[-1]


def with_data_summary(metadata: dict[str, Any]) -> dict[str, Any]:
    """Run folders written before runs saved their data summary (all on the bundled breast-cancer data): rebuild
    what the report needs from their config, so they still re-render and stay in the runs index."""
    if "data" in metadata:
        return metadata
    config = metadata["config"]
    data = {"name": config["dataset"], "description": metadata.get("dataset_description", ""),
            "target_rule": "positive = malignant",
            # Breast cancer names no sites, so "auto" was a Dirichlet split.
            "split": "dirichlet" if config["split"] == "auto" else config["split"], "sites": config["sites"],
            "site_names": [], "columns": [], "model_inputs": metadata.get("n_features"), "dropped": [],
            "indicators": [], "public_inputs": metadata.get("n_features"),
            "public_schema": "the minimum and maximum of each feature published in the dataset's documentation"}
    return {**metadata, "data": data}


def render(table: pd.DataFrame, split: pd.DataFrame, figures: list[Figure], metadata: dict[str, Any]) -> str:
    config = metadata["config"]
    sweep, table = table[table["arm"] == SCALING_ARM], table[table["arm"] != SCALING_ARM]
    return TEMPLATES.get_template("report.html.j2").render(
        metadata=metadata,
        config=config,
        headline=headline(table, metadata),
        compared_arms=compared_arms(list(config["arms"])),
        noiseless_budget=any(math.isinf(float(epsilon)) for epsilon in config["epsilons"]),
        results=results_table(table),
        strategies=strategy_table(table),
        comparison=comparison_table(table, split, metadata, sweep),
        privacy=privacy_table(table),
        protection=protection_table(table, config["arms"], config["delta"], ACCOUNTANT_NAMES[config["accountant"]]),
        audit=audit_table(table),
        canary_sentence=_canary_sentence(split),
        public_ranges=metadata["data"]["public_schema"],
        data=metadata["data"],
        accountant=ACCOUNTANT_NAMES[config["accountant"]],
        figures=[
            {"name": f.name, "title": f.title, "caption": f.caption, "data": base64.b64encode(f.png).decode("ascii")}
            for f in figures
        ],
        n_rows=int(split[split["seed"] == split["seed"].min()]["rows"].sum()),
        smallest_site=int(split[split["part"] == "train"]["rows"].min()),
        one_class_sites=_one_class_training_sites(split),
        local_fallbacks=_local_fallbacks(table),
    )


def write_figures(figures: list[Figure], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for figure in figures:
        (folder / f"{figure.name}.png").write_bytes(figure.png)
        (folder / f"{figure.name}.svg").write_bytes(figure.svg)


def _one_class_training_sites(split: pd.DataFrame) -> list[str]:
    """'site 2 of seed 1' for every site whose training rows hold a single class."""
    train = split[split["part"] == "train"]
    single = train[(train["positives"] == 0) | (train["positives"] == train["rows"])]
    return [f"{row.site} of seed {row.seed}" for row in single.itertuples()]


def _local_fallbacks(table: pd.DataFrame) -> list[str]:
    """'site 2 of seed 1 (logistic regression)' for every local model that fell back to the site's prevalence."""
    marked = table[(table["metric"] == "local_fallback") & (table["value"] == 1)]
    return [f"{row.site} of seed {row.seed} ({MODEL_NAMES[row.model]})" for row in marked.itertuples()]


def _canary_sentence(split: pd.DataFrame) -> str:
    """Where the canaries were: 'In each seed, 64 canary records ... site 3 (seed 0), ...'."""
    if "canaries" not in split:
        return ""
    holders = split[split["canaries"] > 0]
    places = ", ".join(f"{row.site} in seed {row.seed} ({row.canaries} trained on)" for row in holders.itertuples())
    return (f"Canary records (every scaled feature at +1 or -1, a random label; each trained on with probability 1/2) "
            f"were added at the largest site of each seed: {places}.")

