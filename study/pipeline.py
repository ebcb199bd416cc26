"""Run a whole study: every arm for every model and seed on the same sites, into one results table."""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import pandas as pd

from study.arms import SeedData, centralized, local_only
from study.config import ConfigError, StudyConfig
from study.data.partition import MIN_SITE_ROWS
from study.data.sites import SplitError, SplitSpec, build_sites, combined_stats
from study.data.sources import load_dataset
from study.evaluation import ALL_SITES, MetricRow, evaluate_shared_model
from study.federation.protocol import FederatedExperiment
from study.models import build_model
from study.results import StudyResults, make_table
from study.privacy import calibrate_noise
from study.training import TrainSettings, batch_plan

Progress = Callable[[str], None]


def run_study(config: StudyConfig, progress: Progress = lambda message: None) -> StudyResults:
    """Train and evaluate every arm of `config`; returns the long results table (see study.results.COLUMNS)."""
    seeds = preflight(config)
    started = time.perf_counter()
    records: list[dict] = []
    experiments: list[FederatedExperiment] = []
    for data in seeds:
        for model in config.models:
            records += _in_process_arms(config, data, model, progress)
            experiments += federated_experiments(config, split_spec(config, data.seed), model)
    in_process_seconds = time.perf_counter() - started
    records += _federated_arms(config, experiments, progress)
    seconds = {"in_process_arms": in_process_seconds, "total": time.perf_counter() - started}
    seconds["federated_arms"] = seconds["total"] - in_process_seconds
    split = pd.concat([describe_split(data) for data in seeds])
    return StudyResults(config=config, table=make_table(records), split=split, seconds=seconds)


def preflight(config: StudyConfig) -> list[SeedData]:
    """Everything that can fail on the data or the budgets fails here, before any training."""
    n_rows = load_dataset(config.dataset).n_rows
    if n_rows < config.sites * MIN_SITE_ROWS:
        raise ConfigError(
            f"--sites: {config.sites} sites need at least {config.sites * MIN_SITE_ROWS} rows "
            f"({MIN_SITE_ROWS} per site) but {config.dataset} has {n_rows}; use --sites {n_rows // MIN_SITE_ROWS} or fewer"
        )
    seeds = []
    for seed in config.seeds:
        try:
            sites = build_sites(split_spec(config, seed))
        except SplitError as error:
            raise ConfigError(str(error)) from None
        seeds.append(SeedData(seed=seed, sites=sites, scaler=combined_stats(sites).scaler()))
    if config.dp_arms:
        _check_budgets(config, seeds[0])
    return seeds


def _check_budgets(config: StudyConfig, data: SeedData) -> None:
    """An epsilon the accountant cannot certify at this delta (however much noise) is a config error."""
    n_rows = sum(len(site.y_train) for site in data.sites)
    sample_rate, steps = batch_plan(n_rows, config.batch_size, config.total_epochs)
    for epsilon in filter(math.isfinite, config.epsilons):
        try:
            calibrate_noise(target_epsilon=epsilon, delta=config.delta, sample_rate=sample_rate, steps=steps,
                            accountant=config.accountant)
        except ValueError:
            raise ConfigError(
                f"--epsilons: {epsilon:g} is below what the {config.accountant.upper()} accountant can certify at "
                f"delta {config.delta:g}, however much noise is added; use a larger epsilon or a larger --delta"
            ) from None


def split_spec(config: StudyConfig, seed: int) -> SplitSpec:
    return SplitSpec(config.dataset, config.sites, config.split, config.alpha, config.test_fraction, seed)


def describe_split(data: SeedData) -> pd.DataFrame:
    """Rows and positives per site and part, for the report's data-split figure."""
    rows = []
    for site in data.sites:
        for part, labels in (("train", site.y_train), ("test", site.y_test)):
            rows.append({"seed": data.seed, "site": site.name, "part": part, "rows": len(labels), "positives": int(labels.sum())})
    return pd.DataFrame(rows)


def federated_experiments(config: StudyConfig, spec: SplitSpec, model: str) -> list[FederatedExperiment]:
    budgets: list[tuple[str, float | None]] = []
    if "federated" in config.arms:
        budgets.append(("federated", None))
    if "federated-dp" in config.arms:
        budgets += [("federated-dp", epsilon) for epsilon in config.epsilons]
    local = TrainSettings(config.local_epochs, config.batch_size, config.learning_rate, config.max_grad_norm)
    return [
        FederatedExperiment(
            arm=arm, model=model, seed=spec.seed, epsilon=epsilon, split=spec, local=local, rounds=config.rounds,
            delta=config.delta, accountant=config.accountant, mlp_hidden=config.mlp_hidden,
        )
        for arm, epsilon in budgets
    ]


def _records(arm: str, model: str, seed: int, epsilon: float | None, round_: int | None, rows: list[MetricRow]) -> list[dict]:
    eps = np.nan if epsilon is None else epsilon
    return [
        {"arm": arm, "model": model, "seed": seed, "epsilon": eps, "round": round_, "site": site, "metric": metric, "value": value}
        for site, metric, value in rows
    ]


def _in_process_arms(config: StudyConfig, data: SeedData, model: str, progress: Progress) -> list[dict]:
    records: list[dict] = []
    if "centralized" in config.arms:
        progress(f"centralized {model}, seed {data.seed}")
        records += _records("centralized", model, data.seed, None, None, centralized(config, data, model))
    if "local" in config.arms:
        progress(f"local-only {model}, seed {data.seed}")
        records += _records("local", model, data.seed, None, None, local_only(config, data, model))
    if "centralized-dp" in config.arms:
        for epsilon in config.epsilons:
            progress(f"centralized DP-SGD {model}, seed {data.seed}, epsilon {epsilon:g}")
            rows = centralized(config, data, model, epsilon)
            records += _records("centralized-dp", model, data.seed, epsilon, None, rows)
    return records


def _federated_arms(config: StudyConfig, experiments: list[FederatedExperiment], progress: Progress) -> list[dict]:
    if not experiments:
        return []
    from study.federation.simulation import run_federated  # imports Flower and Ray only when needed

    progress(f"starting Flower simulation: {len(experiments)} federated experiments x {config.rounds} rounds")
    records: list[dict] = []
    for outcome in run_federated(experiments, config.sites, progress):
        experiment = outcome.experiment
        sites = build_sites(experiment.split)
        model = build_model(experiment.model, len(outcome.scaler.mean), hidden=experiment.mlp_hidden, seed=experiment.seed)
        for round_, state in sorted(outcome.round_states.items()):
            model.load_state_dict(state)
            # Learning curves need all test rows each round; per-site metrics only for the final model.
            rows = evaluate_shared_model(model, outcome.scaler, sites, per_site=round_ == experiment.rounds)
            records += _records(experiment.arm, experiment.model, experiment.seed, experiment.epsilon, round_, rows)
        if experiment.epsilon is not None:
            rows = [(sites[p].name, "epsilon", eps) for p, eps in sorted(outcome.site_epsilons.items())]
            rows += [(sites[p].name, "noise_multiplier", z) for p, z in sorted(outcome.site_noise.items())]
            rows.append((ALL_SITES, "epsilon", max(outcome.site_epsilons.values())))
            records += _records(experiment.arm, experiment.model, experiment.seed, experiment.epsilon, experiment.rounds, rows)
    return records
