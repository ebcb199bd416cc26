"""The study's test metrics, the same for every arm."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import accuracy_score, brier_score_loss, f1_score, roc_auc_score

METRICS = ("auc", "accuracy", "f1", "brier")


def binary_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """ROC AUC (NaN when only one class is present), accuracy and F1 at 0.5 (NaN when undefined), Brier score.

    A model whose training diverged (non-finite probabilities) gets NaN for every metric rather than a crash.
    """
    if not np.all(np.isfinite(probabilities)):
        return dict.fromkeys(METRICS, math.nan)
    predictions = (probabilities >= 0.5).astype(int)
    auc = roc_auc_score(labels, probabilities) if len(np.unique(labels)) == 2 else math.nan
    return {
        "auc": float(auc),
        "accuracy": float(accuracy_score(labels, predictions)),
        "f1": float(f1_score(labels, predictions, zero_division=np.nan)),
        "brier": float(brier_score_loss(labels, probabilities, labels=[0, 1])),
    }
