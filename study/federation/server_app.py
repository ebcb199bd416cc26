"""The study's ServerApp: runs every federated experiment of a study, one after another, in one Flower run."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
from flwr.app import ArrayRecord, Context, MetricRecord, RecordDict
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import FedAvg

from study.data.preprocess import Preprocessor
from study.data.sites import SplitSpec
from study.federation.protocol import FederatedExperiment
from study.federation.site_queries import (SiteFailure, SitePredictions, SiteReport, SitesGrid, ask_sites,
                                           identify_sites, shared_preprocessor, site_predictions, wait_for_sites)
from study.federation.strategies import (SeededClientLevelDP, SeededServerSideAdaptiveClipping,
                                         SeededServerSideClipping, make_strategy)
from study.models import build_model
from study.privacy import calibrate_noise, epsilon_spent

Progress = Callable[[str], None]


def _payload_bytes(arrays: ArrayRecord) -> int:
    """Bytes of parameter data an ArrayRecord carries in a message (headers excluded)."""
    return sum(len(array.data) for array in arrays.values())


@dataclass
class FederatedOutcome:
    """The global model after every round, and what each site reported while training it."""

    experiment: FederatedExperiment
    preprocessor: Preprocessor
    round_states: dict[int, dict[str, torch.Tensor]] = field(default_factory=dict)
    site_epsilons: dict[int, float] = field(default_factory=dict)
    site_noise: dict[int, float] = field(default_factory=dict)
    seconds: float = 0.0
    round_seconds: dict[int, float] = field(default_factory=dict)
    # Payload bytes of model parameters per round: the global model to every site, and the sites' models back.
    bytes_sent: dict[int, int] = field(default_factory=dict)
    bytes_received: dict[int, int] = field(default_factory=dict)
    site_reports: list[SiteReport] = field(default_factory=list)
    site_predictions: list[SitePredictions] = field(default_factory=list)  # a deployment's evaluation, site order


def build_server_app(
    experiments: list[FederatedExperiment],
    n_nodes: int,
    outcomes: list[FederatedOutcome],
    failures: list[SiteFailure],
    progress: Progress,
    on_outcome: Callable[[FederatedOutcome], None] = lambda outcome: None,
    on_sites_ready: Callable[[], None] = lambda: None,
) -> ServerApp:
    """A ServerApp that appends one FederatedOutcome per experiment to `outcomes`, in order, handing each to
    `on_outcome` as soon as it is there (or a site's failure to `failures`, which ends the run); `on_sites_ready`
    is called once every site has answered its first message (its code is loaded)."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        try:
            for outcome in run_experiments(grid, experiments, n_nodes, progress, on_sites_ready=on_sites_ready):
                outcomes.append(outcome)
                on_outcome(outcome)
        except SiteFailure as failure:
            failures.append(failure)

    return app


def run_experiments(grid: Grid, experiments: list[FederatedExperiment], n_nodes: int, progress: Progress, *,
                    evaluate_at_sites: bool = False,
                    on_sites_ready: Callable[[], None] = lambda: None) -> Iterator[FederatedOutcome]:
    """Run the experiments one after another on the `n_nodes` nodes of `grid`; an experiment of k sites uses the
    nodes of partition-id 0 to k-1. With `evaluate_at_sites` (a deployment, where the server holds no test rows),
    each site also scores every round's global model on its own test rows. `on_sites_ready` is called once every
    site has answered."""
    # The simulation's in-memory grid checks for replies every 0.1 s by default (its `pull_interval`): a fifth
    # of a round's wall time for these small models. Checking every 10 ms costs nothing measurable.
    if hasattr(grid, "pull_interval"):
        grid.pull_interval = min(grid.pull_interval, 0.01)
    node_of_partition = identify_sites(grid, wait_for_sites(grid, n_nodes, progress))
    on_sites_ready()
    prepared: dict[tuple[SplitSpec, bool], tuple[Preprocessor, list[SiteReport]]] = {}
    started = time.perf_counter()
    for number, experiment in enumerate(experiments, start=1):
        n_sites = experiment.split.n_sites
        missing = [partition for partition in range(n_sites) if partition not in node_of_partition]
        if missing:
            raise SiteFailure(f"no SuperNode has partition-id {missing[0]}; {experiment.key} needs {n_sites} sites, "
                              f"with partition-id 0 to {n_sites - 1}")
        node_ids = [node_of_partition[partition] for partition in range(n_sites)]
        sites_grid = SitesGrid(grid, node_ids)
        private = experiment.epsilon is not None
        if (experiment.split, private) not in prepared:
            reports = ask_sites(sites_grid, experiment.split, want_stats=not private)
            prepared[experiment.split, private] = shared_preprocessor(experiment.split, reports, private), reports
        progress(f"federated experiment {number}/{len(experiments)} starting: {experiment.key}"
                 + _time_left(time.perf_counter() - started, number - 1, len(experiments)))
        preprocessor, reports = prepared[experiment.split, private]
        outcome = _run_experiment(sites_grid, experiment, preprocessor, n_sites)
        outcome.site_reports = reports
        if evaluate_at_sites:
            outcome.site_predictions = site_predictions(sites_grid, experiment, preprocessor, outcome.round_states)
        yield outcome


def _time_left(elapsed: float, done: int, total: int) -> str:
    """' (about 40 s left)', from the mean time of the experiments done so far."""
    return f" (about {elapsed / done * (total - done):.0f} s left)" if done else ""


def _run_experiment(grid: SitesGrid, experiment: FederatedExperiment, preprocessor: Preprocessor, n_sites: int) -> FederatedOutcome:
    outcome = FederatedOutcome(experiment=experiment, preprocessor=preprocessor)

    def collect_site_reports(records: list[RecordDict], weighting_key: str) -> MetricRecord:
        outcome.bytes_received[len(outcome.bytes_received) + 1] = sum(_payload_bytes(r["arrays"]) for r in records)
        for record in records:
            metrics = record["metrics"]
            if "noise-multiplier" in metrics:
                outcome.site_noise[int(metrics["partition-id"])] = float(metrics["noise-multiplier"])
            if "epsilon" in metrics:
                outcome.site_epsilons[int(metrics["partition-id"])] = float(metrics["epsilon"])
        return MetricRecord({"sites": len(records)})

    round_started = [time.perf_counter()]

    def keep_global_model(server_round: int, arrays: ArrayRecord) -> None:
        """Called with the initial model (round 0) and after every round: the global model and the round's cost."""
        now = time.perf_counter()
        if server_round > 0:
            outcome.round_states[server_round] = arrays.to_torch_state_dict()
            outcome.round_seconds[server_round] = now - round_started[0]
        if server_round < experiment.rounds:
            outcome.bytes_sent[server_round + 1] = n_sites * _payload_bytes(arrays)
        round_started[0] = time.perf_counter()

    client_level = experiment.arm == "federated-client-dp"
    strategy: FedAvg | SeededClientLevelDP = make_strategy(
        experiment,
        fraction_train=1.0,
        fraction_evaluate=0.0,
        min_train_nodes=n_sites,
        min_available_nodes=n_sites,
        weighted_by_key="site-weight" if client_level else "num-examples",
        train_metrics_aggr_fn=collect_site_reports,
    )
    if client_level:
        # Every site takes part in every round (sampling rate 1: no amplification); one noisy average per round.
        noise = calibrate_noise(target_epsilon=experiment.epsilon, delta=experiment.delta, sample_rate=1.0,
                                steps=experiment.rounds, accountant=experiment.accountant)
        wrapper = SeededServerSideAdaptiveClipping if experiment.client_clipping == "adaptive" else SeededServerSideClipping
        strategy = wrapper(strategy, noise, experiment.site_clip_norm, n_sites, seed=experiment.seed)
    initial = build_model(experiment.model, preprocessor.width, hidden=experiment.mlp_hidden, seed=experiment.seed)
    started = time.perf_counter()
    strategy.start(
        grid=grid,
        initial_arrays=ArrayRecord(initial.state_dict()),
        num_rounds=experiment.rounds,
        train_config=experiment.to_config(preprocessor),
        evaluate_fn=keep_global_model,
    )
    outcome.seconds = time.perf_counter() - started
    if client_level:
        releases = len(outcome.round_states)
        spent = epsilon_spent([(noise, 1.0, releases)], delta=experiment.delta, accountant=experiment.accountant)
        outcome.site_epsilons = dict.fromkeys(range(n_sites), spent)
        outcome.site_noise = dict.fromkeys(range(n_sites), noise)
    if len(outcome.round_states) != experiment.rounds:
        raise RuntimeError(f"{experiment.key}: only {len(outcome.round_states)} of {experiment.rounds} rounds completed")
    if experiment.epsilon is not None and len(outcome.site_epsilons) != n_sites:
        raise RuntimeError(f"{experiment.key}: {len(outcome.site_epsilons)} of {n_sites} sites reported their epsilon")
    return outcome
