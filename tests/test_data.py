import numpy as np
import pytest

from study.data.partition import MIN_SITE_ROWS, partition_rows
from study.data.preprocess import FeatureStats
from study.data.sites import Site, SplitSpec, build_sites, combined_stats
from study.data.sources import load_dataset


@pytest.mark.parametrize("split", ["iid", "dirichlet"])
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


def test_combined_site_statistics_equal_pooled_statistics():
    rng = np.random.default_rng(0)
    chunks = [rng.normal(loc=i, scale=i + 1, size=(20 + 7 * i, 4)) for i in range(3)]
    scaler = FeatureStats.combine(FeatureStats.of_rows(chunk) for chunk in chunks).scaler()
    pooled = np.vstack(chunks)
    np.testing.assert_allclose(scaler.mean, pooled.mean(axis=0))
    np.testing.assert_allclose(scaler.scale, pooled.std(axis=0))


def test_constant_feature_does_not_divide_by_zero():
    scaler = FeatureStats.of_rows(np.ones((5, 2))).scaler()
    assert np.isfinite(scaler.transform(np.ones((3, 2)))).all()


def test_test_rows_never_shape_the_scaling(default_sites):
    changed = tuple(
        Site(s.name, s.x_train, s.y_train, s.x_test * 1000 + 5, 1 - s.y_test) for s in default_sites
    )
    np.testing.assert_array_equal(combined_stats(default_sites).scaler().mean, combined_stats(changed).scaler().mean)


def test_site_splits_are_stratified_disjoint_and_reproducible():
    spec = SplitSpec("breast-cancer", 5, "iid", 1.0, 0.25, 7)
    sites = build_sites(spec)
    build_sites.cache_clear()
    again = build_sites(spec)
    for site, twin in zip(sites, again):
        np.testing.assert_array_equal(site.x_test, twin.x_test)
        assert abs(site.y_train.mean() - site.y_test.mean()) < 0.1
    assert sum(len(s.y_train) + len(s.y_test) for s in sites) == load_dataset("breast-cancer").n_rows
