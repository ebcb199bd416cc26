"""Feature scaling from statistics a federation can combine: counts, sums and sums of squares per site."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np


@dataclass(frozen=True)
class FeatureStats:
    """Sufficient statistics of one site's training rows (or of several sites, combined)."""

    count: int
    sums: np.ndarray
    sums_of_squares: np.ndarray

    @classmethod
    def of_rows(cls, features: np.ndarray) -> FeatureStats:
        return cls(len(features), features.sum(axis=0), np.square(features).sum(axis=0))

    @classmethod
    def combine(cls, parts: Iterable[FeatureStats]) -> FeatureStats:
        """What a server computes from the statistics the sites send: no raw row leaves a site."""
        parts = list(parts)
        return cls(
            sum(part.count for part in parts),
            np.sum([part.sums for part in parts], axis=0),
            np.sum([part.sums_of_squares for part in parts], axis=0),
        )

    def scaler(self) -> Scaler:
        mean = self.sums / self.count
        variance = np.maximum(self.sums_of_squares / self.count - np.square(mean), 0.0)
        scale = np.sqrt(variance)
        return Scaler(mean=mean, scale=np.where(scale > 1e-12, scale, 1.0))


@dataclass(frozen=True)
class Scaler:
    """z = (x - mean) / scale: standardization, or a fixed map of public ranges onto [-1, 1]."""

    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def from_ranges(cls, low: np.ndarray, high: np.ndarray) -> Scaler:
        """Maps [low, high] onto [-1, 1] using no data at all: what DP arms use, so scaling reveals nothing."""
        half_width = (high - low) / 2
        return cls(mean=(low + high) / 2, scale=np.where(half_width > 0, half_width, 1.0))

    def transform(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.mean) / self.scale).astype(np.float32)
