"""Privacy accounting in one place: noise calibration for a whole run and epsilon from what was really used."""

from __future__ import annotations

import math
import warnings

import numpy as np
from functools import lru_cache
from typing import Sequence

from opacus.accountants import RDPAccountant, create_accountant

# One accountant history entry, as Opacus keeps it: (noise multiplier, sampling rate, number of steps).
HistoryEntry = tuple[float, float, int]

ACCOUNTANT_NAMES = {"prv": "PRV (Gopi et al. 2021)", "rdp": "RDP (Mironov 2017)"}

# Opacus' RDP orders stop at 63, which cannot certify an epsilon below about 0.15 at delta 1e-5. Small budgets
# need higher orders; they are tried only when the best order is the last default one (a tighter bound, never a
# looser one, and the pinned reference values of the default orders stay as they are).
HIGH_RDP_ORDERS = [64, 80, 96, 128, 160, 192, 256, 320, 384, 512, 640, 768, 1024]

MAX_NOISE_MULTIPLIER = 10_000.0


@lru_cache(maxsize=512)
def calibrate_noise(*, target_epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str) -> float:
    """The smallest noise multiplier (to 0.01 or 1% of the target, whichever is less) whose whole-run epsilon stays at or below the target.

    Bisection on `epsilon_spent` itself, so calibration and reporting use the same accountant call. An infinite
    target gives noise 0: DP-SGD's clipping and sampling without privacy. Raises ValueError when no noise is
    enough. Cached: sites of equal size share a calibration.
    """
    if math.isinf(target_epsilon):
        return 0.0

    def spent(noise: float) -> float:
        return epsilon_spent([(noise, sample_rate, steps)], delta=delta, accountant=accountant)

    tolerance = 0.01 * min(1.0, target_epsilon)
    low, high = 0.0, 1.0
    while spent(high) > target_epsilon:
        low, high = high, 2 * high
        if high > MAX_NOISE_MULTIPLIER:
            raise ValueError(f"epsilon {target_epsilon} cannot be certified at delta {delta}")
    while high - low > 1e-5 * high:
        middle = (low + high) / 2
        epsilon = spent(middle)
        if epsilon <= target_epsilon:
            high = middle
            if target_epsilon - epsilon <= tolerance:
                break
        else:
            low = middle
    return high


def epsilon_spent(history: Sequence[HistoryEntry], *, delta: float, accountant: str) -> float:
    """Epsilon of the composition of every entry in the history, at the given delta."""
    if not history:
        return 0.0
    if any(noise == 0 for noise, _, steps in history if steps > 0):
        return math.inf
    tracker = create_accountant(mechanism=accountant)
    tracker.history = merge_history(history)
    with warnings.catch_warnings(), np.errstate(divide="ignore"):
        # PRV takes log(0) on the way for a sampling rate of 1 (harmless); RDP says when its best order is at the end of the range it tries; the higher orders below handle it.
        warnings.filterwarnings("ignore", message=".*Optimal order is the (largest|smallest) alpha.*")
        if not isinstance(tracker, RDPAccountant):
            return float(tracker.get_epsilon(delta=delta))
        epsilon, best_order = tracker.get_privacy_spent(delta=delta)
        if best_order >= max(RDPAccountant.DEFAULT_ALPHAS):
            epsilon, _ = tracker.get_privacy_spent(delta=delta, alphas=RDPAccountant.DEFAULT_ALPHAS + HIGH_RDP_ORDERS)
        return float(epsilon)


def merge_history(history: Sequence[HistoryEntry]) -> list[HistoryEntry]:
    """Entries with the same noise and sampling rate, composed: identical epsilon, far less PRV work."""
    steps: dict[tuple[float, float], int] = {}
    for noise, rate, count in history:
        key = (float(noise), float(rate))
        steps[key] = steps.get(key, 0) + int(count)
    return [(noise, rate, count) for (noise, rate), count in steps.items()]
