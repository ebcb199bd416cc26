"""What the study changes in Flower's strategies: site order, failures that stop the run, and client-level DP whose
noise is seeded and survives a site that did not move."""

from __future__ import annotations

from typing import Iterable

import numpy as np
from flwr.app import Array, ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import (
    DifferentialPrivacyServerSideAdaptiveClipping,
    DifferentialPrivacyServerSideFixedClipping,
    FedAdam,
    FedAvg,
    FedProx,
    FedYogi,
)

from study.federation.protocol import FederatedExperiment
from study.federation.site_queries import SiteFailure


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


class SeededClientLevelDP:
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


class SeededServerSideClipping(SeededClientLevelDP, DifferentialPrivacyServerSideFixedClipping):
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


class SeededServerSideAdaptiveClipping(SeededClientLevelDP, DifferentialPrivacyServerSideAdaptiveClipping):
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


def _clip_update(model: list[np.ndarray], start: list[np.ndarray], clipping_norm: float) -> list[np.ndarray]:
    """The model whose update from `start` has at most the clipping norm (L2 over all parameters)."""
    updates = [m - s for m, s in zip(model, start, strict=True)]
    norm = float(np.sqrt(sum(np.square(u).sum() for u in updates)))
    scale = min(1.0, clipping_norm / norm) if norm > 0 else 1.0
    return [(s + u * scale).astype(m.dtype) for m, s, u in zip(model, start, updates, strict=True)]


def make_strategy(experiment: FederatedExperiment, **settings) -> FedAvg:
    """The experiment's Flower strategy, with the study's site ordering and failure rule."""
    if experiment.strategy == "fedprox":
        return OrderedFedProx(proximal_mu=experiment.proximal_mu, **settings)
    if experiment.strategy in ("fedadam", "fedyogi"):
        optimizer = OrderedFedAdam if experiment.strategy == "fedadam" else OrderedFedYogi
        return optimizer(eta=experiment.server_learning_rate, **settings)
    return OrderedFedAvg(**settings)


