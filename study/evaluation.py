"""Test-set evaluation, the same for every arm: each site's test rows, and all test rows together."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from torch import nn

from study.data.preprocess import Scaler
from study.data.sites import Site
from study.metrics import binary_metrics
from study.models import predict_proba

ALL_SITES = "all"

# (site, metric, value)
MetricRow = tuple[str, str, float]


def evaluate_shared_model(
    model: nn.Module, scaler: Scaler, sites: Sequence[Site], *, per_site: bool = True
) -> list[MetricRow]:
    """One model (centralized or federated) on all test rows, and on every site's test rows if `per_site`."""
    probabilities = [predict_proba(model, scaler.transform(site.x_test)).numpy() for site in sites]
    return _evaluate(probabilities, sites, per_site=per_site)


def evaluate_site_models(models: Sequence[nn.Module], scalers: Sequence[Scaler], sites: Sequence[Site]) -> list[MetricRow]:
    """Each site's own model on its own test rows (the local arm); 'all' pools those predictions."""
    return _evaluate(
        [predict_proba(m, s.transform(site.x_test)).numpy() for m, s, site in zip(models, scalers, sites)],
        sites,
        per_site=True,
    )


def _evaluate(probabilities: list[np.ndarray], sites: Sequence[Site], *, per_site: bool) -> list[MetricRow]:
    rows: list[MetricRow] = []
    for site, site_probabilities in zip(sites, probabilities if per_site else []):
        rows += [(site.name, metric, value) for metric, value in binary_metrics(site.y_test, site_probabilities).items()]
    pooled = binary_metrics(np.concatenate([site.y_test for site in sites]), np.concatenate(probabilities))
    rows += [(ALL_SITES, metric, value) for metric, value in pooled.items()]
    return rows
