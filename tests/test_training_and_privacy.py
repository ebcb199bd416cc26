import threading

import numpy as np
import pytest
import torch

from study.arms import centralized
from study.config import StudyConfig
from study.pipeline import seed_data as seed_data_of
from study.models import build_model
from study.privacy import calibrate_noise, epsilon_spent, merge_history
from study.training import PrivateTraining, TrainSettings, batch_plan, fit


def _metric(rows, name, site="all"):
    return next(value for row_site, metric, value in rows if row_site == site and metric == name)


@pytest.fixture(scope="module")
def seed_data():
    return seed_data_of(StudyConfig(), 0)


def test_centralized_logistic_regression_reaches_published_auc(seed_data):
    rows = centralized(StudyConfig(), seed_data, "lr").rows
    assert _metric(rows, "auc") >= 0.98


@pytest.mark.parametrize("epsilon", [1.0, 3.0])
def test_centralized_dp_spends_close_to_but_not_over_its_budget(seed_data, epsilon):
    rows = centralized(StudyConfig(), seed_data, "lr", epsilon).rows
    spent = _metric(rows, "epsilon")
    assert 0.8 * epsilon <= spent <= epsilon
    if epsilon == 1.0:
        assert _metric(rows, "auc") >= 0.95


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
@pytest.mark.parametrize("target", [0.1, 0.5, 1.0, 8.0])
def test_calibrated_noise_meets_target_within_tolerance(accountant, target):
    rate, steps = batch_plan(85, 32, 30)
    noise = calibrate_noise(target_epsilon=target, delta=1e-5, sample_rate=rate, steps=steps, accountant=accountant)
    spent = epsilon_spent([(noise, rate, steps)], delta=1e-5, accountant=accountant)
    assert target - 0.01 * min(1.0, target) <= spent <= target


@pytest.mark.parametrize(
    "noise, rate, steps, delta, expected",
    [(1.5, 0.04, 2250, 1e-5, 7.3291), (1.3, 150 / 60000, 6000, 1e-5, 0.72422), (1.0, 0.001, 30000, 1e-7, 1.41550)],
)
def test_rdp_reference_values(noise, rate, steps, delta, expected):
    assert epsilon_spent([(noise, rate, steps)], delta=delta, accountant="rdp") == pytest.approx(expected, abs=6e-5)


def test_prv_reference_value_is_below_rdp():
    prv = epsilon_spent([(1.5, 0.04, 2250)], delta=1e-5, accountant="prv")
    assert prv == pytest.approx(6.777, rel=0.01)


def test_merging_history_does_not_change_epsilon():
    history = [(2.0, 0.25, 8)] * 5 + [(3.0, 0.5, 4)]
    assert merge_history(history) == [(2.0, 0.25, 40), (3.0, 0.5, 4)]
    merged = epsilon_spent(history, delta=1e-5, accountant="rdp")
    assert merged == pytest.approx(epsilon_spent([(2.0, 0.25, 40), (3.0, 0.5, 4)], delta=1e-5, accountant="rdp"))


def test_training_longer_spends_more():
    rate, steps = batch_plan(100, 32, 10)
    short = epsilon_spent([(1.0, rate, steps)], delta=1e-5, accountant="rdp")
    long = epsilon_spent([(1.0, rate, steps * 2)], delta=1e-5, accountant="rdp")
    assert long > short


@pytest.mark.parametrize("privacy", [None, PrivateTraining(noise_multiplier=1.0, accountant="rdp")])
def test_same_seed_gives_identical_weights(privacy):
    rng = np.random.default_rng(0)
    features = rng.normal(size=(60, 5)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(int)
    settings = TrainSettings(epochs=3, batch_size=8, learning_rate=0.1, max_grad_norm=1.0)
    weights = []
    for _ in range(2):
        model = build_model("mlp", 5, hidden=4, seed=1)
        fit(model, features, labels, settings, seed=5, privacy=privacy)
        weights.append(torch.cat([p.flatten() for p in model.parameters()]))
    torch.testing.assert_close(weights[0], weights[1], rtol=0, atol=0)


def test_models_built_in_parallel_threads_get_their_seeds_weights():
    """The server, the in-process arms and the background evaluation build models at the same time."""
    alone = {seed: build_model("mlp", 30, hidden=32, seed=seed).state_dict() for seed in range(4)}
    differing = []

    def build_many(seed: int) -> None:
        for _ in range(100):
            weights = build_model("mlp", 30, hidden=32, seed=seed).state_dict()
            if not all(torch.equal(weights[name], alone[seed][name]) for name in weights):
                differing.append(seed)

    threads = [threading.Thread(target=build_many, args=(seed,)) for seed in alone]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not differing


def test_dp_history_records_the_steps_really_taken():
    features = np.random.default_rng(0).normal(size=(30, 3)).astype(np.float32)
    labels = np.arange(30) % 2
    settings = TrainSettings(epochs=4, batch_size=8, learning_rate=0.1, max_grad_norm=1.0)
    report = fit(build_model("lr", 3, hidden=1, seed=0), features, labels, settings, seed=0,
                 privacy=PrivateTraining(noise_multiplier=1.0, accountant="rdp"))
    rate, steps = batch_plan(30, 8, 4)
    assert report.steps == steps
    assert merge_history(report.privacy_history) == [(1.0, rate, steps)]


def test_diverged_model_gets_nan_metrics_instead_of_a_crash():
    from study.metrics import binary_metrics

    metrics = binary_metrics(np.array([0, 1, 1]), np.array([0.2, np.nan, 0.9]))
    assert all(np.isnan(value) for value in metrics.values())


def test_infinite_budget_means_no_noise_and_infinite_epsilon():
    rate, steps = batch_plan(85, 32, 30)
    assert calibrate_noise(target_epsilon=float("inf"), delta=1e-5, sample_rate=rate, steps=steps, accountant="prv") == 0.0
    assert epsilon_spent([(0.0, rate, steps)], delta=1e-5, accountant="prv") == float("inf")


def _pld_epsilon(noise: float, rate: float, steps: int, delta: float) -> float:
    import dp_accounting

    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(rate, dp_accounting.GaussianDpEvent(noise)), steps
    )
    accountant = dp_accounting.pld.PLDAccountant()
    accountant.compose(event)
    return accountant.get_epsilon(delta)


@pytest.mark.parametrize("target", [1.0, 3.0, 8.0])
def test_reported_prv_epsilon_agrees_with_google_pld_within_three_percent(target):
    """Cross-check with an independent implementation (Google's dp-accounting) for the run training really did."""
    features = np.random.default_rng(0).normal(size=(120, 4)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(int)
    settings = TrainSettings(epochs=10, batch_size=16, learning_rate=0.1, max_grad_norm=1.0)
    rate, steps = batch_plan(len(labels), settings.batch_size, settings.epochs)
    noise = calibrate_noise(target_epsilon=target, delta=1e-5, sample_rate=rate, steps=steps, accountant="prv")
    report = fit(build_model("lr", 4, hidden=1, seed=0), features, labels, settings, seed=0,
                 privacy=PrivateTraining(noise_multiplier=noise, accountant="prv"))
    reported = epsilon_spent(report.privacy_history, delta=1e-5, accountant="prv")
    ((used_noise, used_rate, used_steps),) = merge_history(report.privacy_history)
    assert reported == pytest.approx(_pld_epsilon(used_noise, used_rate, used_steps, 1e-5), rel=0.03)


def test_rdp_epsilon_is_an_upper_bound_on_pld():
    assert epsilon_spent([(1.5, 0.04, 2250)], delta=1e-5, accountant="rdp") > _pld_epsilon(1.5, 0.04, 2250, 1e-5)


@pytest.mark.parametrize("batch_size", [2, 8, 32])
def test_thirty_row_site_trains_under_dp_sgd_and_is_accounted(batch_size):
    """Poisson sampling at rate 1/15 draws empty batches; they still count as (noisy) steps."""
    features = np.random.default_rng(1).normal(size=(30, 3)).astype(np.float32)
    labels = (features[:, 0] > 0).astype(int)
    settings = TrainSettings(epochs=20, batch_size=batch_size, learning_rate=0.1, max_grad_norm=1.0)
    rate, steps = batch_plan(30, settings.batch_size, settings.epochs)
    noise = calibrate_noise(target_epsilon=3.0, delta=1e-5, sample_rate=rate, steps=steps, accountant="rdp")
    model = build_model("mlp", 3, hidden=4, seed=0)
    report = fit(model, features, labels, settings, seed=0, privacy=PrivateTraining(noise_multiplier=noise, accountant="rdp"))
    assert merge_history(report.privacy_history) == [(noise, rate, steps)]
    assert 2.4 <= epsilon_spent(report.privacy_history, delta=1e-5, accountant="rdp") <= 3.0
    assert all(torch.isfinite(p).all() for p in model.parameters())
