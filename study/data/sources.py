"""Datasets the study can load: a feature table and a binary target, with no download needed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer


@dataclass(frozen=True)
class Dataset:
    """A table of numeric features and a 0/1 target, one row per patient."""

    name: str
    features: pd.DataFrame
    target: np.ndarray
    description: str

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
    )
