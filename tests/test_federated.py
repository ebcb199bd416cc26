"""Federated arms through Flower's real simulation engine (starts Ray: run inside a loopback-only namespace)."""

import numpy as np
import pytest

from study.config import SCALING_ARM, SCALING_ROUNDS, SCALING_SITES, StudyConfig
from study.data.sites import build_sites, federation_preprocessor, public_preprocessor, schema_of
from study.data.sources import source_of
from study.evaluation import ALL_SITES
from study.federation import simulation
from study.pipeline import run_study, split_spec
from study.results import final_results

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def iid_study():
    """One engine start for the whole module; also keeps the raw federated outcomes for inspection."""
    config = StudyConfig(
        split="iid", seeds=(0,), models=("lr",), epsilons=(1.0, 4.0),
        arms=("centralized", "federated", "federated-dp", "federated-client-dp"),
    )
    return config, run_keeping_outcomes(config)


def run_keeping_outcomes(config: StudyConfig):
    """run_study, with the raw federated outcomes kept in `results.outcomes`."""
    outcomes = []

    def keep_outcomes(experiments, progress, ray_address=None, **hooks):
        outcomes.extend(real_run_federated(experiments, progress, ray_address, **hooks))
        return outcomes

    real_run_federated = simulation.run_federated
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(simulation, "run_federated", keep_outcomes)
        results = run_study(config)
    results.outcomes = outcomes
    return results


def _study_outcomes(results) -> list:
    """The outcomes of the study's arms (the scaling sweep splits the data its own way)."""
    return [outcome for outcome in results.outcomes if outcome.experiment.arm != SCALING_ARM]


def test_the_scaling_sweep_times_rounds_for_2_5_and_10_sites(iid_study):
    config, results = iid_study
    sweep = results.table[results.table["arm"] == SCALING_ARM]
    assert set(sweep["metric"]) == {"round_seconds"} and (sweep["value"] > 0).all()
    assert sweep.groupby("site")["round"].apply(sorted).to_dict() == {
        f"{sites} sites": list(range(1, SCALING_ROUNDS + 1)) for sites in SCALING_SITES}
    sizes = {outcome.experiment.split.n_sites for outcome in results.outcomes if outcome.experiment.arm == SCALING_ARM}
    assert sizes == set(SCALING_SITES)


def _final(results, arm, metric, site=ALL_SITES, epsilon=None):
    table = final_results(results.table)
    chosen = table[(table["arm"] == arm) & (table["metric"] == metric) & (table["site"] == site)]
    chosen = chosen[chosen["epsilon"].isna()] if epsilon is None else chosen[chosen["epsilon"] == epsilon]
    return chosen["value"].to_numpy()


def test_federated_lr_on_iid_split_matches_centralized(iid_study):
    _, results = iid_study
    (central,) = _final(results, "centralized", "auc")
    (federated,) = _final(results, "federated", "auc")
    assert abs(federated - central) <= 0.01


@pytest.mark.parametrize("arm", ["federated-dp", "federated-client-dp"])
@pytest.mark.parametrize("target", [1.0, 4.0])
def test_every_site_spends_close_to_but_not_over_its_budget(iid_study, target, arm):
    config, results = iid_study
    table = results.table
    spent = table[(table["arm"] == arm) & (table["metric"] == "epsilon") & (table["epsilon"] == target)]
    per_site = spent[spent["site"] != ALL_SITES]["value"].to_numpy()
    assert len(per_site) == config.sites
    assert np.all(per_site <= target) and np.all(per_site >= 0.8 * target)
    assert spent[spent["site"] == ALL_SITES]["value"].item() == pytest.approx(per_site.max())


def test_federated_dp_lr_at_epsilon_one_still_predicts(iid_study):
    _, results = iid_study
    (auc,) = _final(results, "federated-dp", "auc", epsilon=1.0)
    assert auc >= 0.95


def test_learning_curve_has_every_round(iid_study):
    config, results = iid_study
    table = results.table
    rounds = table[(table["arm"] == "federated") & (table["metric"] == "auc") & (table["site"] == ALL_SITES)]["round"]
    assert sorted(rounds.tolist()) == list(range(1, config.rounds + 1))


def test_federated_scaling_comes_from_site_statistics_and_dp_scaling_from_public_ranges(iid_study):
    """The preprocessing the sites agreed on through Flower equals the pooled-statistics one computed in-process; DP
    experiments never receive the sites' statistics, only the public ranges."""
    config, results = iid_study
    source = source_of(config)
    pooled = federation_preprocessor(build_sites(split_spec(config, 0)), schema_of(source))
    public = public_preprocessor(source)
    for outcome in _study_outcomes(results):
        expected = pooled if outcome.experiment.epsilon is None else public
        np.testing.assert_allclose(outcome.preprocessor.center, expected.center)
        np.testing.assert_allclose(outcome.preprocessor.scale, expected.scale)


def test_every_federated_model_is_audited_and_dp_passes(iid_study):
    _, results = iid_study
    final = final_results(results.table)
    for (arm, epsilon), group in final[final["site"] == ALL_SITES].groupby(["arm", "epsilon"], dropna=False):
        metrics = dict(zip(group["metric"], group["value"]))
        assert 0.0 <= metrics["audit_auc"] <= 1.0
        if arm in ("federated-dp", "federated-client-dp"):
            assert metrics["audit_epsilon_lower_bound"] <= metrics["epsilon"]


def test_adaptive_client_level_clipping_runs_and_is_accounted():
    config = StudyConfig(split="iid", seeds=(0,), models=("lr",), epsilons=(1.0,), rounds=3,
                         arms=("federated-client-dp",), client_clipping="adaptive")
    table = run_study(config).table
    spent = table[(table["metric"] == "epsilon") & (table["site"] == ALL_SITES)]["value"].item()
    assert 0.8 <= spent <= 1.0
    assert final_results(table).query("metric == 'auc' and site == @ALL_SITES")["value"].item() > 0.5


def test_client_level_dp_costs_more_accuracy_with_few_sites_than_record_level(iid_study):
    """Hiding a whole site among five needs far more noise than hiding one record: the study must show it."""
    _, results = iid_study
    (record_level,) = _final(results, "federated-dp", "auc", epsilon=1.0)
    (site_level,) = _final(results, "federated-client-dp", "auc", epsilon=1.0)
    assert site_level < record_level


def test_strategies_and_mixed_data_run_through_flower(tmp_path, write_uci_files):
    """Four Flower strategies side by side on the heart-disease format (categories, missing values, natural split):
    each trains, FedProx's proximal term changes the model, and the preprocessing the sites agreed on through
    Flower's messages equals the one computed in-process."""
    folder = write_uci_files(tmp_path / "hd", rows=40)
    config = StudyConfig(dataset="heart-disease", data_dir=str(folder), seeds=(0,), models=("lr",), rounds=3,
                         arms=("centralized", "federated"), strategies=("fedavg", "fedprox", "fedadam", "fedyogi"),
                         proximal_mu=1.0, canaries=0)
    results = run_keeping_outcomes(config)
    final = final_results(results.table)
    accuracy = final[(final["metric"] == "accuracy") & (final["site"] == ALL_SITES)].set_index("arm")["value"]
    assert set(accuracy.index) == {"centralized", "federated", "federated-fedprox", "federated-fedadam",
                                   "federated-fedyogi"}
    sites = set(final.loc[final["arm"] == "federated-fedadam", "site"]) - {ALL_SITES}
    assert sites == {"Cleveland", "Hungary", "Switzerland", "Long Beach VA"}
    probabilities = results.predictions.groupby("arm")["probability"].apply(list)
    assert probabilities["federated"] != probabilities["federated-fedprox"]
    source = source_of(config)
    expected = federation_preprocessor(build_sites(split_spec(config, 0)), schema_of(source))
    assert all(outcome.preprocessor == expected for outcome in _study_outcomes(results))
