"""What the report says about the data: where it came from, how the target was made, how sites were formed and
what preprocessing did. Saved with the run, so a report re-renders without the data files."""

from __future__ import annotations

from typing import Any

from study.data.preprocess import Preprocessor
from study.data.sources import Dataset


def describe_data(dataset: Dataset, split: str, n_sites: int, preprocessor: Preprocessor,
                  public: Preprocessor | None) -> dict[str, Any]:
    """A JSON-ready summary; `preprocessor` is the federation's preprocessing of the first seed."""
    missing = dataset.features.isna().mean()
    return {
        "name": dataset.name,
        "description": dataset.description,
        "target_rule": dataset.target_rule,
        "split": split,
        "sites": n_sites,
        "site_names": list(dataset.site_names) if split == "natural" else [],
        "rows": dataset.n_rows,
        "columns": [
            {"name": column, "kind": "categorical" if column in dataset.categorical else "numeric",
             "missing": float(missing[column])}
            for column in dataset.features.columns
        ],
        "model_inputs": preprocessor.width,
        "dropped": preprocessor.dropped,
        "indicators": [name for name in preprocessor.output_names if name.endswith(" missing")],
        "public_schema": None if dataset.public is None else dataset.public.source,
        "public_inputs": None if public is None else public.width,
    }
