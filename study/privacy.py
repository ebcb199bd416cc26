"""Privacy accounting in one place: noise calibration for a whole run and epsilon from what was really used."""

from __future__ import annotations

import math
import warnings
from functools import lru_cache
from typing import Sequence

from opacus.accountants import create_accountant
from opacus.accountants.utils import get_noise_multiplier

# One accountant history entry, as Opacus keeps it: (noise multiplier, sampling rate, number of steps).
HistoryEntry = tuple[float, float, int]

ACCOUNTANT_NAMES = {"prv": "PRV (Gopi et al. 2021)", "rdp": "RDP (Mironov 2017)"}


@lru_cache(maxsize=256)
def calibrate_noise(*, target_epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str) -> float:
    """The smallest noise multiplier (to 0.01 in epsilon) whose whole-run epsilon stays at or below the target.

    An infinite target gives noise 0: DP-SGD's clipping and sampling without privacy. Cached: sites of equal
    size share a calibration.
    """
    if math.isinf(target_epsilon):
        return 0.0
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Optimal order is the (largest|smallest) alpha.*")
        return float(
            get_noise_multiplier(
                target_epsilon=target_epsilon,
                target_delta=delta,
                sample_rate=sample_rate,
                steps=steps,
                accountant=accountant,
                epsilon_tolerance=0.01,
            )
        )


def epsilon_spent(history: Sequence[HistoryEntry], *, delta: float, accountant: str) -> float:
    """Epsilon of the composition of every entry in the history, at the given delta."""
    if not history:
        return 0.0
    if any(noise == 0 for noise, _, steps in history if steps > 0):
        return math.inf
    tracker = create_accountant(mechanism=accountant)
    tracker.history = merge_history(history)
    with warnings.catch_warnings():
        # RDP says when its best order is at the end of the range it tries: the bound is then valid but loose.
        warnings.filterwarnings("ignore", message=".*Optimal order is the (largest|smallest) alpha.*")
        return float(tracker.get_epsilon(delta=delta))


def merge_history(history: Sequence[HistoryEntry]) -> list[HistoryEntry]:
    """Entries with the same noise and sampling rate, composed: identical epsilon, far less PRV work."""
    steps: dict[tuple[float, float], int] = {}
    for noise, rate, count in history:
        key = (float(noise), float(rate))
        steps[key] = steps.get(key, 0) + int(count)
    return [(noise, rate, count) for (noise, rate), count in steps.items()]
