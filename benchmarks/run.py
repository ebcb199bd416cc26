"""Measured speed and memory of the study on this machine, each figure printed against its target.

Run it inside a loopback-only network namespace (the federated parts start Ray, which listens on every interface):

    unshare -rn sh -c 'ip link set lo up && python benchmarks/run.py'

Add --quick to skip the 1,000,000-row scale run (about 3 of its 5 minutes), --output FOLDER to keep the run folders
(the default study's report among them). Nothing here is a test: the figures
depend on the machine and on what else runs on it; ratios are taken side by side in one run to cancel most of that.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from study.arms import whole_run_settings
from study.audit import canaries_for, with_canaries
from study.cache import Unit
from study.config import StudyConfig
from study.data.sites import build_sites, federation_preprocessor, schema_of
from study.data.sources import source_of
from study.models import build_model
from study.pipeline import federated_experiment, seed_data
from study.training import PrivateTraining, fit

CLI = [sys.executable, "-m", "study.run", "--quiet"]


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    target: float | None = None  # the figure must not exceed it

    def line(self) -> str:
        if self.target is None:
            return f"  {self.name:<62} {self.value:10.2f} {self.unit}"
        verdict = "meets" if self.value <= self.target else "MISSES"
        return f"  {self.name:<62} {self.value:10.2f} {self.unit:<5} target <= {self.target:g}: {verdict}"


def run_cli(arguments: list[str]) -> tuple[float, float, Path]:
    """Wall seconds and peak RSS (GB, the largest process of the run) of one CLI run; its run folder."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    done = subprocess.run(CLI + arguments, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"benchmark run failed: {' '.join(arguments)}\n{done.stderr[-2000:]}")
    peak = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1e6  # kB -> GB
    return seconds, peak, Path(done.stdout.strip().splitlines()[-1]).parent


def default_study_and_rerun(output: Path) -> list[Figure]:
    """1 and 5: the default study from scratch, then the same study with one new epsilon (the cache kept)."""
    seconds, peak, run_dir = run_cli(["--output", str(output)])
    epsilons = [str(e) for e in json.loads((run_dir / "results.json").read_text())["config"]["epsilons"]]
    rerun, _, _ = run_cli(["--output", str(output), "--epsilon", *epsilons, "2"])
    return [Figure("default study: wall time", seconds, "s", 90), Figure("default study: peak RSS", peak, "GB", 3),
            Figure("rerun of the default study with one new epsilon: wall time", rerun, "s", 20),
            Figure("rerun with one new epsilon / default study (wall time)", rerun / seconds, "x", 1 / 3)]


def in_process_federated_seconds(config: StudyConfig, unit: Unit) -> float:
    """The floor of one federated experiment: the same local training steps and averaging, in this process."""
    experiment = federated_experiment(config, unit)
    sites = build_sites(experiment.split)
    preprocessor = federation_preprocessor(sites, schema_of(source_of(config)))
    canaries = canaries_for(sites, experiment.canaries, experiment.seed, preprocessor.width)
    rows = [with_canaries(preprocessor.transform(site.x_train), site.y_train, number, canaries)
            for number, site in enumerate(sites)]
    started = time.perf_counter()
    state = build_model(unit.model, preprocessor.width, hidden=config.mlp_hidden, seed=unit.seed).state_dict()
    for round_ in range(1, config.rounds + 1):
        states, weights = [], []
        for number, (features, labels) in enumerate(rows):
            model = build_model(unit.model, preprocessor.width, hidden=config.mlp_hidden, seed=unit.seed)
            model.load_state_dict(state)
            fit(model, features, labels, experiment.local, seed=unit.seed * 1_000_003 + round_ * 1_009 + number)
            states.append(model.state_dict())
            weights.append(len(labels))
        share = np.asarray(weights, dtype=np.float64) / sum(weights)
        state = {key: sum(float(w) * s[key] for w, s in zip(share, states)) for key in state}
    return time.perf_counter() - started


def engine_overhead() -> list[Figure]:
    """2: the federated arm (both models, seed 0) through Flower's simulation engine against the in-process floor."""
    from study.federation.simulation import run_federated

    config = StudyConfig(seeds=(0,))
    units = [Unit("federated", model, 0) for model in config.models]
    floor = sum(in_process_federated_seconds(config, unit) for unit in units)
    started = time.perf_counter()
    outcomes = run_federated([federated_experiment(config, unit) for unit in units], lambda _: None)
    with_start = time.perf_counter() - started
    engine = sum(outcome.seconds for outcome in outcomes)
    return [Figure("engine: in-process floor (same steps, one process)", floor, "s"),
            Figure("engine: federated arms through Flower, excluding engine start", engine, "s"),
            Figure("engine overhead ratio, excluding the one engine start", engine / floor, "x", 3),
            Figure("engine overhead ratio, including the engine start", with_start / floor, "x")]


def dp_sgd_cost() -> list[Figure]:
    """3: seconds per training step with Opacus DP-SGD over the same step without DP, default batch size."""
    config = StudyConfig(seeds=(0,))
    data = seed_data(config, 0)
    features = np.vstack([data.preprocessor.transform(site.x_train) for site in data.sites])
    labels = np.concatenate([site.y_train for site in data.sites])
    train = whole_run_settings(config)
    figures = []
    for model_name in config.models:
        per_step = {}
        for private in (False, True):
            privacy = PrivateTraining(noise_multiplier=1.0, accountant="rdp") if private else None
            best = np.inf
            for _ in range(3):
                model = build_model(model_name, features.shape[1], hidden=config.mlp_hidden, seed=0)
                started = time.perf_counter()
                report = fit(model, features, labels, train, seed=0, privacy=privacy)
                best = min(best, (time.perf_counter() - started) / report.steps)
            per_step[private] = best
        figures += [Figure(f"DP-SGD {model_name}: ms per step without DP", 1e3 * per_step[False], "ms"),
                    Figure(f"DP-SGD {model_name}: ms per step with Opacus", 1e3 * per_step[True], "ms"),
                    Figure(f"DP-SGD {model_name}: step time ratio (DP / plain)", per_step[True] / per_step[False], "x", 2.5)]
    return figures


def scale(output: Path, sizes: tuple[int, ...]) -> list[Figure]:
    """4: synthetic hospitals over 100 sites, federated logistic regression for 5 rounds."""
    figures, measured = [], {}
    for rows in sizes:
        _, peak, run_dir = run_cli(["--dataset", "synthetic-hospitals", "--sites", "100", "--synthetic-rows", str(rows),
                                    "--arms", "federated", "--models", "lr", "--seeds", "0", "--rounds", "5",
                                    "--canaries", "0", "--no-cache", "--output", str(output)])
        table = pd.read_csv(run_dir / "results.csv")
        per_round = table.loc[(table["arm"] == "federated") & (table["metric"] == "round_seconds"), "value"].mean()
        measured[rows] = (per_round, peak)
        limits = (15, 6) if rows == 1_000_000 else (None, None)
        figures += [Figure(f"scale {rows:,} rows x 100 sites: seconds per round", per_round, "s", limits[0]),
                    Figure(f"scale {rows:,} rows x 100 sites: peak RSS", peak, "GB", limits[1])]
    if len(sizes) > 1:
        small, large = min(sizes), max(sizes)
        growth = large / small
        figures += [Figure(f"scale: time per round growth for {growth:g}x rows (linear = {growth:g})",
                           measured[large][0] / measured[small][0], "x"),
                    Figure(f"scale: peak RSS growth for {growth:g}x rows", measured[large][1] / measured[small][1], "x")]
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="scale runs at 100,000 rows only")
    parser.add_argument("--output", type=Path, metavar="FOLDER",
                        help="keep the benchmark's run folders (reports) here instead of a temporary folder")
    args = parser.parse_args()
    if args.output and args.output.exists() and any(args.output.iterdir()):
        parser.error(f"--output: {args.output} is not empty; give a new folder, so that the default study trains "
                     "from scratch instead of reusing cached results")
    quick = args.quick
    torch.set_num_threads(1)  # as the study's own training does: these models are too small for threads
    with tempfile.TemporaryDirectory() as folder:
        output = args.output or Path(folder)
        sections = [
            ("1, 5. default study and rerun", lambda: default_study_and_rerun(output / "default")),
            ("2. engine overhead", engine_overhead),
            ("3. DP-SGD cost", dp_sgd_cost),
            ("4. scale", lambda: scale(output / "scale", (100_000,) if quick else (100_000, 1_000_000))),
        ]
        for title, measure in sections:
            print(title, flush=True)
            for figure in measure():
                print(figure.line(), flush=True)


if __name__ == "__main__":
    main()
