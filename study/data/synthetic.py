"""Synthetic hospitals: medical-style cohorts with a known risk model, for controlled heterogeneity and for scale.

Each hospital has its own size (unequal), case mix (covariate shift of age, BMI, blood pressure, smoking and
diagnoses) and prevalence (its baseline risk is solved so that its expected prevalence hits a drawn target). The
risk model is the same everywhere and has non-linear parts (a U-shaped blood-pressure effect, a BMI threshold, an
HbA1c x obesity interaction, a log creatinine term), so an MLP can beat logistic regression. Values are clipped to
documented bounds, which form the public schema the DP arms scale with. Deterministic per seed; vectorised, so a
million rows take seconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from study.data.sources import Dataset, DataSource, PublicSchema

RANGES = {"age": (18.0, 95.0), "sex": (0.0, 1.0), "bmi": (15.0, 60.0), "systolic_bp": (80.0, 220.0),
          "ldl": (1.0, 8.0), "hba1c": (4.0, 14.0), "creatinine": (30.0, 500.0)}
SMOKING = ("never", "former", "current")
DIAGNOSES = ("none", "I10 hypertension", "E11 type 2 diabetes", "J44 COPD", "N18 chronic kidney disease")
MAY_BE_MISSING = ("bmi", "ldl", "hba1c", "creatinine", "smoking")
MIN_HOSPITAL_ROWS = 20


def generate_hospitals(source: DataSource) -> Dataset:
    rng = np.random.default_rng(source.synthetic_seed)
    sizes = hospital_sizes(source.synthetic_rows, source.sites, rng)
    site = np.repeat(np.arange(source.sites), sizes)
    n = len(site)
    shift = source.synthetic_shift * rng.standard_normal((source.sites, 4))[site]  # per hospital, per row
    age = np.clip(rng.normal(58 + 8 * shift[:, 0], 12), *RANGES["age"])
    sex = rng.integers(0, 2, n).astype(np.float64)
    bmi = np.clip(rng.normal(27 + 3 * shift[:, 1], 5), *RANGES["bmi"])
    systolic = np.clip(rng.normal(120 + 0.5 * (age - 58) + 8 * shift[:, 2], 16), *RANGES["systolic_bp"])
    ldl = np.clip(rng.normal(3.3, 0.9, n), *RANGES["ldl"])
    hba1c = np.clip(rng.normal(5.6 + 0.06 * (bmi - 27), 0.8), *RANGES["hba1c"])
    creatinine = np.clip(rng.lognormal(np.log(80) + 0.004 * (age - 58), 0.3), *RANGES["creatinine"])
    smoking = _choose(rng, SMOKING, _softmax(np.stack([np.zeros(n), np.full(n, 0.2), -0.8 + 0.7 * shift[:, 3]], 1)))
    diagnosis = _choose(rng, DIAGNOSES, _softmax(np.stack(
        [np.full(n, 1.0), (systolic - 130) / 20, (hba1c - 6.0), 0.3 * shift[:, 3] - 1.0, np.log(creatinine / 110)], 1)))
    risk = (0.03 * (age - 58) + 0.001 * (age - 58) ** 2 + 0.4 * sex
            + 0.0015 * (systolic - 125) ** 2                            # U-shaped: low and high pressure both harm
            + 0.25 * np.maximum(bmi - 30, 0)                           # only obesity counts
            + 0.9 * (hba1c - 5.6) * (bmi > 30)                          # glycaemia matters with obesity
            + 0.35 * (ldl - 3.3) + 1.2 * np.log(creatinine / 80)
            + np.select([smoking == "current", smoking == "former"], [0.8, 0.3], 0.0)
            + np.select([diagnosis == d for d in DIAGNOSES[1:]], [0.3, 0.6, 0.5, 0.7], 0.0))
    low, high = source.synthetic_prevalence
    prevalence = rng.uniform(low, high, source.sites)
    logits = risk + _baselines(risk, site, prevalence)[site]
    target = (rng.random(n) < 1 / (1 + np.exp(-logits))).astype(np.int64)
    features = pd.DataFrame({"age": age, "sex": sex, "bmi": bmi, "systolic_bp": systolic, "ldl": ldl,
                             "hba1c": hba1c, "creatinine": creatinine})
    for column in MAY_BE_MISSING[:-1]:
        features.loc[rng.random(n) < source.synthetic_missing, column] = np.nan
    smoking_column = smoking.astype(object)
    smoking_column[rng.random(n) < source.synthetic_missing] = None
    features["smoking"] = smoking_column
    features["diagnosis"] = diagnosis.astype(object)
    return Dataset(
        name="synthetic-hospitals",
        features=features,
        target=target,
        description=(
            f"Synthetic hospitals: {n} patients over {source.sites} hospitals of unequal size "
            f"({sizes.min()} to {sizes.max()} patients), prevalence drawn per hospital from {low:g} to {high:g}, "
            f"covariate shift {source.synthetic_shift:g}, {source.synthetic_missing:.0%} of values missing in "
            f"{', '.join(MAY_BE_MISSING)}; a known risk model with non-linear effects; cohort seed "
            f"{source.synthetic_seed}."
        ),
        target_rule="positive = the event the generator's risk model drew",
        categorical=("smoking", "diagnosis"),
        site_labels=np.array([f"hospital {s + 1}" for s in range(source.sites)], dtype=object)[site],
        public=PublicSchema(RANGES, {"smoking": SMOKING, "diagnosis": DIAGNOSES}, MAY_BE_MISSING,
                            source="the generator's documented value bounds and categories"),
    )


def hospital_sizes(total: int, hospitals: int, rng: np.random.Generator) -> np.ndarray:
    """Unequal sizes (log-normal shares) that add up to `total`, each at least MIN_HOSPITAL_ROWS."""
    shares = rng.lognormal(0.0, 0.8, hospitals)
    spare = total - hospitals * MIN_HOSPITAL_ROWS
    sizes = MIN_HOSPITAL_ROWS + np.floor(shares / shares.sum() * spare).astype(np.int64)
    sizes[np.argmax(shares)] += total - sizes.sum()
    return sizes


def _baselines(risk: np.ndarray, site: np.ndarray, prevalence: np.ndarray) -> np.ndarray:
    """Per hospital, the intercept b with mean(sigmoid(risk + b)) = its target prevalence (bisection, vectorised)."""
    low, high = np.full(len(prevalence), -30.0), np.full(len(prevalence), 30.0)
    counts = np.bincount(site, minlength=len(prevalence))
    for _ in range(50):
        middle = (low + high) / 2
        expected = np.bincount(site, weights=1 / (1 + np.exp(-(risk + middle[site]))), minlength=len(prevalence)) / counts
        too_high = expected > prevalence
        high = np.where(too_high, middle, high)
        low = np.where(too_high, low, middle)
    return (low + high) / 2


def _softmax(scores: np.ndarray) -> np.ndarray:
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    return weights / weights.sum(axis=1, keepdims=True)


def _choose(rng: np.random.Generator, options: tuple[str, ...], probabilities: np.ndarray) -> np.ndarray:
    """One option per row, drawn with that row's probabilities (inverse CDF, vectorised)."""
    picks = (rng.random((len(probabilities), 1)) > np.cumsum(probabilities, axis=1)).sum(axis=1)
    return np.asarray(options, dtype=object)[np.minimum(picks, len(options) - 1)]
