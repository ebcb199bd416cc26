"""The UCI heart-disease data of four hospitals, a natural horizontal split: read from UCI's `processed.*.data`
files, downloaded once into the data folder when they are absent and the network is reachable."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

from study.data.sources import Dataset, DataError, PublicSchema

UCI_BASE = "https://archive.ics.uci.edu/ml/machine-learning-databases/heart-disease/"
# Hospital -> UCI file, in UCI's order.
HOSPITALS = {
    "Cleveland": "processed.cleveland.data",
    "Hungary": "processed.hungarian.data",
    "Switzerland": "processed.switzerland.data",
    "Long Beach VA": "processed.va.data",
}
COLUMNS = ["age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang", "oldpeak", "slope", "ca",
           "thal", "num"]
CATEGORICAL = ("cp", "restecg", "slope", "thal")
# A 0 for resting blood pressure or serum cholesterol is not a measurement: UCI's files use it for "not measured"
# (all of Switzerland's cholesterol values are 0).
ZERO_MEANS_MISSING = ("trestbps", "chol")
# The public schema: category codes from UCI's documentation (heart-disease.names), and clinically plausible
# bounds for adults chosen from medical knowledge, not from the data.
VOCABULARIES = {"cp": ("1", "2", "3", "4"), "restecg": ("0", "1", "2"), "slope": ("1", "2", "3"), "thal": ("3", "6", "7")}
RANGES = {"age": (18.0, 100.0), "sex": (0.0, 1.0), "trestbps": (80.0, 220.0), "chol": (100.0, 600.0),
          "fbs": (0.0, 1.0), "thalach": (60.0, 220.0), "exang": (0.0, 1.0), "oldpeak": (-3.0, 7.0), "ca": (0.0, 3.0)}
DOWNLOAD_TIMEOUT = 30.0


def load_heart_disease(data_dir: str) -> Dataset:
    folder = Path(data_dir)
    missing = [name for name in HOSPITALS.values() if not (folder / name).is_file()]
    if missing:
        download(folder, missing)
    frames, digest = [], hashlib.sha256()
    for hospital, file_name in HOSPITALS.items():
        path = folder / file_name
        digest.update(path.read_bytes())
        frame = _read_uci_file(path)
        frames.append(frame.assign(hospital=hospital))
    table = pd.concat(frames, ignore_index=True)
    for column in ZERO_MEANS_MISSING:
        table.loc[table[column] == 0, column] = np.nan
    features = table[COLUMNS[:-1]].astype(object)
    for column in COLUMNS[:-1]:
        if column in CATEGORICAL:
            features[column] = [None if np.isnan(v) else str(int(v)) for v in table[column]]
        else:
            features[column] = table[column].astype(np.float64)
    counts = table.groupby("hospital", sort=False).size()
    return Dataset(
        name="heart-disease",
        features=features,
        target=(table["num"].to_numpy() > 0).astype(np.int64),
        description=(
            "UCI Heart Disease: patients referred for coronary angiography at four hospitals ("
            + ", ".join(f"{name} {count}" for name, count in counts.items())
            + f" patients); 13 clinical features, missing values kept and imputed. Read from {folder}."
        ),
        target_rule="positive = angiographic disease (UCI's num > 0, i.e. any of 1-4)",
        categorical=CATEGORICAL,
        site_labels=table["hospital"].to_numpy(dtype=object),
        public=PublicSchema(
            RANGES, VOCABULARIES, may_be_missing=tuple(c for c in RANGES if c not in ("age", "sex")),
            source="clinically plausible bounds for adults and the category codes of UCI's documentation",
        ),
        fingerprint=digest.hexdigest(),
    )


def _read_uci_file(path: Path) -> pd.DataFrame:
    """One UCI file: comma separated, no header, '?' for missing, 14 columns."""
    try:
        frame = pd.read_csv(path, header=None, names=COLUMNS, na_values="?", skipinitialspace=True)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as error:
        raise DataError(f"--data-dir: {path} is not in UCI's format ({_first_line(error)}); "
                        "delete it so the study downloads it again, or replace it") from None
    numbers = frame.apply(pd.to_numeric, errors="coerce")
    junk = numbers.isna() & frame.notna()
    if len(frame.columns) != len(COLUMNS) or junk.any().any() or frame["num"].isna().any():
        raise DataError(f"--data-dir: {path} is not in UCI's format (14 numeric columns, '?' for missing, "
                        "num 0-4); delete it so the study downloads it again, or replace it")
    return numbers


def download(folder: Path, file_names: list[str]) -> None:
    """Fetch UCI's files once into `folder`; offline, a DataError says which files to put where."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in file_names:
        try:
            with urllib.request.urlopen(UCI_BASE + name, timeout=DOWNLOAD_TIMEOUT) as response:
                payload = response.read()
        except (urllib.error.URLError, OSError) as error:
            _offline(folder, file_names, f"the download failed: {getattr(error, 'reason', error)}")
        partial = folder / f".{name}.partial"
        partial.write_bytes(payload)
        partial.replace(folder / name)


def _offline(folder: Path, file_names: list[str], why: str) -> None:
    raise DataError(f"--dataset heart-disease: {', '.join(file_names)} not found in {folder} and {why}; copy UCI's "
                    f"processed.*.data files into {folder} or point --data-dir at them")


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
