"""Datasets the study can load: a feature table and a binary target, with no download needed."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer


@dataclass(frozen=True)
class PublicRanges:
    """Per-feature bounds known without looking at any site's rows, and where they come from."""

    low: np.ndarray
    high: np.ndarray
    source: str


@dataclass(frozen=True)
class Dataset:
    """A table of numeric features and a 0/1 target, one row per patient."""

    name: str
    features: pd.DataFrame
    target: np.ndarray
    description: str
    public_ranges: PublicRanges | None = None


    @property
    def n_rows(self) -> int:
        return len(self.target)


def load_dataset(name: str) -> Dataset:
    """Load a dataset by its config name."""
    if name == "breast-cancer":
        return _breast_cancer()
    raise ValueError(f"unknown dataset {name!r}")


def _breast_cancer() -> Dataset:
    bunch = load_breast_cancer(as_frame=True)
    # scikit-learn codes malignant as 0; the study predicts malignancy, so malignant is the positive class.
    target = (bunch.target.to_numpy() == 0).astype(np.int64)
    return Dataset(
        name="breast-cancer",
        features=bunch.data.astype(np.float64),
        target=target,
        description=(
            "Breast Cancer Wisconsin (Diagnostic), shipped with scikit-learn: 569 tumours, 30 numeric "
            "features from digitised fine-needle aspirate images; positive class = malignant (212 rows)."
        ),
        public_ranges=_published_ranges(bunch.DESCR, list(bunch.feature_names)),
    )


def _published_ranges(description: str, feature_names: list[str]) -> PublicRanges:
    """The min/max table printed in the dataset's documentation ("radius (mean): 6.981 28.11"), in feature order.

    scikit-learn names the features "mean radius", "radius error", "worst radius"; the table says
    "radius (mean)", "radius (standard error)", "radius (worst)".
    """
    feature_name = {"mean": "mean {}", "standard error": "{} error", "worst": "worst {}"}
    rows = re.findall(r"^([a-z ]+) \((mean|standard error|worst)\):\s+([\d.]+)\s+([\d.]+)\s*$", description, re.M)
    table = {feature_name[kind].format(name): (float(low), float(high)) for name, kind, low, high in rows}
    missing = [name for name in feature_names if name not in table]
    if missing:
        raise RuntimeError(f"the dataset documentation gives no published range for {missing}")
    low, high = (np.array([table[name][end] for name in feature_names]) for end in (0, 1))
    return PublicRanges(low, high, "the minimum and maximum of each feature published in the dataset's documentation")
