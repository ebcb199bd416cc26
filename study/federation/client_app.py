"""The sites' Flower ClientApp: thin handlers that unpack a message, call the study's code and pack the reply."""

from __future__ import annotations

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from study.audit import canaries_for, with_canaries
from study.data.preprocess import Preprocessor
from study.data.sites import Site, build_sites, schema_of, site_stats
from study.federation.protocol import FederatedExperiment, split_from_config
from study.models import build_model
from study.privacy import HistoryEntry, calibrate_noise, epsilon_spent
from study.training import PrivateTraining, batch_plan, fit

app = ClientApp()


def _local_site(config: ConfigRecord, context: Context) -> tuple[int, Site]:
    partition = int(context.node_config["partition-id"])
    return partition, build_sites(split_from_config(config))[partition]


def _training_rows(experiment: FederatedExperiment, preprocessor: Preprocessor, partition: int,
                   site: Site) -> tuple[np.ndarray, np.ndarray]:
    """The site's preprocessed training rows; the canary site adds the canaries the audit will look for."""
    canaries = canaries_for(build_sites(experiment.split), experiment.canaries, experiment.seed, preprocessor.width)
    return with_canaries(preprocessor.transform(site.x_train), site.y_train, partition, canaries)


@app.query()
def site_statistics(msg: Message, context: Context) -> Message:
    """Counts, sums, sums of squares and category counts of the site's training rows: what the server needs for
    the federation's shared preprocessing."""
    config = msg.content["config"]
    partition, site = _local_site(config, context)
    stats = site_stats(site, schema_of(split_from_config(config).source))
    reply = ConfigRecord({"partition-id": partition, "stats": stats.to_json()})
    return Message(RecordDict({"stats": reply}), reply_to=msg)


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Local training for one round; DP sites also report their privacy loss over all rounds so far."""
    torch.set_num_threads(1)
    config = msg.content["config"]
    experiment, preprocessor = FederatedExperiment.from_config(config)
    partition, site = _local_site(config, context)
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
