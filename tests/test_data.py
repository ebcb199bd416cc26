import numpy as np
import pandas as pd
import pytest

from study.data.partition import MIN_SITE_ROWS, partition_rows
from study.data.preprocess import Preprocessor, Schema, SiteStats
from study.data.sites import Site, SplitSpec, build_sites, federation_preprocessor
from study.data.sources import DataSource, PublicSchema, load_dataset

BREAST_CANCER = DataSource()


@pytest.mark.parametrize("split", ["iid", "dirichlet", "quantity"])
def test_partition_covers_every_row_once_with_big_enough_sites(split):
    labels = load_dataset("breast-cancer").target
    parts = partition_rows(labels, 5, split, 0.5, seed=3)
    everything = np.concatenate(parts)
    assert sorted(everything.tolist()) == list(range(len(labels)))
    assert min(len(part) for part in parts) >= MIN_SITE_ROWS


def test_partition_is_deterministic_per_seed_and_changes_with_it():
    labels = load_dataset("breast-cancer").target
    first = partition_rows(labels, 5, "dirichlet", 0.5, seed=1)
    again = partition_rows(labels, 5, "dirichlet", 0.5, seed=1)
    other = partition_rows(labels, 5, "dirichlet", 0.5, seed=2)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(len(a) == len(b) and np.array_equal(a, b) for a, b in zip(first, other))


def test_dirichlet_split_skews_labels_much_more_than_iid():
    labels = load_dataset("breast-cancer").target

    def spread(split: str) -> float:
        return float(np.std([labels[part].mean() for part in partition_rows(labels, 5, split, 0.3, seed=0)]))

    assert spread("dirichlet") > 3 * spread("iid")


def test_quantity_split_skews_sizes_not_case_mix():
    labels = load_dataset("breast-cancer").target
    sizes = [len(part) for part in partition_rows(labels, 5, "quantity", 0.5, seed=0)]
    iid_sizes = [len(part) for part in partition_rows(labels, 5, "iid", 0.5, seed=0)]
    assert max(sizes) / min(sizes) > 3 * max(iid_sizes) / min(iid_sizes)


def _table(rng: np.random.Generator, rows: int, shift: float) -> pd.DataFrame:
    values = rng.normal(loc=shift, scale=1 + shift, size=(rows, 2))
    values[rng.random(rows) < 0.2, 1] = np.nan
    colour = rng.choice(np.array(["red", "green", "blue", None], dtype=object), rows)
    return pd.DataFrame({"a": values[:, 0], "b": values[:, 1], "colour": colour, "flat": 1.0})


SCHEMA = Schema(("a", "b", "flat"), ("colour",))


def test_combined_site_statistics_equal_pooled_statistics():
    rng = np.random.default_rng(0)
    chunks = [_table(rng, 20 + 7 * i, float(i)) for i in range(3)]
    combined = Preprocessor.from_stats(SiteStats.combine(SiteStats.of_rows(c, SCHEMA) for c in chunks), SCHEMA)
    pooled = pd.concat(chunks)
    np.testing.assert_allclose(combined.center[:2], pooled[["a", "b"]].mean())
    np.testing.assert_allclose(combined.scale[:2], pooled[["a", "b"]].std(ddof=0))
    assert combined.vocabularies == (("blue", "green", "red"),)


def test_preprocessing_imputes_flags_missing_one_hot_encodes_and_drops_constants():
    rng = np.random.default_rng(1)
    frame = _table(rng, 200, 0.0)
    preprocessor = Preprocessor.from_stats(SiteStats.of_rows(frame, SCHEMA), SCHEMA)
    assert preprocessor.output_names == ["a", "b", "b missing", "colour=blue", "colour=green", "colour=red"]
    assert preprocessor.dropped == ["flat"]
    inputs = preprocessor.transform(frame)
    assert inputs.shape == (200, preprocessor.width) and np.isfinite(inputs).all()
    missing_b = frame["b"].isna().to_numpy()
    assert (inputs[missing_b, 1] == 0).all() and (inputs[:, 2] == missing_b).all()
    unseen = frame.head(1).assign(colour="purple")
    assert preprocessor.transform(unseen)[0, 3:].sum() == 0  # an unseen category encodes as all zeros


def test_preprocessor_survives_the_message_round_trip():
    frame = _table(np.random.default_rng(2), 50, 1.0)
    stats = SiteStats.of_rows(frame, SCHEMA)
    assert SiteStats.from_json(stats.to_json()).categories == stats.categories
    preprocessor = Preprocessor.from_stats(stats, SCHEMA)
    again = Preprocessor.from_json(preprocessor.to_json())
    np.testing.assert_array_equal(again.transform(frame), preprocessor.transform(frame))


def test_public_preprocessing_uses_no_data():
    public = PublicSchema({"a": (-4.0, 4.0), "b": (0.0, 10.0), "flat": (0.0, 2.0)},
                          {"colour": ("blue", "green", "red")}, may_be_missing=("b",))
    preprocessor = Preprocessor.from_public(public, SCHEMA)
    frame = _table(np.random.default_rng(3), 10, 0.0)
    assert preprocessor.output_names == ["a", "b", "flat", "b missing", "colour=blue", "colour=green", "colour=red"]
    np.testing.assert_allclose(preprocessor.transform(frame)[:, 0], frame["a"] / 4, rtol=1e-6)


def test_constant_feature_does_not_divide_by_zero():
    frame = pd.DataFrame({"a": np.ones(5), "b": np.arange(5.0)})
    schema = Schema(("a", "b"))
    preprocessor = Preprocessor.from_stats(SiteStats.of_rows(frame, schema), schema)
    assert np.isfinite(preprocessor.transform(frame)).all() and preprocessor.dropped == ["a"]


def test_test_rows_never_shape_the_preprocessing(default_sites):
    schema = Schema(tuple(default_sites[0].x_train.columns))
    changed = tuple(
        Site(s.name, s.x_train, s.y_train, s.x_test * 1000 + 5, 1 - s.y_test) for s in default_sites
    )
    assert federation_preprocessor(default_sites, schema) == federation_preprocessor(changed, schema)


def test_site_splits_are_stratified_disjoint_and_reproducible():
    spec = SplitSpec(BREAST_CANCER, 5, "iid", 1.0, 0.25, 7)
    sites = build_sites(spec)
    build_sites.cache_clear()
    again = build_sites(spec)
    for site, twin in zip(sites, again):
        pd.testing.assert_frame_equal(site.x_test, twin.x_test)
        assert abs(site.y_train.mean() - site.y_test.mean()) < 0.1
    assert sum(len(s.y_train) + len(s.y_test) for s in sites) == load_dataset("breast-cancer").n_rows
