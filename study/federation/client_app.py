"""The sites' Flower ClientApp: thin handlers that unpack a message, call the study's code and pack the reply."""

from __future__ import annotations

import json

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from study.audit import canaries_for, with_canaries
from study.config import ConfigError
from study.data.preprocess import Preprocessor, Schema
from study.data.sites import Site, build_sites, schema_of, site_from_file, site_stats
from study.federation.protocol import FederatedExperiment, split_from_config
from study.models import build_model, predict_proba
from study.privacy import HistoryEntry, calibrate_noise, epsilon_spent
from study.training import PrivateTraining, batch_plan, fit

app = ClientApp()


class SiteDataError(RuntimeError):
    """A deployed site cannot use its data file; the message names the site and the fix, and reaches the server."""


def _local_site(config: ConfigRecord, context: Context) -> tuple[int, Site, Schema]:
    """This node's site: in a deployment its own CSV (node config data-path); in the simulation its partition."""
    partition = int(context.node_config["partition-id"])
    split = split_from_config(config)
    if not split.source.at_sites:
        if "data-path" in context.node_config:  # never train a real site on other data than its own
            raise SiteDataError(f"site {partition}: this SuperNode holds a data file, but the run names the dataset "
                                f"{split.source.dataset}; run with --run-config \"dataset='csv' target='...'\"")
        return partition, build_sites(split)[partition], schema_of(split.source)
    name = str(context.node_config.get("site-name", f"site {partition + 1}"))
    if "data-path" not in context.node_config:
        raise SiteDataError(f"site {name!r} has no data file: start its SuperNode with --node-config "
                            "'data-path=\"/path/to/site.csv\" partition-id=N site-name=\"...\"'")
    try:
        site, schema = site_from_file(str(context.node_config["data-path"]), name, partition + 1, split)
    except ConfigError as error:
        raise SiteDataError(f"site {name!r}: {str(error).removeprefix('--data: ')}") from None
    return partition, site, schema


def _training_rows(experiment: FederatedExperiment, preprocessor: Preprocessor, partition: int,
                   site: Site) -> tuple[np.ndarray, np.ndarray]:
    """The site's preprocessed training rows; the canary site adds the canaries the audit will look for."""
    canaries = (canaries_for(build_sites(experiment.split), experiment.canaries, experiment.seed, preprocessor.width)
                if experiment.canaries else None)
    return with_canaries(preprocessor.transform(site.x_train), site.y_train, partition, canaries)


@app.query("identify")
def identify(msg: Message, context: Context) -> Message:
    """Which site this node is (its partition-id): the server addresses each experiment's sites by it."""
    if "partition-id" not in context.node_config:
        raise SiteDataError("a SuperNode has no partition-id: start each site's SuperNode with --node-config "
                            "'partition-id=N ...', numbering the sites 0, 1, 2, ...")
    site = ConfigRecord({"partition-id": int(context.node_config["partition-id"])})
    return Message(RecordDict({"site": site}), reply_to=msg)


@app.query()
def site_statistics(msg: Message, context: Context) -> Message:
    """Counts, sums, sums of squares and category counts of the site's training rows: what the server needs for
    the federation's shared preprocessing."""
    config = msg.content["config"]
    partition, site, schema = _local_site(config, context)
    reply = ConfigRecord({
        "partition-id": partition,
        "site-name": site.name,
        "schema": json.dumps({"numeric": schema.numeric, "categorical": schema.categorical}),
        # Row and case counts of both parts: what the report's data-split table shows.
        "rows": [len(site.y_train), len(site.y_test)],
        "positives": [int(site.y_train.sum()), int(site.y_test.sum())],
    })
    if bool(config["want-stats"]):  # never asked for the DP arms, which preprocess with public bounds
        reply["stats"] = site_stats(site, schema).to_json()
    return Message(RecordDict({"stats": reply}), reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Local training for one round; DP sites also report their privacy loss over all rounds so far."""
    torch.set_num_threads(1)
    config = msg.content["config"]
    experiment, preprocessor = FederatedExperiment.from_config(config)
    partition, site, _ = _local_site(config, context)
    server_round = int(config["server-round"])
    features, labels = _training_rows(experiment, preprocessor, partition, site)
    model = build_model(experiment.model, preprocessor.width, hidden=experiment.mlp_hidden, seed=experiment.seed)
    model.load_state_dict(msg.content["arrays"].to_torch_state_dict())
    record_level = experiment.epsilon is not None and experiment.arm == "federated-dp"
    privacy = _site_privacy(experiment, len(labels), context) if record_level else None
    report = fit(
        model,
        features,
        labels,
        experiment.local,
        seed=experiment.seed * 1_000_003 + server_round * 1_009 + partition,
        privacy=privacy,
        proximal_mu=experiment.proximal_mu,
    )
    metrics: dict[str, int | float] = {
        "partition-id": partition,
        "num-examples": len(labels),
        "site-weight": 1,  # client-level DP averages sites with equal weight: its sensitivity analysis needs it
        "steps": report.steps,
    }
    if privacy is not None:
        history = _remember_history(experiment.key, report.privacy_history, context)
        metrics["noise-multiplier"] = privacy.noise_multiplier
        metrics["sample-rate"] = report.sample_rate
        if server_round == experiment.rounds:  # accounting is slow for small sites: once, over the whole run
            metrics["epsilon"] = epsilon_spent(history, delta=experiment.delta, accountant=experiment.accountant)
    content = RecordDict({"arrays": ArrayRecord(model.state_dict()), "metrics": MetricRecord(metrics)})
    return Message(content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """The site's predictions for its own test rows under each global model sent (one per round), and their
    labels: the server computes the same metrics from them as the simulation computes from all sites' rows."""
    torch.set_num_threads(1)
    config = msg.content["config"]
    experiment, preprocessor = FederatedExperiment.from_config(config)
    partition, site, _ = _local_site(config, context)
    model = build_model(experiment.model, preprocessor.width, hidden=experiment.mlp_hidden, seed=experiment.seed)
    features = preprocessor.transform(site.x_test)
    predictions = {}
    for name, arrays in msg.content.array_records.items():
        model.load_state_dict(arrays.to_torch_state_dict())
        predictions[name] = Array(predict_proba(model, features).numpy())
    predictions["labels"] = Array(np.asarray(site.y_test, dtype=np.int64))
    site_record = ConfigRecord({"partition-id": partition, "site-name": site.name})
    return Message(RecordDict({"predictions": ArrayRecord(predictions), "site": site_record}), reply_to=msg)


def _site_privacy(experiment: FederatedExperiment, n_rows: int, context: Context) -> PrivateTraining:
    """Noise calibrated once per experiment so that this site's loss over ALL rounds meets the target."""
    state_key = f"noise:{experiment.key}"
    if state_key not in context.state:
        sample_rate, steps = batch_plan(n_rows, experiment.local.batch_size, experiment.local.epochs * experiment.rounds)
        noise = calibrate_noise(
            target_epsilon=experiment.epsilon,
            delta=experiment.delta,
            sample_rate=sample_rate,
            steps=steps,
            accountant=experiment.accountant,
        )
        context.state[state_key] = ConfigRecord({"noise-multiplier": noise})
    return PrivateTraining(
        noise_multiplier=float(context.state[state_key]["noise-multiplier"]), accountant=experiment.accountant
    )


def _remember_history(experiment_key: str, new_entries: list[HistoryEntry], context: Context) -> list[HistoryEntry]:
    """Append this round's DP-SGD steps to the site's accountant history, kept across rounds in the context."""
    state_key = f"history:{experiment_key}"
    record = context.state.get(state_key, ConfigRecord({"noise": [], "rate": [], "steps": []}))
    noise = list(record["noise"]) + [float(entry[0]) for entry in new_entries]
    rate = list(record["rate"]) + [float(entry[1]) for entry in new_entries]
    steps = list(record["steps"]) + [int(entry[2]) for entry in new_entries]
    context.state[state_key] = ConfigRecord({"noise": noise, "rate": rate, "steps": steps})
    return list(zip(noise, rate, steps))
