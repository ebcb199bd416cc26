"""The headline's sentences follow the numbers they are given (composition only; the numbers come from runs)."""

import math

import numpy as np
import pandas as pd
import pytest

from study.evaluation import ALL_SITES
from study.report.html import headline
from study.results import final_results, make_table


def _table(accuracies: dict[tuple[str, float | None], float]) -> pd.DataFrame:
    records = [
        {"arm": arm, "model": "lr", "seed": seed, "epsilon": math.nan if epsilon is None else epsilon,
         "round": None, "site": ALL_SITES, "metric": "accuracy", "value": accuracy + 0.01 * seed}
        for (arm, epsilon), accuracy in accuracies.items() for seed in (0, 1)
    ]
    return make_table(records)


METADATA = {"config": {"models": ["lr"], "epsilons": [1.0, math.inf]}}


def test_headline_attributes_the_dp_loss_to_scaling_when_noiseless_dp_is_run():
    table = _table({("federated", None): 0.90, ("centralized", None): 0.92, ("federated-dp", 1.0): 0.80,
                    ("federated-dp", math.inf): 0.85})
    [sentence] = headline(table, METADATA)
    assert "ε = 1 per hospital" in sentence
    assert "ε = ∞" in sentence and "5.0 points of the cost of privacy come from" in sentence


@pytest.mark.parametrize("noiseless", [None, 0.95])
def test_headline_makes_no_attribution_without_a_noiseless_loss(noiseless):
    accuracies = {("federated", None): 0.90, ("federated-dp", 1.0): 0.80}
    if noiseless is not None:
        accuracies[("federated-dp", math.inf)] = noiseless
    [sentence] = headline(_table(accuracies), METADATA)
    assert "points of the cost of privacy" not in sentence


def test_final_results_take_each_arms_own_last_round():
    """The scaling sweep's 3 rounds must not hide a federated arm trained for 2 (the runs index showed '–')."""
    rows = [{"arm": arm, "model": "lr", "seed": 0, "epsilon": np.nan, "round": round_, "site": "all sites",
             "metric": "accuracy", "value": value}
            for arm, rounds in (("federated", 2), ("federated-scaling", 3)) for round_, value in
            zip(range(1, rounds + 1), (0.5, 0.9, 0.7))]
    rows.append({"arm": "centralized", "model": "lr", "seed": 0, "epsilon": np.nan, "round": np.nan,
                 "site": "all sites", "metric": "accuracy", "value": 0.95})
    final = final_results(make_table(rows))
    assert sorted(zip(final["arm"], final["round"].fillna(0))) == [
        ("centralized", 0), ("federated", 2), ("federated-scaling", 3)]
