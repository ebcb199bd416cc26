"""Sites: the horizontal split of a dataset, with one stratified train/test split per site and seed."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from study.data.partition import natural_sites, partition_rows
from study.data.preprocess import Preprocessor, Schema, SiteStats
from study.data.sources import DataSource, load_dataset

SPLITS = ("auto", "natural", "iid", "dirichlet", "quantity")


@dataclass(frozen=True)
class SplitSpec:
    """What decides the sites' rows: the same spec always gives the same sites. `split` is resolved (never
    "auto"); a natural split takes its sites from the data and ignores n_sites."""

    source: DataSource
    n_sites: int
    split: str
    alpha: float
    test_fraction: float
    seed: int


@dataclass(frozen=True)
class Site:
    """One hospital's rows, raw features; test rows never shape training or preprocessing."""

    name: str
    x_train: pd.DataFrame
    y_train: np.ndarray
    x_test: pd.DataFrame
    y_test: np.ndarray

    @property
    def single_class(self) -> bool:
        """Its training rows hold one class only: alone, it cannot learn to tell the classes apart."""
        return len(np.unique(self.y_train)) < 2


class SplitError(ValueError):
    """The requested sites cannot be made from the data; the message names the option to change."""


def resolve_split(source: DataSource, split: str) -> str:
    """'auto' is the data's own sites when it names them, Dirichlet label skew otherwise."""
    if source.at_sites:
        return "natural"  # a deployment: each SuperNode is one site
    has_sites = load_dataset(source).site_labels is not None
    if split == "auto":
        return "natural" if has_sites else "dirichlet"
    if split == "natural" and not has_sites:
        raise SplitError(f"--split: {source.dataset} names no sites; give --site-column or use --split dirichlet, "
                         "iid or quantity")
    return split


def schema_of(source: DataSource) -> Schema:
    dataset = load_dataset(source)
    return Schema(dataset.numeric, dataset.categorical)


@lru_cache(maxsize=8)
def build_sites(spec: SplitSpec) -> tuple[Site, ...]:
    """Split the dataset into sites, then each site into train and test rows (stratified when possible)."""
    dataset = load_dataset(spec.source)
    if spec.split == "natural":
        names = dataset.site_names
        site_rows = natural_sites(dataset.site_labels, names)
    else:
        names = tuple(f"site {number}" for number in range(1, spec.n_sites + 1))
        try:
            site_rows = partition_rows(dataset.target, spec.n_sites, spec.split, spec.alpha, spec.seed)
        except ValueError as error:
            raise SplitError(f"--alpha/--sites: {error}") from None
    return tuple(
        _split_site(str(name), dataset.features.iloc[rows].reset_index(drop=True), dataset.target[rows],
                    spec.test_fraction, spec.seed + number)
        for number, (name, rows) in enumerate(zip(names, site_rows), start=1)
    )


def site_from_file(path: str, name: str, number: int, spec: SplitSpec) -> tuple[Site, Schema]:
    """A deployed site: its own CSV (a SuperNode's data-path) read under the run's target rule and split into train
    and test rows exactly as site `number` (1-based) of the same table's natural split would be."""
    from study.data.user_csv import read_user_csv

    source = dataclasses.replace(spec.source, dataset="csv", path=path, site_column="", public_schema="", sites=1)
    dataset = read_user_csv(source, one_site=True)
    site = _split_site(name, dataset.features, dataset.target, spec.test_fraction, spec.seed + number)
    return site, Schema(dataset.numeric, dataset.categorical)


def _split_site(name: str, x: pd.DataFrame, y: np.ndarray, test_fraction: float, seed: int) -> Site:
    """Stratified when each class can appear on both sides; a plain random split otherwise."""
    n_test = int(np.ceil(test_fraction * len(y)))
    if not 1 <= n_test <= len(y) - 1:
        raise SplitError(
            f"--test-fraction: {test_fraction} leaves {name} ({len(y)} rows) without training or test rows; "
            "a site needs at least 2 rows, and a value nearer 0.25 keeps both parts"
        )
    counts = np.bincount(y, minlength=2)
    stratified = counts.min() >= 2 and min(n_test, len(y) - n_test) >= 2
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=n_test, random_state=seed, stratify=y if stratified else None
    )
    return Site(name, x_train.reset_index(drop=True), y_train, x_test.reset_index(drop=True), y_test)


def site_stats(site: Site, schema: Schema) -> SiteStats:
    """What one site sends for shared preprocessing: statistics of its training rows only."""
    return SiteStats.of_rows(site.x_train, schema)


def federation_preprocessor(sites: tuple[Site, ...], schema: Schema) -> Preprocessor:
    """The preprocessing the sites' combined statistics give (what the ServerApp computes from their replies)."""
    return Preprocessor.from_stats(SiteStats.combine(site_stats(site, schema) for site in sites), schema)


def public_preprocessor(source: DataSource, schema: Schema | None = None) -> Preprocessor | None:
    """The preprocessing DP arms use: the dataset's public schema; None if it publishes none. In a deployment the
    server holds no data, only the public schema file and the columns the sites reported (`schema`)."""
    if source.at_sites and schema is not None:
        from study.data.user_csv import public_schema_for

        return None if not source.public_schema else Preprocessor.from_public(
            public_schema_for(Path(source.public_schema), schema), schema)
    dataset = load_dataset(source)
    return None if dataset.public is None else Preprocessor.from_public(dataset.public, schema_of(source))
