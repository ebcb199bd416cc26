"""Run a whole study: every arm for every model and seed on the same sites, into one results table."""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np
import pandas as pd
import torch

from study.arms import SeedData, audit_rows, centralized, local_only, train_settings
from study.audit import canaries_for, canary_site
from study.background import BackgroundWork
from study.cache import ResultCache, Unit
from study.config import (CONTRAST_ARMS, DP_ARMS, FEDERATED_ARMS, SCALING_ARM, SCALING_MAX_ROWS,
                          SCALING_MIN_ROWS_PER_SITE, SCALING_ROUNDS, SCALING_SITES, STRATEGY_ARMS, ConfigError,
                          StudyConfig, strategy_of)
from study.data.partition import MIN_SITE_ROWS
from study.data.sites import (SplitError, SplitSpec, build_sites, federation_preprocessor, public_preprocessor,
                              resolve_split, schema_of)
from study.data.sources import load_dataset, source_of
from study.data.summary import describe_data
from study.evaluation import ALL_SITES, Evaluated, MetricRow, PredictionRow, evaluate_predictions, evaluate_shared_model
from study.federation.protocol import FederatedExperiment
from study.models import build_model
from study.results import StudyResults, UnitResult, format_budget, make_predictions, make_table
from study.privacy import MAX_NOISE_MULTIPLIER, epsilon_spent
from study.training import batch_plan

if TYPE_CHECKING:
    from study.federation.server_app import FederatedOutcome

Progress = Callable[[str], None]


def run_study(
    config: StudyConfig, progress: Progress = lambda message: None, *, cache_dir: Path | None = None,
    ray_address: str | None = None,
) -> StudyResults:
    """Train and evaluate every arm of `config`; returns the long results table (see study.results.COLUMNS).

    With `cache_dir`, results already computed for the same settings (and code) are reused, not retrained. With
    `ray_address`, the federated arms run on that existing Ray cluster (how it runs never changes the numbers).
    """
    seeds = preflight(config)
    cache = ResultCache(cache_dir)
    started = time.perf_counter()
    units = plan_units(config)
    done = {unit: records for unit in units if (records := cache.load(config, unit)) is not None}
    reused = len(done)
    if reused:
        progress(f"reusing {reused} cached results; training {len(units) - reused}")
    federated_units = [u for u in units if _federated(u) and u not in done]
    # In-process arms train in a second thread while the federated arms run: the simulation spends most of its
    # wall time waiting on messages, so a core is free for them. They start once the simulated sites have loaded
    # torch, Opacus and Flower, which is what keeps both cores busy until then.
    sites_ready = threading.Event()
    if not federated_units:
        sites_ready.set()

    def train_in_process() -> float:
        sites_ready.wait()
        return _train_in_process_arms(config, seeds, units, done, cache, progress)

    in_process = BackgroundWork(train_in_process, name="in-process-arms")
    for unit, result in _federated_arms(config, federated_units, progress, ray_address, sites_ready.set):
        done[unit] = result
        cache.store(config, unit, result)
    federated_seconds = time.perf_counter() - started
    in_process_seconds = in_process.result()
    seconds = {"in_process_arms": in_process_seconds, "federated_arms": federated_seconds,
               "total": time.perf_counter() - started}
    return StudyResults(
        config=config,
        table=make_table([record for unit in units for record in done[unit].records]),
        predictions=make_predictions([row for unit in units for row in done[unit].predictions]),
        split=pd.concat([describe_split(data, config.canaries) for data in seeds]),
        seconds=seconds,
        reused=reused,
        trained=len(units) - reused,
        data=describe_data(load_dataset(source_of(config)), study_split(config), site_count(config),
                           seeds[0].preprocessor, seeds[0].public_preprocessor),
    )


def plan_units(config: StudyConfig, *, scaling: bool = True) -> list[Unit]:
    """Every result the config asks for, in report order; with `scaling`, the timing sweep over site counts."""
    iid = study_split(config) == "iid"
    units = []
    for seed in config.seeds:
        for model in config.models:
            for arm in config.arms:
                if arm in CONTRAST_ARMS and iid:
                    continue  # the study's own split already is the contrast
                if arm == "federated":  # one federated arm per strategy, side by side
                    units += [Unit(STRATEGY_ARMS[strategy], model, seed) for strategy in config.strategies]
                    continue
                budgets = config.epsilons if arm in DP_ARMS else (None,)
                units += [Unit(arm, model, seed, epsilon) for epsilon in budgets]
    if scaling and "federated" in config.arms:
        rows = load_dataset(source_of(config)).n_rows
        units += [Unit(SCALING_ARM, "lr", config.seeds[0], sites=sites) for sites in SCALING_SITES
                  if SCALING_MIN_ROWS_PER_SITE * sites <= rows <= SCALING_MAX_ROWS]
    return units


def study_split(config: StudyConfig) -> str:
    """The split the study really makes ('auto' resolved against the data)."""
    try:
        return resolve_split(source_of(config), config.split)
    except SplitError as error:
        raise ConfigError(str(error)) from None


def site_count(config: StudyConfig) -> int:
    """Sites of the study's split: the data's own for a natural split, else --sites."""
    if study_split(config) == "natural" and not source_of(config).at_sites:
        return len(load_dataset(source_of(config)).site_names)
    return config.sites


def preflight(config: StudyConfig) -> list[SeedData]:
    """Everything that can fail on the data or the budgets fails here, before any training."""
    source = source_of(config)
    dataset = load_dataset(source)
    n_rows, n_sites = dataset.n_rows, site_count(config)
    if study_split(config) != "natural" and n_rows < n_sites * MIN_SITE_ROWS:
        raise ConfigError(
            f"--sites: {n_sites} sites need at least {n_sites * MIN_SITE_ROWS} rows "
            f"({MIN_SITE_ROWS} per site) but {dataset.name} has {n_rows}; use --sites {max(n_rows // MIN_SITE_ROWS, 2)} "
            "or fewer"
        )
    public = public_preprocessor(source)
    if config.dp_arms and public is None:
        raise ConfigError(
            f"--arms: {dataset.name} publishes no feature ranges or categories, which DP arms use instead of the "
            "sites' exact statistics; give them with --public-schema FILE.toml (see datasets/README.md) or leave "
            "out the DP arms (centralized-dp, federated-dp, federated-client-dp)"
        )
    contrast = any(unit.arm in CONTRAST_ARMS for unit in plan_units(config))
    seeds = [seed_data(config, seed, with_contrast=contrast) for seed in config.seeds]
    if any(data.preprocessor.width == 0 for data in seeds):
        raise ConfigError(f"--data: no feature of {dataset.name} varies in the training rows (every column is constant "
                          "or empty), so there is nothing to learn from; add informative columns")
    if config.dp_arms:
        _check_budgets(config, seeds[0])
    return seeds


def seed_data(config: StudyConfig, seed: int, *, with_contrast: bool = False) -> SeedData:
    """The sites of one seed with the federation's and the public preprocessing (and its IID contrast split)."""
    source = source_of(config)
    schema, public = schema_of(source), public_preprocessor(source)

    def of(arm: str | None) -> SeedData:
        try:
            sites = build_sites(split_spec(config, seed, arm))
        except SplitError as error:
            raise ConfigError(str(error)) from None
        return SeedData(seed, sites, schema, federation_preprocessor(sites, schema), public)

    return dataclasses.replace(of(None), contrast=of("federated-iid") if with_contrast else None)


def _check_budgets(config: StudyConfig, data: SeedData) -> None:
    """An epsilon the accountant cannot certify at this delta (however much noise) is a config error."""
    finite = [epsilon for epsilon in config.epsilons if math.isfinite(epsilon)]
    if not finite:
        return
    n_rows = sum(len(site.y_train) for site in data.sites)
    sample_rate, steps = batch_plan(n_rows, config.batch_size, config.total_epochs)
    floor = epsilon_spent([(MAX_NOISE_MULTIPLIER, sample_rate, steps)], delta=config.delta, accountant=config.accountant)
    if min(finite) < floor:
        raise ConfigError(
            f"--epsilon: {format_budget(min(finite))} is below what the {config.accountant.upper()} accountant can "
            f"certify at delta {config.delta:g} (about {floor:.3g}), however much noise is added; use a larger "
            "epsilon or a larger --delta"
        )


def _federated(unit: Unit) -> bool:
    return unit.arm in FEDERATED_ARMS or unit.arm == SCALING_ARM


def split_spec(config: StudyConfig, seed: int, arm: str | None = None, sites: int | None = None) -> SplitSpec:
    """The sites of a seed: the study's split, or an IID split of the same data for a contrast arm (or into
    `sites` sites for the scaling sweep)."""
    split = "iid" if arm in CONTRAST_ARMS or sites is not None else study_split(config)
    return SplitSpec(source_of(config), sites or site_count(config), split, config.alpha, config.test_fraction, seed)


def describe_split(data: SeedData, canary_count: int) -> pd.DataFrame:
    """Patient rows and positives per site and part (canaries not counted), and the canaries trained on there."""
    canaries = canaries_for(data.sites, canary_count, data.seed, data.preprocessor.width)
    holder = canary_site(data.sites)
    rows = []
    for number, site in enumerate(data.sites):
        trained_canaries = int(canaries.included.sum()) if canaries and holder == number else 0
        for part, labels in (("train", site.y_train), ("test", site.y_test)):
            rows.append({"seed": data.seed, "site": site.name, "part": part, "rows": len(labels),
                         "positives": int(labels.sum()), "canaries": trained_canaries if part == "train" else 0})
    return pd.DataFrame(rows)


def federated_experiment(config: StudyConfig, unit: Unit) -> FederatedExperiment:
    local = train_settings(config, config.local_epochs)
    return FederatedExperiment(
        arm=unit.arm, model=unit.model, seed=unit.seed, epsilon=unit.epsilon,
        split=split_spec(config, unit.seed, unit.arm, unit.sites), local=local,
        rounds=SCALING_ROUNDS if unit.arm == SCALING_ARM else config.rounds, delta=config.delta, accountant=config.accountant,
        mlp_hidden=config.mlp_hidden, site_clip_norm=config.site_clip_norm,
        client_clipping=config.client_clipping, canaries=config.canaries, strategy=strategy_of(unit.arm),
        proximal_mu=config.proximal_mu, server_learning_rate=config.server_learning_rate,
    )


def _records(unit: Unit, round_: int | None, rows: list[MetricRow]) -> list[dict]:
    epsilon = np.nan if unit.epsilon is None else unit.epsilon
    return [
        {"arm": unit.arm, "model": unit.model, "seed": unit.seed, "epsilon": epsilon, "round": round_, "site": site,
         "metric": metric, "value": value}
        for site, metric, value in rows
    ]


def _prediction_records(unit: Unit, predictions: list[PredictionRow]) -> list[dict]:
    epsilon = np.nan if unit.epsilon is None else unit.epsilon
    return [
        {"arm": unit.arm, "model": unit.model, "seed": unit.seed, "epsilon": epsilon, "site": site, "label": label,
         "probability": probability}
        for site, label, probability in predictions
    ]


def _unit_result(unit: Unit, evaluated: Evaluated) -> UnitResult:
    return UnitResult(_records(unit, None, evaluated.rows), _prediction_records(unit, evaluated.predictions))


def _train_in_process_arms(config: StudyConfig, seeds: list[SeedData], units: list[Unit], done: dict[Unit, UnitResult],
                           cache: ResultCache, progress: Progress) -> float:
    """Train (and cache) the centralized and local units not done yet; returns the seconds it took."""
    started = time.perf_counter()
    torch.set_num_threads(1)  # tiny models: one thread is as fast, leaves a core to the sites, and is the same everywhere
    for data in seeds:
        for unit in units:
            if unit.seed == data.seed and not _federated(unit) and unit not in done:
                result = _train_in_process(config, data, unit, progress)
                cache.store(config, unit, result)
                done[unit] = result
    return time.perf_counter() - started


def _train_in_process(config: StudyConfig, data: SeedData, unit: Unit, progress: Progress) -> UnitResult:
    budget = "" if unit.epsilon is None else f", epsilon {format_budget(unit.epsilon)}"
    progress(f"{unit.arm} {unit.model}, seed {unit.seed}{budget}")
    started = time.perf_counter()
    if unit.arm == "local":
        evaluated = local_only(config, data, unit.model)
    elif unit.arm in CONTRAST_ARMS:
        assert data.contrast is not None, "preflight builds the contrast split when a contrast arm is planned"
        evaluated = centralized(config, data.contrast, unit.model)
    else:
        evaluated = centralized(config, data, unit.model, unit.epsilon)
    evaluated.rows.append((ALL_SITES, "train_seconds", time.perf_counter() - started))
    return _unit_result(unit, evaluated)


def _federated_arms(config: StudyConfig, units: list[Unit], progress: Progress, ray_address: str | None,
                    on_sites_ready: Callable[[], None]) -> Iterator[tuple[Unit, UnitResult]]:
    if not units:
        return
    from study.federation.simulation import run_federated  # imports Flower and Ray only when needed

    progress(f"starting Flower simulation: {len(units)} federated experiment(s) x {config.rounds} round(s)")
    experiments = [federated_experiment(config, unit) for unit in units]
    evaluations: list[BackgroundWork[UnitResult]] = []

    def evaluate_soon(outcome: FederatedOutcome) -> None:
        """Evaluate each finished experiment while the next one trains (the study process mostly waits on the
        sites meanwhile), one at a time and in order."""
        unit, previous = units[len(evaluations)], evaluations[-1] if evaluations else None

        def evaluate() -> UnitResult:
            if previous is not None:
                previous.result()
            return federated_records(unit, outcome)

        evaluations.append(BackgroundWork(evaluate, name="federated-evaluation"))

    run_federated(experiments, progress, ray_address, on_outcome=evaluate_soon, on_sites_ready=on_sites_ready)
    for unit, evaluation in zip(units, evaluations, strict=True):
        yield unit, evaluation.result()


def federated_records(unit: Unit, outcome: FederatedOutcome) -> UnitResult:
    """The table rows of one federated experiment: metrics of the global model after every round (per site and
    with the audit for the final one), its cost per round, and each site's epsilon."""
    experiment = outcome.experiment
    if experiment.arm == SCALING_ARM:  # timed only: how a round's cost grows with the number of sites
        sites = f"{experiment.split.n_sites} sites"
        return UnitResult([record for round_, seconds in sorted(outcome.round_seconds.items())
                           for record in _records(unit, round_, [(sites, "round_seconds", seconds)])], [])
    if outcome.site_predictions:  # a deployment: the sites scored the models on their own test rows
        site_names = [site.name for site in outcome.site_predictions]
        labels = [site.labels for site in outcome.site_predictions]

        def evaluate(round_: int, final: bool) -> Evaluated:
            probabilities = [site.by_round[round_] for site in outcome.site_predictions]
            return evaluate_predictions(site_names, labels, probabilities, per_site=final)
    else:
        sites = build_sites(experiment.split)
        site_names = [site.name for site in sites]
        preprocessor = outcome.preprocessor
        model = build_model(experiment.model, preprocessor.width, hidden=experiment.mlp_hidden, seed=experiment.seed)

        def evaluate(round_: int, final: bool) -> Evaluated:
            model.load_state_dict(outcome.round_states[round_])
            evaluated = evaluate_shared_model(model, preprocessor, sites, per_site=final)
            if final:
                canaries = canaries_for(sites, experiment.canaries, experiment.seed, preprocessor.width)
                evaluated.rows += audit_rows(model, canaries, experiment.delta)
            return evaluated

    records: list[dict] = []
    predictions: list[dict] = []
    for round_ in sorted(outcome.round_states):
        # Learning curves need all test rows each round; per-site metrics and predictions only for the final model.
        final = round_ == experiment.rounds
        evaluated = evaluate(round_, final)
        if final:
            predictions = _prediction_records(unit, evaluated.predictions)
        evaluated.rows += [(ALL_SITES, "bytes_sent", outcome.bytes_sent[round_]),
                           (ALL_SITES, "bytes_received", outcome.bytes_received[round_]),
                           (ALL_SITES, "round_seconds", outcome.round_seconds[round_])]
        records += _records(unit, round_, evaluated.rows)
    if experiment.epsilon is not None:
        rows = [(site_names[p], "epsilon", eps) for p, eps in sorted(outcome.site_epsilons.items())]
        rows += [(site_names[p], "noise_multiplier", z) for p, z in sorted(outcome.site_noise.items())]
        rows.append((ALL_SITES, "epsilon", max(outcome.site_epsilons.values())))
        records += _records(unit, experiment.rounds, rows)
    return UnitResult(records, predictions)
