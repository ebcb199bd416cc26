"""The server's questions to the sites outside training: which site a node is, what data it holds (counts, columns
and, for the non-private arms, the statistics for shared preprocessing), and, in a deployment, its predictions for
its own test rows."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from study.data.preprocess import Preprocessor, Schema, SiteStats
from study.data.sites import SplitSpec, public_preprocessor
from study.federation.protocol import FederatedExperiment, split_to_config


class SiteFailure(RuntimeError):
    """A site did not return a model in some round; the study never averages over fewer sites than it claims."""


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


class SitesGrid:
    """The grid as one experiment sees it: only the nodes of its sites, in site order (Flower's strategies send to
    every node the grid lists)."""

    def __init__(self, grid: Grid, node_ids: list[int]) -> None:
        self._grid, self.node_ids = grid, node_ids

    def get_node_ids(self) -> list[int]:
        return list(self.node_ids)

    def __getattr__(self, name: str):
        return getattr(self._grid, name)


def wait_for_sites(grid: Grid, n_nodes: int, progress: Callable[[str], None], timeout: float = 300.0) -> list[int]:
    """Every connected node once `n_nodes` are there; says every 30 s how many are, and gives up after `timeout`."""
    started = time.monotonic()
    next_notice = started + 30
    while len(node_ids := sorted(grid.get_node_ids())) < n_nodes:
        now = time.monotonic()
        if now > started + timeout:
            raise SiteFailure(f"only {len(node_ids)} of {n_nodes} sites connected within {timeout:.0f} s; start a "
                              "SuperNode for every site (or set sites to the number running)")
        if now > next_notice:
            progress(f"waiting for sites: {len(node_ids)} of {n_nodes} connected")
            next_notice += 30
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


def site_predictions(grid: SitesGrid, experiment: FederatedExperiment, preprocessor: Preprocessor,
                     round_states: dict[int, dict]) -> list[SitePredictions]:
    """Each site's predictions for its test rows under every round's global model, in site order."""
    content = RecordDict({f"round-{round_}": ArrayRecord(state) for round_, state in round_states.items()})
    content["config"] = experiment.to_config(preprocessor)
    replies = _ask_all(grid, grid.node_ids, content, MessageType.EVALUATE, "score the global models")
    predictions = []
    for reply in replies:
        arrays = reply.content["predictions"]
        predictions.append(SitePredictions(
            partition=int(reply.content["site"]["partition-id"]), name=str(reply.content["site"]["site-name"]),
            labels=arrays["labels"].numpy(),
            by_round={round_: arrays[f"round-{round_}"].numpy() for round_ in round_states},
        ))
    return sorted(predictions, key=lambda site: site.partition)


