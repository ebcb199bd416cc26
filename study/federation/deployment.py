"""The study's federated arms as a Flower App (`flwr run .`): the ServerApp a SuperLink runs, with one SuperNode per
site. The sites keep their rows; they train, and score each round's global model on their own test rows, and the
coordinator writes the same results table and report as a simulated study."""

from __future__ import annotations

import re
import shlex
import time
from datetime import datetime, timezone
from logging import INFO
from pathlib import Path
from typing import Any

import pandas as pd
from flwr.app import Context
from flwr.common.logger import log
from flwr.serverapp import Grid, ServerApp

from study.config import DP_ARMS, FEDERATED_ARMS, ConfigError, StudyConfig, build_config
from study.data.preprocess import SiteStats
from study.data.sources import SITE_FILES, load_dataset, source_of
from study.data.summary import describe_data
from study.data.user_csv import target_rule
from study.federation.server_app import FederatedOutcome, SiteReport, run_experiments
from study.pipeline import federated_experiment, federated_records, plan_units, study_split
from study.results import StudyResults, make_predictions, make_table
from study.rundir import REPORT_HTML, prepare_output
from study.report.writer import write_run

OUTPUT_KEY = "output"  # run config key: the folder (on the coordinator) that receives the run folder

app = ServerApp()


@app.main()
def main(grid: Grid, context: Context) -> None:
    started = datetime.now(timezone.utc)
    config = deployment_config(context.run_config)
    output = Path(str(context.run_config.get(OUTPUT_KEY, "reports"))).expanduser()
    prepare_output(output)
    units = plan_units(config, scaling=False)
    experiments = [federated_experiment(config, unit) for unit in units]
    log(INFO, "fedstudy: %d federated experiment(s) x %d round(s) on %d sites", len(units), config.rounds, config.sites)
    clock = time.perf_counter()
    outcomes = list(run_experiments(grid, experiments, config.sites, lambda line: log(INFO, "fedstudy: %s", line),
                                    evaluate_at_sites=True))
    results = deployment_results(config, units, outcomes, time.perf_counter() - clock)
    run_dir = write_run(results, output, deployment_command(context.run_config), started)
    log(INFO, "fedstudy: report written to %s", run_dir / REPORT_HTML)


def deployment_config(run_config: dict[str, Any]) -> StudyConfig:
    """The study config a run config gives (keys named like the study's TOML keys; lists as space-separated text).
    Only federated arms run in a deployment, without canaries (the audit needs the canary site's rows)."""
    defaults = StudyConfig()
    values: dict[str, Any] = {}
    for key, value in run_config.items():
        name = key.replace("-", "_")
        if key == OUTPUT_KEY or value == "":
            continue
        if not hasattr(defaults, name):
            raise ConfigError(f"run config: unknown key {key!r}; use the study's config keys (see README)")
        default = getattr(defaults, name)
        values[name] = _list_value(key, value, default[0]) if isinstance(default, tuple) else value
    if values.get("dataset", "csv") == "csv":
        values.update(dataset="csv", data=SITE_FILES)
    values["canaries"] = 0
    try:
        config = build_config(values)
    except ConfigError as error:  # the study names its CLI options; a deployment user sets run config keys
        raise ConfigError(re.sub(r"^--([a-z-]+)", r"run config \1", str(error))) from None
    others = [arm for arm in config.arms if arm not in FEDERATED_ARMS or arm == "federated-iid"]
    if others:
        raise ConfigError(f"run config arms: {others[0]!r} cannot run on a deployment (the sites' rows stay at the "
                          "sites); use federated, federated-dp and federated-client-dp")
    if config.dataset == "csv" and not config.public_schema and any(arm in DP_ARMS for arm in config.arms):
        raise ConfigError("run config: the DP arms need public-schema = \"/path/on/the/coordinator/bounds.toml\" "
                          "(public feature bounds), or leave them out of arms")
    return config


def _list_value(key: str, value: Any, item_default: Any) -> tuple:
    parse = type(item_default)
    try:
        return tuple(parse(item) for item in str(value).replace(",", " ").split())
    except ValueError:
        raise ConfigError(f"run config: {key} = {value!r} is not a list of {parse.__name__} values; "
                          f"give them space-separated, as {key}=\"1 3\"") from None


def deployment_command(run_config: dict[str, Any]) -> str:
    """The `flwr run` command with every run config value spelled out."""
    settings = " ".join(f"{key}={_toml_value(value)}" for key, value in sorted(run_config.items()))
    return shlex.join(["flwr", "run", ".", "<your SuperLink connection>", "--run-config", settings, "--stream"])


def _toml_value(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else repr(value)


def deployment_results(config: StudyConfig, units: list, outcomes: list[FederatedOutcome],
                       seconds: float) -> StudyResults:
    """The results of a deployed run, in the form of a simulated study's (federated arms only)."""
    results = [federated_records(unit, outcome) for unit, outcome in zip(units, outcomes, strict=True)]
    first_of_seed = {outcome.experiment.seed: outcome for outcome in reversed(outcomes)}
    return StudyResults(
        config=config,
        table=make_table([record for result in results for record in result.records]),
        predictions=make_predictions([row for result in results for row in result.predictions]),
        split=pd.concat([_split_rows(seed, outcome.site_reports) for seed, outcome in sorted(first_of_seed.items())]),
        seconds={"federated_arms": seconds, "total": seconds},
        trained=len(units),
        data=_data_summary(config, outcomes),
        engine={"name": "deployment", "supernodes": config.sites, "rounds": config.rounds,
                "data_at_sites": source_of(config).at_sites},
    )


def _split_rows(seed: int, reports: list[SiteReport]) -> pd.DataFrame:
    return pd.DataFrame([
        {"seed": seed, "site": report.name, "part": part, "rows": report.rows[index],
         "positives": report.positives[index], "canaries": 0}
        for report in reports for index, part in enumerate(("train", "test"))
    ])


def _data_summary(config: StudyConfig, outcomes: list[FederatedOutcome]) -> dict[str, Any]:
    """What the report says about data the coordinator never saw: the sites' names, counts and columns."""
    source = source_of(config)
    if not source.at_sites:  # `flwr run .` on the local simulation: the data is here
        first = outcomes[0]
        return describe_data(load_dataset(source), study_split(config), config.sites, first.preprocessor, None)
    reports = outcomes[0].site_reports
    with_stats = [outcome for outcome in outcomes if outcome.site_reports[0].stats is not None]
    preprocessor = (with_stats or outcomes)[0].preprocessor
    rows = sum(sum(report.rows) for report in reports)
    return {
        "name": "site files",
        "description": (f"{len(reports)} hospitals, each holding its own file on its own machine, read by its "
                        f"SuperNode (node config data-path): {rows} rows in all."),
        "target_rule": target_rule(source),
        "split": "natural",
        "sites": len(reports),
        "site_names": [report.name for report in reports],
        "rows": rows,
        "columns": _columns(with_stats[0].site_reports) if with_stats else [],
        "model_inputs": preprocessor.width,
        "dropped": list(preprocessor.dropped),
        "indicators": [name for name in preprocessor.output_names if name.endswith(" missing")],
        "public_schema": f"the public bounds and categories given in {Path(config.public_schema).name}"
                         if config.public_schema else None,
        "public_inputs": None,
    }


def _columns(reports: list[SiteReport]) -> list[dict[str, Any]]:
    """Each column's kind and share of missing training values, from the statistics the sites sent."""
    stats = SiteStats.combine(report.stats for report in reports)
    schema = reports[0].schema
    numeric = [{"name": name, "kind": "numeric", "missing": 1 - float(observed) / stats.rows}
               for name, observed in zip(schema.numeric, stats.observed)]
    categorical = [{"name": name, "kind": "categorical", "missing": 1 - sum(counts.values()) / stats.rows}
                   for name, counts in zip(schema.categorical, stats.categories)]
    return numeric + categorical
