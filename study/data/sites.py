"""Sites: the horizontal split of a dataset, with one stratified train/test split per site and seed."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from sklearn.model_selection import train_test_split

from study.data.partition import partition_rows
from study.data.preprocess import FeatureStats, Scaler
from study.data.sources import load_dataset


@dataclass(frozen=True)
class SplitSpec:
    """What decides the sites' rows: the same spec always gives the same sites."""

    dataset: str
    n_sites: int
    split: str
    alpha: float
    test_fraction: float
    seed: int


@dataclass(frozen=True)
class Site:
    """One hospital's rows, raw (unscaled) features; test rows never shape training or preprocessing."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def train_stats(self) -> FeatureStats:
        return FeatureStats.of_rows(self.x_train)


class SplitError(ValueError):
    """The requested sites cannot be made from the data; the message names the option to change."""


@lru_cache(maxsize=8)
def build_sites(spec: SplitSpec) -> tuple[Site, ...]:
    """Split the dataset into sites, then each site into train and test rows (stratified when possible)."""
    dataset = load_dataset(spec.dataset)
    features = dataset.features.to_numpy(dtype=np.float64)
    try:
        site_rows = partition_rows(dataset.target, spec.n_sites, spec.split, spec.alpha, spec.seed)
    except ValueError as error:
        raise SplitError(f"--alpha/--sites: {error}") from None
    return tuple(
        _split_site(f"site {number}", features[rows], dataset.target[rows], spec.test_fraction, spec.seed + number)
        for number, rows in enumerate(site_rows, start=1)
    )


def _split_site(name: str, x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int) -> Site:
    """Stratified when each class can appear on both sides; a plain random split otherwise."""
    n_test = int(np.ceil(test_fraction * len(y)))
    if not 1 <= n_test <= len(y) - 1:
        raise SplitError(
            f"--test-fraction: {test_fraction} leaves {name} ({len(y)} rows) without training or test rows; "
            "use a value nearer 0.25"
        )
    counts = np.bincount(y, minlength=2)
    stratified = counts.min() >= 2 and min(n_test, len(y) - n_test) >= 2
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=n_test, random_state=seed, stratify=y if stratified else None
    )
    return Site(name, x_train, y_train, x_test, y_test)


def combined_stats(sites: tuple[Site, ...]) -> FeatureStats:
    return FeatureStats.combine(site.train_stats() for site in sites)


def public_scaler(dataset: str) -> Scaler | None:
    """The scaling DP arms use: the dataset's public feature ranges onto [-1, 1]; None if it publishes none."""
    ranges = load_dataset(dataset).public_ranges
    return None if ranges is None else Scaler.from_ranges(ranges.low, ranges.high)
