"""Datasets the study can load: a raw feature table, a 0/1 target and, where the data has one, a site per row."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.datasets import load_breast_cancer

from study.config import ConfigError

if TYPE_CHECKING:
    from study.config import StudyConfig


# The `data` of a deployment: no file at the coordinator; each site's SuperNode names its own (node config data-path).
SITE_FILES = "(each site's own file: SuperNode node config data-path)"


class DataError(ConfigError):
    """The data cannot be used as given; the message names the file, column or option and the fix."""


@dataclass(frozen=True)
class DataSource:
    """Where the study's table comes from: the dataset and the options that read or generate it. Hashable, so
    a loaded table is cached by it; the same source always gives the same table."""

    dataset: str = "breast-cancer"
    path: str = ""  # csv: the user's file
    target: str = ""
    positive: str = ""
    positive_above: float | None = None
    site_column: str = ""
    public_schema: str = ""  # csv: a TOML file of public bounds and categories, for the DP arms
    data_dir: str = "datasets/heart-disease"
    sites: int = 5  # synthetic-hospitals: how many hospitals the generator makes
    synthetic_rows: int = 5000
    synthetic_shift: float = 1.0
    synthetic_missing: float = 0.1
    synthetic_prevalence: tuple[float, float] = (0.1, 0.4)
    synthetic_seed: int = 0

    @property
    def at_sites(self) -> bool:
        """A deployment's data: every site reads its own file; nothing is loaded where the server runs."""
        return self.dataset == "csv" and self.path == SITE_FILES


def source_of(config: StudyConfig) -> DataSource:
    """The data source a study config names."""
    low, high = config.synthetic_prevalence
    return DataSource(
        dataset=config.dataset, path=config.data, target=config.target, positive=config.positive,
        positive_above=config.positive_above, site_column=config.site_column, public_schema=config.public_schema,
        data_dir=config.data_dir,
        sites=config.sites, synthetic_rows=config.synthetic_rows, synthetic_shift=config.synthetic_shift,
        synthetic_missing=config.synthetic_missing, synthetic_prevalence=(low, high),
        synthetic_seed=config.synthetic_seed,
    )


@dataclass(frozen=True)
class PublicSchema:
    """What is known about the features without looking at any site's rows (a dataset's documentation or a
    generator's design): the DP arms preprocess with it, so preprocessing reveals nothing about the sites."""

    ranges: dict[str, tuple[float, float]]  # numeric column -> (low, high), mapped onto [-1, 1]
    vocabularies: dict[str, tuple[str, ...]] = field(default_factory=dict)  # categorical column -> categories
    may_be_missing: tuple[str, ...] = ()  # columns that get a missing-value indicator
    source: str = ""


@dataclass(frozen=True)
class Dataset:
    """A table of raw features (numeric columns as floats with NaN for missing; categorical columns as strings
    with None for missing) and a 0/1 target, one row per patient."""

    name: str
    features: pd.DataFrame
    target: np.ndarray
    description: str
    target_rule: str
    categorical: tuple[str, ...] = ()
    site_labels: np.ndarray | None = None  # the natural split: a site name per row
    public: PublicSchema | None = None
    fingerprint: str = ""  # a digest of the files read, so cached results follow the data

    @property
    def n_rows(self) -> int:
        return len(self.target)

    @property
    def numeric(self) -> tuple[str, ...]:
        return tuple(column for column in self.features.columns if column not in self.categorical)

    @property
    def site_names(self) -> tuple[str, ...]:
        """The natural sites in order of first appearance; empty when the data names no sites."""
        return () if self.site_labels is None else tuple(pd.unique(self.site_labels))


@lru_cache(maxsize=8)
def load_dataset(source: DataSource | str) -> Dataset:
    """Load (or generate) the table a source describes; a DataError names what is wrong with it."""
    if isinstance(source, str):
        source = DataSource(dataset=source)
    if source.dataset == "breast-cancer":
        return _breast_cancer()
    if source.dataset == "heart-disease":
        from study.data.heart_disease import load_heart_disease

        return load_heart_disease(source.data_dir)
    if source.dataset == "synthetic-hospitals":
        from study.data.synthetic import generate_hospitals

        return generate_hospitals(source)
    if source.dataset == "csv":
        from study.data.user_csv import read_user_csv

        return read_user_csv(source)
    raise ValueError(f"unknown dataset {source.dataset!r}")


def _breast_cancer() -> Dataset:
    bunch = load_breast_cancer(as_frame=True)
    # scikit-learn codes malignant as 0; the study predicts malignancy, so malignant is the positive class.
    target = (bunch.target.to_numpy() == 0).astype(np.int64)
    ranges = _published_ranges(bunch.DESCR, list(bunch.feature_names))
    return Dataset(
        name="breast-cancer",
        features=bunch.data.astype(np.float64),
        target=target,
        description=(
            "Breast Cancer Wisconsin (Diagnostic), shipped with scikit-learn: 569 tumours, 30 numeric "
            "features from digitised fine-needle aspirate images; positive class = malignant (212 rows)."
        ),
        target_rule="positive = malignant (scikit-learn's target 0)",
        public=PublicSchema(
            ranges, source="the minimum and maximum of each feature published in the dataset's documentation"
        ),
    )


def _published_ranges(description: str, feature_names: list[str]) -> dict[str, tuple[float, float]]:
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
    return {name: table[name] for name in feature_names}
