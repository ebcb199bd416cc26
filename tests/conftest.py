"""Shared fixtures. Tests that start Flower's simulation engine (Ray) are marked slow; run the suite inside a
loopback-only network namespace as the README shows, because Ray listens on every interface."""

from __future__ import annotations

import pytest

from study.config import StudyConfig
from study.data.sites import build_sites
from study.pipeline import split_spec


@pytest.fixture(scope="session")
def default_sites():
    config = StudyConfig()
    return build_sites(split_spec(config, 0))
