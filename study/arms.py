"""The arms trained in this process: centralized (optionally DP-SGD) and local-only. Federated arms: see federation/."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from study.config import StudyConfig
from study.data.preprocess import Scaler
from study.data.sites import Site
from study.evaluation import ALL_SITES, MetricRow, evaluate_shared_model, evaluate_site_models
from study.models import build_model
from study.privacy import calibrate_noise, epsilon_spent
from study.training import PrivateTraining, TrainSettings, batch_plan, fit


@dataclass(frozen=True)
class SeedData:
    """The sites of one seed and the scaler the federation's combined statistics give."""

    seed: int
    sites: tuple[Site, ...]
    scaler: Scaler


def train_settings(config: StudyConfig, epochs: int) -> TrainSettings:
    """The optimisation settings every arm shares, for a number of passes over the data."""
    return TrainSettings(epochs, config.batch_size, config.learning_rate, config.max_grad_norm)


def whole_run_settings(config: StudyConfig) -> TrainSettings:
    """Centralized and local training see each record as often as federated training does (rounds x local epochs)."""
    return train_settings(config, config.total_epochs)


def centralized(config: StudyConfig, data: SeedData, model_name: str, epsilon: float | None = None) -> list[MetricRow]:
    """Train on the pooled training rows of all sites: 'one site that has everything'."""
    features = np.vstack([data.scaler.transform(site.x_train) for site in data.sites])
    labels = np.concatenate([site.y_train for site in data.sites])
    model = build_model(model_name, features.shape[1], hidden=config.mlp_hidden, seed=data.seed)
    settings = whole_run_settings(config)
    privacy = None
    if epsilon is not None:
        sample_rate, steps = batch_plan(len(labels), settings.batch_size, settings.epochs)
        noise = calibrate_noise(
            target_epsilon=epsilon, delta=config.delta, sample_rate=sample_rate, steps=steps, accountant=config.accountant
        )
        privacy = PrivateTraining(noise_multiplier=noise, accountant=config.accountant)
    report = fit(model, features, labels, settings, seed=data.seed, privacy=privacy)
    rows = evaluate_shared_model(model, data.scaler, data.sites)
    if privacy is not None:
        spent = epsilon_spent(report.privacy_history, delta=config.delta, accountant=config.accountant)
        rows += [(ALL_SITES, "epsilon", spent), (ALL_SITES, "noise_multiplier", privacy.noise_multiplier)]
    return rows


def local_only(config: StudyConfig, data: SeedData, model_name: str) -> list[MetricRow]:
    """Each site trains alone, scaled with its own statistics: what a hospital gets without collaborating."""
    settings = whole_run_settings(config)
    models, scalers = [], []
    for number, site in enumerate(data.sites):
        scaler = site.train_stats().scaler()
        model = build_model(model_name, site.x_train.shape[1], hidden=config.mlp_hidden, seed=data.seed)
        fit(model, scaler.transform(site.x_train), site.y_train, settings, seed=data.seed * 1_000_003 + number)
        models.append(model)
        scalers.append(scaler)
    return evaluate_site_models(models, scalers, data.sites)
