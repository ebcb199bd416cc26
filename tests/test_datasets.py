"""The UCI heart-disease hospitals (read, downloaded once, or a clear error) and the synthetic hospital generator."""

import io
import urllib.error

import numpy as np
import pytest

from study.arms import centralized
from study.config import StudyConfig
from study.data import heart_disease
from study.data.sources import DataError, DataSource, load_dataset
from study.data.synthetic import MIN_HOSPITAL_ROWS
from study.pipeline import seed_data
from study.run import main


def test_heart_disease_reads_four_hospitals_in_ucis_format(tmp_path, write_uci_files):
    folder = write_uci_files(tmp_path / "hd")
    dataset = load_dataset(DataSource(dataset="heart-disease", data_dir=str(folder)))
    assert dataset.site_names == ("Cleveland", "Hungary", "Switzerland", "Long Beach VA")
    assert dataset.n_rows == 120 and dataset.features.shape[1] == 13
    assert dataset.features["ca"].isna().any()  # '?' is missing
    switzerland = dataset.site_labels == "Switzerland"
    assert dataset.features.loc[switzerland, "chol"].isna().all()  # a 0 cholesterol is "not measured"
    assert set(dataset.features["cp"].dropna()) <= {"1", "2", "3", "4"}
    assert dataset.target_rule.startswith("positive = angiographic disease")


def test_heart_disease_downloads_missing_files_once(tmp_path, monkeypatch, write_uci_files):
    source = write_uci_files(tmp_path / "source")
    fetched = []

    def fake_urlopen(url, timeout):
        fetched.append(url)
        return io.BytesIO((source / url.rsplit("/", 1)[1]).read_bytes())

    monkeypatch.setattr(heart_disease.urllib.request, "urlopen", fake_urlopen)
    target = tmp_path / "empty"
    load_dataset(DataSource(dataset="heart-disease", data_dir=str(target)))
    assert sorted(url.rsplit("/", 1)[1] for url in fetched) == sorted(heart_disease.HOSPITALS.values())
    assert all(url.startswith(heart_disease.UCI_BASE) for url in fetched)
    assert sorted(p.name for p in target.iterdir()) == sorted(heart_disease.HOSPITALS.values())


def test_heart_disease_offline_names_the_folder_to_fill(tmp_path, monkeypatch, capsys):
    def offline(url, timeout):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(heart_disease.urllib.request, "urlopen", offline)
    folder = tmp_path / "nothing-here"
    assert main(["--dataset", "heart-disease", "--data-dir", str(folder), "--output", str(tmp_path / "r")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and str(folder) in error and "processed.cleveland.data" in error


def test_a_malformed_uci_file_is_named(tmp_path, write_uci_files):
    folder = write_uci_files(tmp_path / "hd")
    (folder / "processed.va.data").write_text("63.0,1.0,abc\n")
    with pytest.raises(DataError, match="processed.va.data is not in UCI's format"):
        load_dataset(DataSource(dataset="heart-disease", data_dir=str(folder)))


def test_heart_disease_study_runs_on_the_natural_split(tmp_path, write_uci_files):
    folder = write_uci_files(tmp_path / "hd")
    reports = tmp_path / "reports"
    code = main(["--dataset", "heart-disease", "--data-dir", str(folder), "--arms", "centralized", "local",
                 "centralized-dp", "--epsilon", "3", "--models", "lr", "--seeds", "0", "--rounds", "2",
                 "--local-epochs", "1", "--quiet", "--output", str(reports)])
    assert code == 0
    html = next(p for p in reports.iterdir() if p.is_dir() and not p.name.startswith(".")).joinpath("index.html")
    text = " ".join(html.read_text().split())
    assert "its own 4 hospitals (Cleveland, Hungary, Switzerland, Long Beach VA)" in text


def _synthetic(**changes) -> DataSource:
    return DataSource(dataset="synthetic-hospitals", **changes)


def test_synthetic_hospitals_are_deterministic_unequal_and_hit_their_prevalence():
    first = load_dataset(_synthetic(sites=6, synthetic_rows=20_000, synthetic_seed=3))
    load_dataset.cache_clear()
    again = load_dataset(_synthetic(sites=6, synthetic_rows=20_000, synthetic_seed=3))
    assert first.features.equals(again.features) and np.array_equal(first.target, again.target)
    other = load_dataset(_synthetic(sites=6, synthetic_rows=20_000, synthetic_seed=4))
    assert not np.array_equal(first.target, other.target)
    sizes = np.unique(first.site_labels, return_counts=True)[1]
    assert first.n_rows == 20_000 and sizes.min() >= MIN_HOSPITAL_ROWS and sizes.max() > 2 * sizes.min()
    prevalence = [first.target[first.site_labels == name].mean() for name in first.site_names]
    assert 0.05 < min(prevalence) and max(prevalence) < 0.45
    assert 0.07 < first.features["ldl"].isna().mean() < 0.13  # the default 10% missing
    assert set(first.features["smoking"].dropna()) == {"never", "former", "current"}


def test_synthetic_covariate_shift_moves_the_hospitals_apart():
    def spread(shift: float) -> float:
        data = load_dataset(_synthetic(sites=8, synthetic_rows=8000, synthetic_shift=shift))
        return float(np.std([data.features["age"][data.site_labels == s].mean() for s in data.site_names]))

    assert spread(2.0) > 5 * spread(0.0)


def test_synthetic_risk_is_non_linear_enough_for_an_mlp_to_beat_logistic_regression():
    config = StudyConfig(dataset="synthetic-hospitals", synthetic_rows=6000, canaries=0, rounds=10, local_epochs=2)
    data = seed_data(config, 0)

    def auc(model: str) -> float:
        return next(v for site, metric, v in centralized(config, data, model).rows if site == "all" and metric == "auc")

    assert auc("mlp") > auc("lr") + 0.02
