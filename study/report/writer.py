"""Write a finished study to its run folder: tables, metadata, figures and the HTML report, all or nothing."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import tomli_w

from study.cli import reproduce_command
from study.config import key_name
from study.provenance import machine, versions
from study.report.figures import all_figures
from study.report.html import render, write_figures
from study.report.runs_index import write_runs_index
from study.results import StudyResults
from study.rundir import (
    CONFIG_TOML,
    METADATA_JSON,
    REPORT_HTML,
    PREDICTIONS_CSV,
    RESULTS_CSV,
    SPLIT_CSV,
    prepare_output,
    run_id,
    write_atomically,
)


def build_metadata(results: StudyResults, command: str, started: datetime) -> dict:
    config = results.config.to_dict()
    return {
        "run_id": run_id(config, started),
        "created": f"{started:%Y-%m-%d %H:%M UTC}",
        "command": command,
        "config": config,
        "versions": versions(),
        "machine": machine(),
        "seconds": results.seconds,
        "results_trained": results.trained,
        "results_reused": results.reused,
        "data": results.data,
        "engine": results.engine,
        "dataset_description": results.data["description"],
        "n_features": len(results.data["columns"]),
    }


def save_run(results: StudyResults, reports_dir: Path | str = "reports") -> Path:
    """From Python: write a run folder (report included) for results of `run_study`; returns the report's path."""
    reports_dir = Path(reports_dir)
    prepare_output(reports_dir)
    command = reproduce_command(results.config, reports_dir)
    return write_run(results, reports_dir, command, datetime.now(timezone.utc)) / REPORT_HTML


def write_run(results: StudyResults, reports_dir: Path, command: str, started: datetime) -> Path:
    """Create reports_dir/<run-id>/ with results.csv, split.csv, results.json, figures/ and index.html."""
    metadata = build_metadata(results, command, started)

    def fill(folder: Path) -> None:
        write_report_files(folder, results.table, results.split, results.predictions, metadata)

    run_dir = write_atomically(reports_dir, metadata["run_id"], fill)
    write_runs_index(reports_dir)
    return run_dir


def write_report_files(
    folder: Path, table: pd.DataFrame, split: pd.DataFrame, predictions: pd.DataFrame, metadata: dict
) -> None:
    config = {key_name(name): value for name, value in metadata["config"].items()}
    (folder / CONFIG_TOML).write_text(tomli_w.dumps(config), encoding="utf-8")
    table.to_csv(folder / RESULTS_CSV, index=False)
    split.to_csv(folder / SPLIT_CSV, index=False)
    predictions.to_csv(folder / PREDICTIONS_CSV, index=False)
    document = {**metadata, "results": json_records(table)}
    (folder / METADATA_JSON).write_text(json.dumps(document, indent=1), encoding="utf-8")
    figures = all_figures(table, split, predictions, metadata)
    write_figures(figures, folder / "figures")
    (folder / REPORT_HTML).write_text(render(table, split, figures, metadata), encoding="utf-8")


def json_records(table: pd.DataFrame) -> list[dict]:
    """Rows as strict JSON: missing values become null and an infinite epsilon the string "inf"."""
    cells = table.astype(object).where(table.notna(), None)
    return [
        {key: ("inf" if isinstance(value, float) and math.isinf(value) else value) for key, value in row.items()}
        for row in cells.to_dict("records")
    ]
