import pandas as pd
import pytest

from study.config import StudyConfig
from study.pipeline import run_study

IN_PROCESS = ("centralized", "local", "centralized-dp")


@pytest.fixture
def small_config():
    return StudyConfig(seeds=(0,), models=("lr",), arms=IN_PROCESS, epsilons=(2.0,), rounds=2)


def test_identical_rerun_trains_nothing_and_gives_the_same_table(small_config, tmp_path):
    first = run_study(small_config, cache_dir=tmp_path)
    again = run_study(small_config, cache_dir=tmp_path)
    assert (first.trained, first.reused) == (3, 0)
    assert (again.trained, again.reused) == (0, 3)
    pd.testing.assert_frame_equal(first.table, again.table)


def test_new_budget_reuses_everything_that_does_not_depend_on_it(small_config, tmp_path):
    run_study(small_config, cache_dir=tmp_path)
    rerun = run_study(small_config.with_overrides(epsilons=(2.0, 5.0)), cache_dir=tmp_path)
    assert (rerun.trained, rerun.reused) == (1, 3)
    new_delta = run_study(small_config.with_overrides(delta=1e-6), cache_dir=tmp_path)
    assert (new_delta.trained, new_delta.reused) == (1, 2)


def test_a_training_setting_invalidates_every_result(small_config, tmp_path):
    run_study(small_config, cache_dir=tmp_path)
    rerun = run_study(small_config.with_overrides(learning_rate=0.05), cache_dir=tmp_path)
    assert (rerun.trained, rerun.reused) == (3, 0)


def test_without_a_cache_folder_nothing_is_reused(small_config):
    assert run_study(small_config).reused == 0
