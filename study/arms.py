"""The arms trained in this process: centralized (optionally DP-SGD) and local-only. Federated arms: see federation/."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from study.audit import Canaries, audit_model, canaries_for, with_canaries
from study.config import StudyConfig
from study.data.preprocess import Preprocessor, Schema
from study.data.sites import Site, site_stats
from study.evaluation import ALL_SITES, Evaluated, MetricRow, evaluate_shared_model, evaluate_site_predictions
from study.models import build_model, predict_proba
from study.privacy import calibrate_noise, epsilon_spent
from study.training import PrivateTraining, TrainSettings, batch_plan, fit


@dataclass(frozen=True)
class SeedData:
    """The sites of one seed; the preprocessing the federation's combined statistics give (non-private arms) and
    the one from the public schema (DP arms: the sites' exact statistics are not released to them)."""

    seed: int
    sites: tuple[Site, ...]
    schema: Schema
    preprocessor: Preprocessor
    public_preprocessor: Preprocessor | None
    contrast: SeedData | None = None  # the same seed's IID split, for the contrast arms


def train_settings(config: StudyConfig, epochs: int) -> TrainSettings:
    """The optimisation settings every arm shares, for a number of passes over the data."""
    return TrainSettings(epochs, config.batch_size, config.learning_rate, config.max_grad_norm)


def whole_run_settings(config: StudyConfig) -> TrainSettings:
    """Centralized and local training see each record as often as federated training does (rounds x local epochs)."""
    return train_settings(config, config.total_epochs)


def centralized(config: StudyConfig, data: SeedData, model_name: str, epsilon: float | None = None) -> Evaluated:
    """Train on the pooled training rows of all sites (with the canary site's canaries): 'one site that has
    everything'."""
    preprocessor = data.preprocessor if epsilon is None else data.public_preprocessor
    assert preprocessor is not None, "preflight refuses DP arms on data without a public schema"
    canaries = canaries_for(data.sites, config.canaries, data.seed, preprocessor.width)
    parts = [with_canaries(preprocessor.transform(site.x_train), site.y_train, number, canaries)
             for number, site in enumerate(data.sites)]
    features = np.vstack([part[0] for part in parts])
    labels = np.concatenate([part[1] for part in parts])
    model = build_model(model_name, preprocessor.width, hidden=config.mlp_hidden, seed=data.seed)
    settings = whole_run_settings(config)
    privacy = None
    if epsilon is not None:
        sample_rate, steps = batch_plan(len(labels), settings.batch_size, settings.epochs)
        noise = calibrate_noise(
            target_epsilon=epsilon, delta=config.delta, sample_rate=sample_rate, steps=steps, accountant=config.accountant
        )
        privacy = PrivateTraining(noise_multiplier=noise, accountant=config.accountant)
    report = fit(model, features, labels, settings, seed=data.seed, privacy=privacy)
    evaluated = evaluate_shared_model(model, preprocessor, data.sites)
    evaluated.rows += audit_rows(model, canaries, config.delta)
    if privacy is not None:
        spent = epsilon_spent(report.privacy_history, delta=config.delta, accountant=config.accountant)
        evaluated.rows += [(ALL_SITES, "epsilon", spent), (ALL_SITES, "noise_multiplier", privacy.noise_multiplier)]
    return evaluated


def local_only(config: StudyConfig, data: SeedData, model_name: str) -> Evaluated:
    """Each site trains alone, preprocessed with its own statistics: what a hospital gets without collaborating.

    A site whose training rows hold one class (or whose every column is constant) cannot fit the model; it falls
    back to predicting its own training prevalence (Laplace-smoothed), marked by a `local_fallback` row."""
    settings = whole_run_settings(config)
    probabilities, rows, audited = [], [], []
    for number, site in enumerate(data.sites):
        preprocessor = Preprocessor.from_stats(site_stats(site, data.schema), data.schema)
        rows.append((site.name, "local_fallback", float(site.single_class or preprocessor.width == 0)))
        if rows[-1][2]:
            prevalence = (site.y_train.sum() + 1) / (len(site.y_train) + 2)
            probabilities.append(np.full(len(site.y_test), prevalence, dtype=np.float32))
            continue
        canaries = canaries_for(data.sites, config.canaries, data.seed, preprocessor.width)
        model = build_model(model_name, preprocessor.width, hidden=config.mlp_hidden, seed=data.seed)
        features, labels = with_canaries(preprocessor.transform(site.x_train), site.y_train, number, canaries)
        fit(model, features, labels, settings, seed=data.seed * 1_000_003 + number)
        probabilities.append(predict_proba(model, preprocessor.transform(site.x_test)).numpy())
        if canaries is not None and canaries.site == number:
            audited = audit_rows(model, canaries, config.delta)
    evaluated = evaluate_site_predictions(probabilities, data.sites)
    evaluated.rows += rows + audited
    return evaluated


def audit_rows(model: nn.Module, canaries: Canaries | None, delta: float) -> list[MetricRow]:
    """The privacy audit of a final model, as result rows (none when the study runs without canaries)."""
    if canaries is None:
        return []
    return [(ALL_SITES, metric, value) for metric, value in audit_model(model, canaries, delta).items()]
