"""Empirical privacy audit from the run itself: canary records, each trained on with probability 1/2 at one known
site, scored by the final model. Gives a membership-inference AUC, the TPR at 1% FPR, and a 95%-confidence lower
bound on epsilon with the one-run audit of Steinke, Nasr and Jagielski (NeurIPS 2023)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from scipy.special import expit
from scipy.stats import binom
from sklearn.metrics import roc_auc_score, roc_curve
from torch import nn

from study.data.sites import Site

CONFIDENCE = 0.95
# Per side, the auditor guesses "in" for the k best-scored canaries and "out" for the k worst, for each of these
# shares of the canaries; the bound is the best over them, Bonferroni-corrected (chosen before seeing any score).
GUESS_SHARES = (1 / 16, 1 / 8, 1 / 4, 1 / 2)
AUDIT_METRICS = ("audit_auc", "audit_tpr_at_1pct_fpr", "audit_epsilon_lower_bound")


@dataclass(frozen=True)
class Canaries:
    """Mislabeled out-of-distribution records in model-input space: every coordinate +1 or -1 (the corners of the
    scaled feature box, which no real patient has) with a random label. Same for every arm of a seed."""

    site: int
    features: np.ndarray
    labels: np.ndarray
    included: np.ndarray

    @classmethod
    def draw(cls, count: int, n_features: int, site: int, seed: int) -> Canaries:
        """Labels and memberships depend only on the seed; arms whose inputs differ in width share them."""
        membership = np.random.default_rng([seed, 0xCA9A, 1])
        corners = np.random.default_rng([seed, 0xCA9A, 2])
        return cls(
            site=site,
            features=corners.choice([-1.0, 1.0], size=(count, n_features)).astype(np.float32),
            labels=membership.integers(0, 2, size=count),
            included=membership.random(count) < 0.5,
        )


def canary_site(sites: Sequence[Site]) -> int:
    """Canaries go to the site with the most training rows, where they disturb the data least."""
    return int(np.argmax([len(site.y_train) for site in sites]))


def canaries_for(sites: Sequence[Site], count: int, seed: int, width: int) -> Canaries | None:
    """The seed's canaries for a model input of `width` columns (None without an audit)."""
    if count == 0:
        return None
    return Canaries.draw(count, width, canary_site(sites), seed)


def with_canaries(
    features: np.ndarray, labels: np.ndarray, site_number: int, canaries: Canaries | None
) -> tuple[np.ndarray, np.ndarray]:
    """A site's scaled training rows, plus the included canaries if it is the canary site."""
    if canaries is None or site_number != canaries.site:
        return features, labels
    return (
        np.vstack([features, canaries.features[canaries.included]]).astype(np.float32),
        np.concatenate([labels, canaries.labels[canaries.included]]),
    )


def audit_model(model: nn.Module, canaries: Canaries, delta: float) -> dict[str, float]:
    """Score every canary by the final model's log-likelihood of its label; members should score higher."""
    model.eval()
    with torch.no_grad():
        logits = model(torch.as_tensor(canaries.features)).squeeze(-1).double().numpy()
    scores = -np.logaddexp(0.0, np.where(canaries.labels == 1, -logits, logits))
    members = canaries.included
    if members.all() or not members.any():  # only possible with a handful of canaries
        return dict.fromkeys(AUDIT_METRICS, float("nan"))
    false_positive_rate, true_positive_rate, _ = roc_curve(members, scores)
    return {
        "audit_auc": float(roc_auc_score(members, scores)),
        "audit_tpr_at_1pct_fpr": float(true_positive_rate[false_positive_rate <= 0.01].max()),
        "audit_epsilon_lower_bound": epsilon_lower_bound(scores, members, delta),
    }


def epsilon_lower_bound(scores: np.ndarray, members: np.ndarray, delta: float) -> float:
    """The largest epsilon that (epsilon, delta)-DP training is refuted at, with 95% confidence; 0 if none."""
    order = np.argsort(-scores, kind="stable")
    ranked = members[order]
    count = len(ranked)
    sizes = sorted({max(1, int(share * count)) for share in GUESS_SHARES if 2 * max(1, int(share * count)) <= count})
    level = (1 - CONFIDENCE) / len(sizes)
    bounds = [0.0]
    for k in sizes:
        correct = int(ranked[:k].sum() + (~ranked[-k:]).sum())
        bounds.append(_refuted_epsilon(count, 2 * k, correct, delta, level))
    return max(bounds)


def _refuted_epsilon(count: int, guesses: int, correct: int, delta: float, level: float) -> float:
    """Bisection for the largest epsilon whose p-value for `correct` right guesses is still below `level`."""
    if _p_value(count, guesses, correct, 0.0, delta) >= level:
        return 0.0
    low, high = 0.0, 1.0
    while _p_value(count, guesses, correct, high, delta) < level:
        low, high = high, 2 * high
    while high - low > 1e-4:
        middle = (low + high) / 2
        low, high = (middle, high) if _p_value(count, guesses, correct, middle, delta) < level else (low, middle)
    return low


def _p_value(count: int, guesses: int, correct: int, epsilon: float, delta: float) -> float:
    """P[at least `correct` right guesses] if training were (epsilon, delta)-DP (Steinke et al. 2023, Thm 5.2).

    Under pure epsilon-DP the right guesses are dominated by Binomial(guesses, e^eps / (1 + e^eps)); delta adds
    2 * count * delta times the largest average probability of falling short by i guesses.
    """
    success = float(expit(epsilon))
    tail = float(binom.sf(correct - 1, guesses, success))
    if delta == 0 or correct == 0:
        return min(tail, 1.0)
    below = binom.pmf(np.arange(correct - 1, -1, -1), guesses, success)  # P[correct - i] for i = 1..correct
    shortfall = float(np.max(np.cumsum(below) / np.arange(1, correct + 1)))
    return min(tail + 2 * count * delta * shortfall, 1.0)
