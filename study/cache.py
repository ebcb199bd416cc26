"""Result cache: each (arm, model, seed, budget) result is stored under a key of everything it depends on, so a
rerun with new budgets trains only what is new."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from study.config import StudyConfig
from study.data.sources import load_dataset, source_of
from study.provenance import versions
from study.results import UnitResult
from study.rundir import write_text_atomically

# Config fields every result depends on; DP results also depend on the privacy fields.
_SHARED_FIELDS = ("dataset", "target", "positive", "positive_above", "site_column", "synthetic_rows",
                  "synthetic_shift", "synthetic_missing", "synthetic_prevalence", "synthetic_seed", "sites", "split",
                  "alpha", "test_fraction", "rounds", "local_epochs", "batch_size", "learning_rate", "mlp_hidden",
                  "canaries", "proximal_mu", "server_learning_rate")
_PRIVACY_FIELDS = ("delta", "accountant", "max_grad_norm", "site_clip_norm", "client_clipping")


@dataclass(frozen=True)
class Unit:
    """One result of the study: an arm trained for one model and seed (and, for DP arms, one target epsilon)."""

    arm: str
    model: str
    seed: int
    epsilon: float | None = None
    sites: int | None = None  # the scaling sweep's number of sites; None: the study's own sites

    @property
    def private(self) -> bool:
        return self.epsilon is not None


@lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """Changes whenever the study's code or the versions of the libraries that train and account change."""
    digest = hashlib.sha256(json.dumps(versions(), sort_keys=True).encode())
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        digest.update(path.relative_to(Path(__file__).parent).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def unit_key(config: StudyConfig, unit: Unit) -> str:
    fields = _SHARED_FIELDS + (_PRIVACY_FIELDS if unit.private else ())
    described = {
        "unit": [unit.arm, unit.model, unit.seed, None if unit.epsilon is None else repr(unit.epsilon)]
        + ([] if unit.sites is None else [unit.sites]),
        "config": {name: getattr(config, name) for name in fields},
        "data": load_dataset(source_of(config)).fingerprint,  # the files' content, wherever they are
        "code": code_fingerprint(),
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:32]


class ResultCache:
    """Records of finished units as JSON files in one folder; without a folder it stores nothing."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def load(self, config: StudyConfig, unit: Unit) -> UnitResult | None:
        if self.folder is None:
            return None
        path = self.folder / f"{unit_key(config, unit)}.json"
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            return UnitResult(stored["records"], stored["predictions"])
        except (FileNotFoundError, json.JSONDecodeError, TypeError, KeyError):
            return None

    def store(self, config: StudyConfig, unit: Unit, result: UnitResult) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        stored = {"records": result.records, "predictions": result.predictions}
        write_text_atomically(self.folder / f"{unit_key(config, unit)}.json", json.dumps(stored))
