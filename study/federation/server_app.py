"""The study's ServerApp: runs every federated experiment of a study, one after another, in one Flower run."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import (
    DifferentialPrivacyServerSideAdaptiveClipping,
    DifferentialPrivacyServerSideFixedClipping,
    FedAdam,
    FedAvg,
    FedProx,
    FedYogi,
)

from study.data.preprocess import Preprocessor, Schema, SiteStats
from study.data.sites import SplitSpec, public_preprocessor
from study.federation.protocol import FederatedExperiment, split_to_config
from study.models import build_model
from study.privacy import calibrate_noise, epsilon_spent

Progress = Callable[[str], None]


class SiteFailure(RuntimeError):
    """A site did not return a model in some round; the study never averages over fewer sites than it claims."""


class SiteOrdered:
    """What the study changes in Flower's strategies: the sites' float32 updates are summed in site order, not
    arrival order (same config, same numbers), and a failing site stops the run instead of being averaged away."""

    min_train_nodes: int

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        failures = [reply.error.reason for reply in replies if reply.has_error()]
        if failures or len(replies) < self.min_train_nodes:
            last_line = ((failures[0] if failures else "").strip().splitlines() or ["no reply"])[-1]
            raise SiteFailure(f"round {server_round}: {len(replies) - len(failures)} of {self.min_train_nodes} sites "
                              f"returned a model; first failure: {last_line}")
        ordered = sorted(replies, key=lambda reply: int(reply.content["metrics"]["partition-id"]))
        return super().aggregate_train(server_round, ordered)  # type: ignore[misc]


class OrderedFedAvg(SiteOrdered, FedAvg):
    """FedAvg: the sites' models averaged, weighted by their training rows."""


class OrderedFedProx(SiteOrdered, FedProx):
    """FedProx: FedAvg whose sites add a proximal term mu/2 ||w - w_global||^2 to their loss (mu sent by Flower)."""


class OrderedFedAdam(SiteOrdered, FedAdam):
    """FedAdam: the averaged update is a pseudo-gradient for a server-side Adam step."""


class OrderedFedYogi(SiteOrdered, FedYogi):
    """FedYogi: like FedAdam, with Yogi's additive second-moment update."""


class _SeededClientLevelDP:
    """What the study changes in Flower 1.42's server-side clipping wrappers: noise from a seeded generator (Flower
    draws from numpy's global one), so a config and seed reproduce; and a round without every site stops the run."""

    num_sampled_clients: int
    generator: np.random.Generator

    def _require_every_site(self, server_round: int, replies: list[Message]) -> None:
        if len(replies) != self.num_sampled_clients or any(reply.has_error() for reply in replies):
            raise SiteFailure(f"round {server_round}: {len(replies)} of {self.num_sampled_clients} sites replied "
                              "without error; client-level DP needs every site")

    def _with_noise(self, arrays: ArrayRecord, std: float) -> ArrayRecord:
        noisy = [a + self.generator.normal(0.0, std, a.shape).astype(a.dtype) for a in arrays.to_numpy_ndarrays()]
        return ArrayRecord({k: Array(np.asarray(a)) for k, a in zip(arrays.keys(), noisy, strict=True)})


class SeededServerSideClipping(_SeededClientLevelDP, DifferentialPrivacyServerSideFixedClipping):
    """Flower's client-level DP with fixed clipping: each site's update is clipped to the clipping norm, the clipped
    models are averaged, and Gaussian noise of std noise_multiplier x clipping_norm / sites is added. A site whose
    update is exactly zero is left as it is (Flower divides by its zero norm and stops the run)."""

    def __init__(self, strategy: FedAvg, noise_multiplier: float, clipping_norm: float, num_sampled_clients: int,
                 *, seed: int) -> None:
        super().__init__(strategy, noise_multiplier, clipping_norm, num_sampled_clients)
        self.generator = np.random.default_rng(seed)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        self._require_every_site(server_round, replies)
        start = self.current_arrays.to_numpy_ndarrays()
        for reply in replies:
            record = reply.content["arrays"]
            clipped = _clip_update(record.to_numpy_ndarrays(), start, self.clipping_norm)
            reply.content["arrays"] = ArrayRecord({k: Array(a) for k, a in zip(record.keys(), clipped, strict=True)})
        arrays, metrics = self.strategy.aggregate_train(server_round, replies)
        if arrays is None:
            return None, metrics
        return self._with_noise(arrays, self.noise_multiplier * self.clipping_norm / self.num_sampled_clients), metrics


class SeededServerSideAdaptiveClipping(_SeededClientLevelDP, DifferentialPrivacyServerSideAdaptiveClipping):
    """Flower's client-level DP with adaptive clipping (Andrew et al. 2021): the clipping norm follows the target
    quantile of the sites' update norms, steered by a noisy count of clipped sites.

    The count's noise is part of the privacy cost. Given the total noise multiplier z, Flower raises the update
    noise to (z^-2 - (2 s)^-2)^-1/2 for a count noise std s, a formula for centred bits (sensitivity 1/2). It counts
    raw 0/1 bits (sensitivity 1), so the count here gets std 2 s with s = z: the update (multiplier 2z/sqrt 3) and
    the count (std 2z) together are one Gaussian mechanism of multiplier z per round, accounted as such.
    """

    def __init__(self, strategy: FedAvg, noise_multiplier: float, initial_clipping_norm: float,
                 num_sampled_clients: int, *, seed: int) -> None:
        super().__init__(strategy, noise_multiplier, num_sampled_clients, initial_clipping_norm,
                         clipped_count_stddev=noise_multiplier)
        self.clipped_count_stddev = 2 * noise_multiplier
        self.generator = np.random.default_rng(seed)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        self._require_every_site(server_round, replies)
        return super().aggregate_train(server_round, replies)

    def _noisy_fraction(self, count: int, total: int) -> float:
        return float(self.generator.normal(count, self.clipped_count_stddev)) / float(total)

    def _add_noise_to_aggregated_arrays(self, aggregated: ArrayRecord) -> ArrayRecord:
        return self._with_noise(aggregated, self.noise_multiplier * self.clipping_norm / self.num_sampled_clients)


def _payload_bytes(arrays: ArrayRecord) -> int:
    """Bytes of parameter data an ArrayRecord carries in a message (headers excluded)."""
    return sum(len(array.data) for array in arrays.values())


def _clip_update(model: list[np.ndarray], start: list[np.ndarray], clipping_norm: float) -> list[np.ndarray]:
    """The model whose update from `start` has at most the clipping norm (L2 over all parameters)."""
    updates = [m - s for m, s in zip(model, start, strict=True)]
    norm = float(np.sqrt(sum(np.square(u).sum() for u in updates)))
    scale = min(1.0, clipping_norm / norm) if norm > 0 else 1.0
    return [(s + u * scale).astype(m.dtype) for m, s, u in zip(model, start, updates, strict=True)]


@dataclass(frozen=True)
class SiteReport:
    """What a site tells the server before training: its name, columns, row counts and (if asked) statistics."""

    partition: int
    name: str
    schema: Schema
    rows: tuple[int, int]  # training rows, test rows
    positives: tuple[int, int]
    stats: SiteStats | None


@dataclass(frozen=True)
class SitePredictions:
    """A deployed site's test labels and its predicted probabilities under each round's global model."""

    partition: int
    name: str
    labels: np.ndarray
    by_round: dict[int, np.ndarray]


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
) -> ServerApp:
    """A ServerApp that appends one FederatedOutcome per experiment to `outcomes`, in order (or a site's failure
    to `failures`, which ends the run)."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        try:
            outcomes.extend(run_experiments(grid, experiments, n_nodes, progress))
        except SiteFailure as failure:
            failures.append(failure)

    return app


def run_experiments(grid: Grid, experiments: list[FederatedExperiment], n_nodes: int, progress: Progress, *,
                    evaluate_at_sites: bool = False) -> Iterator[FederatedOutcome]:
    """Run the experiments one after another on the `n_nodes` nodes of `grid`; an experiment of k sites uses the
    nodes of partition-id 0 to k-1. With `evaluate_at_sites` (a deployment, where the server holds no test rows),
    each site also scores every round's global model on its own test rows."""
    # The simulation's in-memory grid checks for replies every 0.1 s by default (its `pull_interval`): a fifth
    # of a round's wall time for these small models. Checking every 10 ms costs nothing measurable.
    if hasattr(grid, "pull_interval"):
        grid.pull_interval = min(grid.pull_interval, 0.01)
    node_of_partition = identify_sites(grid, wait_for_sites(grid, n_nodes))
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
            outcome.site_predictions = _site_predictions(sites_grid, outcome)
        yield outcome


def _time_left(elapsed: float, done: int, total: int) -> str:
    """' (about 40 s left)', from the mean time of the experiments done so far."""
    return f" (about {elapsed / done * (total - done):.0f} s left)" if done else ""


class SitesGrid:
    """The grid as one experiment sees it: only the nodes of its sites, in site order (Flower's strategies send to
    every node the grid lists)."""

    def __init__(self, grid: Grid, node_ids: list[int]) -> None:
        self._grid, self.node_ids = grid, node_ids

    def get_node_ids(self) -> list[int]:
        return list(self.node_ids)

    def __getattr__(self, name: str):
        return getattr(self._grid, name)


def wait_for_sites(grid: Grid, n_nodes: int, timeout: float = 300.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while len(node_ids := sorted(grid.get_node_ids())) < n_nodes:
        if time.monotonic() > deadline:
            raise SiteFailure(f"only {len(node_ids)} of {n_nodes} sites connected within {timeout:.0f} s; start a "
                              "SuperNode for every site (or set sites to the number running)")
        time.sleep(0.2)
    return node_ids


def identify_sites(grid: Grid, node_ids: list[int]) -> dict[int, int]:
    """Node id of each partition-id (a SuperNode's site number); two nodes with one partition-id stop the run."""
    node_of_partition: dict[int, int] = {}
    for reply in _ask_all(grid, node_ids, RecordDict(), "query.identify", "say which site it is"):
        partition = int(reply.content["site"]["partition-id"])
        if partition in node_of_partition:
            raise SiteFailure(f"two SuperNodes have partition-id {partition}; give each site its own number")
        node_of_partition[partition] = reply.metadata.src_node_id
    return node_of_partition


def _failure_line(reason: str) -> str:
    """The last line of a site's error (its exception message), without Flower's traceback."""
    return (reason.strip().splitlines() or ["no reason given"])[-1]


def _ask_all(grid: Grid, node_ids: list[int], content: RecordDict, message_type: str, what: str) -> list[Message]:
    """One message to every site; their replies, or a SiteFailure naming the first site that failed."""
    messages = [Message(content, dst_node_id=node, message_type=message_type) for node in node_ids]
    replies = list(grid.send_and_receive(messages))
    failed = [reply for reply in replies if reply.has_error()]
    if failed:
        reasons = "; ".join(sorted(_failure_line(reply.error.reason) for reply in failed))
        raise SiteFailure(f"{len(failed)} of {len(node_ids)} sites failed to {what}: {reasons}")
    if len(replies) != len(node_ids):
        raise SiteFailure(f"only {len(replies)} of {len(node_ids)} sites replied when asked to {what}")
    return replies


def ask_sites(grid: SitesGrid, split: SplitSpec, *, want_stats: bool) -> list[SiteReport]:
    """Every site's report, in site order."""
    config = ConfigRecord({**split_to_config(split), "want-stats": want_stats})
    reports = []
    for reply in _ask_all(grid, grid.node_ids, RecordDict({"config": config}), MessageType.QUERY, "report its data"):
        record = reply.content["stats"]
        schema = json.loads(str(record["schema"]))
        reports.append(SiteReport(
            partition=int(record["partition-id"]), name=str(record["site-name"]),
            schema=Schema(tuple(schema["numeric"]), tuple(schema["categorical"])),
            rows=tuple(int(n) for n in record["rows"]), positives=tuple(int(n) for n in record["positives"]),
            stats=SiteStats.from_json(str(record["stats"])) if "stats" in record else None,
        ))
    return sorted(reports, key=lambda report: report.partition)


def shared_preprocessor(split: SplitSpec, reports: list[SiteReport], private: bool) -> Preprocessor:
    """DP experiments preprocess with the public schema (no statistic of any site is released for them); the others
    with the sites' combined training-row statistics: the federation's shared preprocessing."""
    schema = reports[0].schema
    differing = [report.name for report in reports if report.schema != schema]
    if differing:
        raise SiteFailure(f"site {differing[0]!r} has other columns (or column kinds) than site {reports[0].name!r}; "
                          "every site's file needs the same columns with the same kind of values")
    if private:
        preprocessor = public_preprocessor(split.source, schema)
        if preprocessor is None:
            raise RuntimeError(f"{split.source.dataset} publishes no schema; DP experiments cannot preprocess without it")
        return preprocessor
    return Preprocessor.from_stats(SiteStats.combine(report.stats for report in reports), schema)


def _site_predictions(grid: SitesGrid, outcome: FederatedOutcome) -> list[SitePredictions]:
    """Each site's predictions for its test rows under every round's global model, in site order."""
    content = RecordDict({f"round-{round_}": ArrayRecord(state) for round_, state in outcome.round_states.items()})
    content["config"] = outcome.experiment.to_config(outcome.preprocessor)
    replies = _ask_all(grid, grid.node_ids, content, MessageType.EVALUATE, "score the global models")
    predictions = []
    for reply in replies:
        arrays = reply.content["predictions"]
        predictions.append(SitePredictions(
            partition=int(reply.content["site"]["partition-id"]), name=str(reply.content["site"]["site-name"]),
            labels=arrays["labels"].numpy(),
            by_round={round_: arrays[f"round-{round_}"].numpy() for round_ in outcome.round_states},
        ))
    return sorted(predictions, key=lambda site: site.partition)


def _strategy(experiment: FederatedExperiment, **settings) -> FedAvg:
    """The experiment's Flower strategy, with the study's site ordering and failure rule."""
    if experiment.strategy == "fedprox":
        return OrderedFedProx(proximal_mu=experiment.proximal_mu, **settings)
    if experiment.strategy in ("fedadam", "fedyogi"):
        optimizer = OrderedFedAdam if experiment.strategy == "fedadam" else OrderedFedYogi
        return optimizer(eta=experiment.server_learning_rate, **settings)
    return OrderedFedAvg(**settings)


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
    strategy: FedAvg | _SeededClientLevelDP = _strategy(
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
