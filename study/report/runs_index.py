"""reports/index.html: every run in a reports folder, side by side, so reruns with other budgets can be compared."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from study.evaluation import ALL_SITES
from study.report.figures import MODEL_NAMES
from study.report.html import TEMPLATES, with_data_summary
from study.report.tables import format_estimate
from study.results import final_results, format_budget, make_table, summarize
from study.rundir import METADATA_JSON, RESULTS_CSV, write_text_atomically

INDEX_HTML = "index.html"


def _accuracy(summary: pd.DataFrame, model: str, arm: str, epsilon: float | None = None) -> str:
    rows = summary[(summary["model"] == model) & (summary["arm"] == arm)]
    rows = rows[rows["epsilon"].isna()] if epsilon is None else rows[rows["epsilon"] == epsilon]
    if rows.empty:
        return "–"
    first = rows.iloc[0]
    return format_estimate(first["mean"], first["ci_low"], first["ci_high"], percent=True)


def describe_run(run_dir: Path) -> list[dict[str, str]] | None:
    """One row per model of a finished run, or None for a folder that is not a readable run."""
    try:
        metadata = with_data_summary(json.loads((run_dir / METADATA_JSON).read_text(encoding="utf-8")))
        table = make_table(pd.read_csv(run_dir / RESULTS_CSV).to_dict("records"))
        config, data = metadata["config"], metadata["data"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    summary = summarize(final_results(table))
    summary = summary[(summary["site"] == ALL_SITES) & (summary["metric"] == "accuracy")]
    strongest = min(config["epsilons"]) if config.get("epsilons") else None
    return [
        {
            "run": run_dir.name,
            "created": str(metadata.get("created", "")),
            "data": f"{data['name']}, {data['sites']} sites ({data['split']})",
            "budgets ε": " ".join(format_budget(e) for e in config.get("epsilons", [])),
            "seeds": str(len(config["seeds"])),
            "model": MODEL_NAMES.get(model, model),
            "federated": _accuracy(summary, model, "federated"),
            "centralized": _accuracy(summary, model, "centralized"),
            "local": _accuracy(summary, model, "local"),
            "federated-dp at smallest ε": _accuracy(summary, model, "federated-dp", strongest),
        }
        for model in config["models"]
    ]


def write_runs_index(reports_dir: Path) -> Path:
    """Rewrite reports_dir/index.html from the run folders now present (newest first); atomic."""
    runs = [row for folder in sorted(reports_dir.iterdir(), reverse=True)
            if folder.is_dir() and not folder.name.startswith(".") and (rows := describe_run(folder))
            for row in rows]
    html = TEMPLATES.get_template("runs.html.j2").render(runs=runs)
    return write_text_atomically(reports_dir / INDEX_HTML, html)
