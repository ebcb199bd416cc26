"""Test-set evaluation, the same for every arm: each site's test rows, and all test rows together."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
from torch import nn

from study.data.preprocess import Preprocessor
from study.data.sites import Site
from study.metrics import binary_metrics
from study.models import predict_proba

ALL_SITES = "all"

# (site, metric, value)
MetricRow = tuple[str, str, float]
# (site, true label, predicted probability) of one test row
PredictionRow = tuple[str, int, float]


@dataclass
class Evaluated:
    """What evaluating a final model gives: metric rows, and its prediction for every test row (for ROC and
    calibration curves)."""

    rows: list[MetricRow]
    predictions: list[PredictionRow] = field(default_factory=list)


def evaluate_shared_model(
    model: nn.Module, preprocessor: Preprocessor, sites: Sequence[Site], *, per_site: bool = True
) -> Evaluated:
    """One model (centralized or federated) on all test rows, and on every site's test rows if `per_site`."""
    probabilities = [predict_proba(model, preprocessor.transform(site.x_test)).numpy() for site in sites]
    return _evaluate(probabilities, sites, per_site=per_site)


def evaluate_site_predictions(probabilities: list[np.ndarray], sites: Sequence[Site]) -> Evaluated:
    """Each site's own predictions for its own test rows (the local arm); 'all' pools them."""
    return _evaluate(probabilities, sites, per_site=True)


def _evaluate(probabilities: list[np.ndarray], sites: Sequence[Site], *, per_site: bool) -> Evaluated:
    return evaluate_predictions([site.name for site in sites], [site.y_test for site in sites], probabilities,
                                per_site=per_site)


def evaluate_predictions(names: Sequence[str], labels: Sequence[np.ndarray], probabilities: Sequence[np.ndarray], *,
                         per_site: bool) -> Evaluated:
    """Metrics of predictions for each site's test rows (given by the sites themselves in a deployment)."""
    rows: list[MetricRow] = []
    for name, site_labels, site_probabilities in (zip(names, labels, probabilities) if per_site else []):
        rows += [(name, metric, value) for metric, value in binary_metrics(site_labels, site_probabilities).items()]
    pooled = binary_metrics(np.concatenate(labels), np.concatenate(probabilities))
    rows += [(ALL_SITES, metric, value) for metric, value in pooled.items()]
    predictions = [
        (name, int(label), float(probability))
        for name, site_labels, site_probabilities in (zip(names, labels, probabilities) if per_site else [])
        for label, probability in zip(site_labels, site_probabilities)
    ]
    return Evaluated(rows, predictions)
