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

MAX_NOISE_MULTIPLIER = 10_000.0  # beyond it only the conversion to (epsilon, delta) is left to pay for


@lru_cache(maxsize=512)
def calibrate_noise(*, target_epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str) -> float:
    """A noise multiplier whose whole-run epsilon is at most the target and within 0.01 (or 1%, if less) of it.

    A root search on `epsilon_spent` itself, so calibration and reporting use the same accountant call. An infinite
    target gives noise 0: DP-SGD's clipping and sampling without privacy. Raises ValueError when no noise is
    enough. Cached: sites of equal size share a calibration.
    """
    if math.isinf(target_epsilon):
        return 0.0

    def excess(log_noise: float) -> float:
        """log(epsilon / target): positive means too little noise. Nearly linear in log(noise)."""
        spent = epsilon_spent([(math.exp(log_noise), sample_rate, steps)], delta=delta, accountant=accountant)
        return math.log(spent / target_epsilon)

    tolerance = math.log(target_epsilon / (target_epsilon - 0.01 * min(1.0, target_epsilon)))
    # Bracket in log(noise): `low` gives too much epsilon, `high` at most the target.
    low, high = 0.0, 0.0
    f_low = f_high = excess(0.0)
    while f_high > 0:
        if high >= math.log(MAX_NOISE_MULTIPLIER):
            raise ValueError(f"epsilon {target_epsilon} cannot be certified at delta {delta}")
        low, f_low, high = high, f_high, min(high + math.log(4), math.log(MAX_NOISE_MULTIPLIER))
        f_high = excess(high)
    while f_low <= 0:
        high, f_high, low = low, f_low, low - math.log(4)
        f_low = excess(low)
    # Regula falsi with the Illinois fix (halve the value kept at an end chosen twice in a row); stop at the first
    # point that meets the target within the tolerance. `gap` is the true excess at `high`.
    gap, side = f_high, 0
    while -gap > tolerance and high - low > 1e-6:
        middle = (low * f_high - high * f_low) / (f_high - f_low)
        f_middle = excess(middle)
        if f_middle > 0:
            low, f_low = middle, f_middle
            f_high = f_high / 2 if side == 1 else f_high
            side = 1
        else:
            high, f_high, gap = middle, f_middle, f_middle
            f_low = f_low / 2 if side == -1 else f_low
            side = -1
    return math.exp(high)


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
