"""Preprocessing fit for a federation: every parameter comes from statistics sites can send and a server can add
up (counts, sums, sums of squares, category counts), or from a public schema that uses no data at all.

Rules, the same for every arm (only where the statistics come from differs):
- numeric columns are standardized; a missing value becomes the mean (0 after scaling) and, where some training
  rows miss it, a 0/1 missing-indicator column is added;
- categorical columns are one-hot encoded over the categories the sites' training rows hold (their union); a
  missing or unseen category is all zeros;
- constant columns (one value, nothing missing) are dropped.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd

from study.data.sources import PublicSchema

_CONSTANT = 1e-12


@dataclass(frozen=True)
class Schema:
    """The columns preprocessing reads, by kind."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...] = ()


@dataclass(frozen=True)
class SiteStats:
    """Sufficient statistics of one site's training rows (or of several sites, combined)."""

    rows: int
    observed: np.ndarray  # per numeric column: rows with a value
    sums: np.ndarray
    sums_of_squares: np.ndarray
    categories: tuple[dict[str, int], ...]  # per categorical column: category -> rows

    @classmethod
    def of_rows(cls, frame: pd.DataFrame, schema: Schema) -> SiteStats:
        values = frame[list(schema.numeric)].to_numpy(dtype=np.float64)
        present = ~np.isnan(values)
        filled = np.where(present, values, 0.0)
        categories = tuple(
            {str(k): int(v) for k, v in frame[column].value_counts(dropna=True).items()} for column in schema.categorical
        )
        return cls(len(frame), present.sum(axis=0), filled.sum(axis=0), np.square(filled).sum(axis=0), categories)

    @classmethod
    def combine(cls, parts: Iterable[SiteStats]) -> SiteStats:
        """What a server computes from the statistics the sites send: no raw row leaves a site."""
        parts = list(parts)
        merged = tuple(sum((Counter(part.categories[i]) for part in parts), Counter()) for i in range(len(parts[0].categories)))
        return cls(
            sum(part.rows for part in parts),
            np.sum([part.observed for part in parts], axis=0),
            np.sum([part.sums for part in parts], axis=0),
            np.sum([part.sums_of_squares for part in parts], axis=0),
            tuple(dict(counter) for counter in merged),
        )

    def to_json(self) -> str:
        return json.dumps({"rows": self.rows, "observed": self.observed.tolist(), "sums": self.sums.tolist(),
                           "sums_of_squares": self.sums_of_squares.tolist(), "categories": list(self.categories)})

    @classmethod
    def from_json(cls, text: str) -> SiteStats:
        raw = json.loads(text)
        return cls(int(raw["rows"]), np.asarray(raw["observed"], dtype=np.float64), np.asarray(raw["sums"]),
                   np.asarray(raw["sums_of_squares"]), tuple(raw["categories"]))


@dataclass(frozen=True, eq=False)
class Preprocessor:
    """Raw feature table -> float32 model input, learned from statistics or from a public schema."""

    numeric: tuple[str, ...]
    center: np.ndarray
    scale: np.ndarray
    keep: np.ndarray  # numeric columns whose (scaled) value is an input
    indicate: np.ndarray  # numeric columns that also get a missing indicator
    categorical: tuple[str, ...]
    vocabularies: tuple[tuple[str, ...], ...]

    @classmethod
    def from_stats(cls, stats: SiteStats, schema: Schema) -> Preprocessor:
        observed = np.maximum(stats.observed, 1)
        mean = np.where(stats.observed > 0, stats.sums / observed, 0.0)
        std = np.sqrt(np.maximum(stats.sums_of_squares / observed - np.square(mean), 0.0))
        missing = stats.rows - stats.observed
        vocabularies = tuple(tuple(sorted(counts)) for counts in stats.categories)
        return cls(
            numeric=schema.numeric,
            center=mean,
            scale=np.where(std > _CONSTANT, std, 1.0),
            keep=(std > _CONSTANT) & (stats.observed > 0),
            indicate=(missing > 0) & (missing < stats.rows),
            categorical=schema.categorical,
            # A column with one category is constant unless some rows miss it (then the one-hot is the indicator).
            vocabularies=tuple(
                vocab if len(vocab) > 1 or (vocab and sum(counts.values()) < stats.rows) else ()
                for vocab, counts in zip(vocabularies, stats.categories)
            ),
        )

    @classmethod
    def from_public(cls, public: PublicSchema, schema: Schema) -> Preprocessor:
        """Maps each public [low, high] onto [-1, 1]; categories and missing indicators from the schema."""
        low, high = (np.array([public.ranges[column][end] for column in schema.numeric], dtype=np.float64) for end in (0, 1))
        half_width = (high - low) / 2
        return cls(
            numeric=schema.numeric,
            center=(low + high) / 2,
            scale=np.where(half_width > 0, half_width, 1.0),
            keep=half_width > 0,
            indicate=np.array([column in public.may_be_missing for column in schema.numeric], dtype=bool),
            categorical=schema.categorical,
            vocabularies=tuple(public.vocabularies[column] for column in schema.categorical),
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Preprocessor) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(self.to_json())

    @property
    def width(self) -> int:
        return int(self.keep.sum() + self.indicate.sum() + sum(len(vocab) for vocab in self.vocabularies))

    @property
    def output_names(self) -> list[str]:
        names = [column for column, kept in zip(self.numeric, self.keep) if kept]
        names += [f"{column} missing" for column, flagged in zip(self.numeric, self.indicate) if flagged]
        names += [f"{column}={category}" for column, vocab in zip(self.categorical, self.vocabularies) for category in vocab]
        return names

    @property
    def dropped(self) -> list[str]:
        """Input columns that give the model nothing (constant in the statistics this was fit on)."""
        numeric = [c for c, kept, flagged in zip(self.numeric, self.keep, self.indicate) if not kept and not flagged]
        return numeric + [c for c, vocab in zip(self.categorical, self.vocabularies) if not vocab]

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        values = frame[list(self.numeric)].to_numpy(dtype=np.float64)
        absent = np.isnan(values)
        scaled = np.where(absent, 0.0, (values - self.center) / self.scale)
        parts = [scaled[:, self.keep], absent[:, self.indicate].astype(np.float64)]
        for column, vocab in zip(self.categorical, self.vocabularies):
            if vocab:
                codes = frame[column].to_numpy(dtype=object)
                parts.append(np.stack([codes == category for category in vocab], axis=1).astype(np.float64))
        return np.hstack(parts).astype(np.float32) if parts else np.zeros((len(frame), 0), np.float32)

    def to_json(self) -> str:
        return json.dumps({
            "numeric": list(self.numeric), "center": self.center.tolist(), "scale": self.scale.tolist(),
            "keep": self.keep.tolist(), "indicate": self.indicate.tolist(), "categorical": list(self.categorical),
            "vocabularies": [list(vocab) for vocab in self.vocabularies],
        })

    @classmethod
    def from_json(cls, text: str) -> Preprocessor:
        raw = json.loads(text)
        return cls(tuple(raw["numeric"]), np.asarray(raw["center"], dtype=np.float64),
                   np.asarray(raw["scale"], dtype=np.float64), np.asarray(raw["keep"], dtype=bool),
                   np.asarray(raw["indicate"], dtype=bool), tuple(raw["categorical"]),
                   tuple(tuple(vocab) for vocab in raw["vocabularies"]))
