"""Shared fixtures. Tests that start Flower's simulation engine (Ray) are marked slow; run the suite inside a
loopback-only network namespace as the README shows, because Ray listens on every interface."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from study.config import StudyConfig
from study.data import heart_disease
from study.data.sites import build_sites
from study.pipeline import split_spec


@pytest.fixture(scope="session")
def default_sites():
    config = StudyConfig()
    return build_sites(split_spec(config, 0))


def _uci_rows(rng: np.random.Generator, rows: int, chol_missing: bool = False) -> str:
    """Rows in UCI's processed.*.data format: 14 comma-separated numbers, '?' for missing, num 0-4 last."""
    lines = []
    for _ in range(rows):
        num = int(rng.integers(0, 5))
        values = [rng.integers(29, 78), rng.integers(0, 2), rng.integers(1, 5), rng.integers(94, 200),
                  0 if chol_missing else rng.integers(126, 564), rng.integers(0, 2), rng.integers(0, 3),
                  rng.integers(71, 202), rng.integers(0, 2), round(float(rng.uniform(0, 6)), 1), rng.integers(1, 4),
                  rng.integers(0, 4), rng.choice([3, 6, 7]), num]
        cells = [f"{float(v):.1f}" for v in values]
        if rng.random() < 0.3:
            cells[11] = "?"  # ca is often missing
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


def _write_uci_files(folder: Path, rows: int = 30) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for hospital, name in heart_disease.HOSPITALS.items():
        (folder / name).write_text(_uci_rows(rng, rows, chol_missing=hospital == "Switzerland"))
    return folder


@pytest.fixture
def write_uci_files():
    """Writes four small hospital files in UCI's heart-disease format into a folder (the test's own data)."""
    return _write_uci_files
