"""The canary audit: its statistics, that it has power against a model that memorizes, and that DP arms pass it."""

import math

import numpy as np
import pytest
from scipy.special import logit

import dataclasses

from study.arms import centralized
from study.audit import _refuted_epsilon, canary_site, canaries_for, epsilon_lower_bound, with_canaries
from study.config import StudyConfig
from study.pipeline import seed_data


def _rows(config: StudyConfig, seed: int, model: str, epsilon: float | None) -> dict[str, float]:
    data = seed_data(config, seed)
    return {metric: value for site, metric, value in centralized(config, data, model, epsilon).rows if site == "all"}


def test_all_guesses_right_refutes_exactly_the_binomial_tail():
    """r right guesses out of r refute epsilon-DP at level a when (e^eps / (1 + e^eps))^r < a (delta 0)."""
    expected = float(logit(0.05 ** (1 / 40)))
    assert _refuted_epsilon(100, 40, 40, 0.0, 0.05) == pytest.approx(expected, abs=1e-3)
    # delta only makes the bound smaller; chance-level guessing refutes nothing
    assert _refuted_epsilon(100, 40, 40, 1e-3, 0.05) < expected
    assert _refuted_epsilon(100, 40, 20, 0.0, 0.05) == 0.0


def test_random_scores_give_no_bound_and_perfect_scores_a_positive_one():
    rng = np.random.default_rng(0)
    members = rng.random(200) < 0.5
    assert epsilon_lower_bound(rng.normal(size=200), members, 1e-5) < 0.5
    perfect = epsilon_lower_bound(members.astype(float), members, 1e-5)
    assert 2.0 < perfect < 10.0


def test_canaries_are_the_same_for_every_arm_and_go_to_the_largest_site(default_sites):
    first, again = canaries_for(default_sites, 64, seed=0, width=30), canaries_for(default_sites, 64, seed=0, width=30)
    np.testing.assert_array_equal(first.features, again.features)
    np.testing.assert_array_equal(first.included, again.included)
    wider = canaries_for(default_sites, 64, seed=0, width=40)  # an arm whose inputs are wider: same memberships
    np.testing.assert_array_equal(first.included, wider.included)
    np.testing.assert_array_equal(first.labels, wider.labels)
    assert first.site == canary_site(default_sites) == int(np.argmax([len(s.y_train) for s in default_sites]))
    x, y = default_sites[first.site].x_train.to_numpy(np.float32), default_sites[first.site].y_train
    with_x, with_y = with_canaries(x, y, first.site, first)
    assert len(with_y) == len(y) + first.included.sum()
    other = (first.site + 1) % len(default_sites)
    assert with_canaries(x, y, other, first)[0] is x
    assert canaries_for(default_sites, 0, seed=0, width=30) is None


def test_audit_has_power_against_a_non_private_model_that_memorizes():
    """A wide MLP trained long on few rows memorizes its canaries: the audit must see it clearly."""
    config = StudyConfig(split="iid", canaries=200, mlp_hidden=256, rounds=40, local_epochs=5, learning_rate=0.2)
    rows = _rows(config, 0, "mlp", None)
    assert rows["audit_auc"] > 0.8
    assert rows["audit_epsilon_lower_bound"] > 0.5


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("epsilon", [1.0, 8.0])
def test_dp_training_never_shows_more_leakage_than_it_claims(seed, epsilon):
    config = StudyConfig(split="iid", canaries=200, mlp_hidden=256, rounds=40, local_epochs=5, learning_rate=0.2)
    rows = _rows(config, seed, "mlp", epsilon)
    assert rows["epsilon"] <= epsilon
    assert rows["audit_epsilon_lower_bound"] <= rows["epsilon"]


def test_dp_arms_never_see_the_sites_statistics(default_sites):
    """DP arms preprocess with the public schema: wrong pooled statistics change the non-private arm, never the DP
    one."""
    config = StudyConfig(rounds=2, local_epochs=1)
    honest = seed_data(config, 0)
    wrong = seed_data(dataclasses.replace(config, seeds=(1,)), 1).preprocessor  # another split's statistics
    garbage = dataclasses.replace(honest, preprocessor=wrong)
    assert centralized(config, honest, "lr", 3.0).rows == centralized(config, garbage, "lr", 3.0).rows
    assert centralized(config, honest, "lr").rows != centralized(config, garbage, "lr").rows
    assert not math.isnan(honest.public_preprocessor.center.sum())
