"""Render the self-contained HTML report (figures embedded, no external requests) with jinja2."""

from __future__ import annotations

import base64
import math
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from study.evaluation import ALL_SITES
from study.privacy import ACCOUNTANT_NAMES
from study.report.figures import MODEL_NAMES, Figure
from study.report.tables import arm_label, format_estimate, privacy_table, results_table
from study.results import final_results, summarize

_TEMPLATES = jinja2.Environment(
    loader=jinja2.PackageLoader("study.report", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def headline(table: pd.DataFrame, metadata: dict[str, Any]) -> list[str]:
    """Plain-language sentences with the numbers that matter, one per model."""
    config = metadata["config"]
    summary = summarize(final_results(table))
    summary = summary[(summary["site"] == ALL_SITES) & (summary["metric"] == "auc")]
    sentences = []
    for model in config["models"]:
        rows = summary[summary["model"] == model]

        def estimate(arm: str, epsilon: float | None = None) -> str | None:
            match = rows[(rows["arm"] == arm) & (rows["epsilon"].isna() if epsilon is None else rows["epsilon"] == epsilon)]
            if match.empty:
                return None
            first = match.iloc[0]
            return format_estimate(first["mean"], first["ci_low"], first["ci_high"])

        parts = [f"{arm_label(arm, math.nan)}: {value}" for arm in ("federated", "centralized", "local")
                 if (value := estimate(arm)) is not None]
        if config["epsilons"]:
            strongest = min(config["epsilons"])
            for arm in ("federated-dp", "centralized-dp"):
                if (value := estimate(arm, strongest)) is not None:
                    parts.append(f"{arm_label(arm, strongest)}: {value}")
        name = MODEL_NAMES[model]
        sentences.append(f"{name[0].upper() + name[1:]}, test ROC AUC on all sites' test rows — " + "; ".join(parts) + ".")
    return sentences


def render(table: pd.DataFrame, split: pd.DataFrame, figures: list[Figure], metadata: dict[str, Any]) -> str:
    config = metadata["config"]
    return _TEMPLATES.get_template("report.html.j2").render(
        metadata=metadata,
        config=config,
        headline=headline(table, metadata),
        results=results_table(table),
        privacy=privacy_table(table),
        accountant=ACCOUNTANT_NAMES[config["accountant"]],
        figures=[
            {"name": f.name, "title": f.title, "caption": f.caption, "data": base64.b64encode(f.png).decode("ascii")}
            for f in figures
        ],
        n_rows=int(split[split["seed"] == split["seed"].min()]["rows"].sum()),
        smallest_site=int(split.groupby(["seed", "site"])["rows"].sum().min()),
    )


def write_figures(figures: list[Figure], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for figure in figures:
        (folder / f"{figure.name}.png").write_bytes(figure.png)
