"""`python -m study.report RUN_DIR`: re-render a run's report from its saved results, without training."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Sequence

import jinja2
import pandas as pd

from study.cli import OneLineParser
from study.report.figures import all_figures
from study.report.html import render, with_data_summary, write_figures
from study.results import make_predictions, make_table
from study.rundir import METADATA_JSON, PREDICTIONS_CSV, REPORT_HTML, RESULTS_CSV, SPLIT_CSV, write_text_atomically

PROG = "python -m study.report"


def rerender(run_dir: Path) -> Path:
    """Rewrite RUN_DIR/index.html and RUN_DIR/figures/ from results.csv, split.csv, predictions.csv and
    results.json."""
    table = make_table(pd.read_csv(run_dir / RESULTS_CSV).to_dict("records"))
    split = pd.read_csv(run_dir / SPLIT_CSV)
    predictions = make_predictions(pd.read_csv(run_dir / PREDICTIONS_CSV).to_dict("records"))
    metadata = with_data_summary(json.loads((run_dir / METADATA_JSON).read_text(encoding="utf-8")))
    metadata.pop("results", None)
    figures = all_figures(table, split, predictions, metadata)
    html = render(table, split, figures, metadata)
    write_figures(figures, run_dir / "figures")
    return write_text_atomically(run_dir / REPORT_HTML, html)


def main(argv: Sequence[str] | None = None) -> int:
    parser = OneLineParser(prog=PROG, description="Re-render a run's HTML report and figures from its saved results.")
    parser.add_argument("run_dir", type=Path, help="a folder written by python -m study.run")
    run_dir = parser.parse_args(argv).run_dir
    missing = [name for name in (RESULTS_CSV, SPLIT_CSV, PREDICTIONS_CSV, METADATA_JSON) if not (run_dir / name).is_file()]
    if missing:
        print(f"{PROG}: error: {run_dir} is not a complete run folder (missing {', '.join(missing)}); "
              "give a folder written by python -m study.run", file=sys.stderr)
        return 2
    try:
        print(rerender(run_dir))
    except (ValueError, KeyError, TypeError, jinja2.TemplateError) as error:
        print(f"{PROG}: error: the saved results in {run_dir} cannot be read ({type(error).__name__}: {error}); "
              "rerun the study with python -m study.run", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
