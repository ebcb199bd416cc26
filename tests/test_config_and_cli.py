import shlex
import subprocess
import sys

import pytest

from study.cli import parse, reproduce_command
from study.config import ConfigError, StudyConfig
from study.run import main


@pytest.mark.parametrize(
    "argv, option",
    [
        (["--dataset", "mnist"], "--dataset"),
        (["--models", "xgboost"], "--models"),
        (["--epsilon", "0"], "--epsilon"),
        (["--epsilon", "-2", "3"], "--epsilon"),
        (["--epsilon", "nan"], "--epsilon"),
        (["--delta", "0"], "--delta"),
        (["--delta", "1"], "--delta"),
        (["--delta", "1.5"], "--delta"),
        (["--sites", "1"], "--sites"),
        (["--sites", "100"], "--sites"),
        (["--rounds", "0"], "--rounds"),
        (["--alpha", "-1"], "--alpha"),
        (["--test-fraction", "1"], "--test-fraction"),
        (["--seeds", "1", "1"], "--seeds"),
        (["--sites", "five"], "--sites"),
        (["--config", "no-such-file.toml"], "--config"),
        (["--no-such-flag"], "--no-such-flag"),
        (["--epsilon", "0.001"], "--epsilon"),
        (["--epsilon", "1", "1.0"], "--epsilon"),
        (["--epsilon", "1e6"], "--epsilon"),
        (["--models", "lr", "lr"], "--models"),
        (["--arms", "local", "local"], "--arms"),
        (["--seeds", "4294967295"], "--seeds"),
        (["--delta", "1e-300", "--epsilon", "0.1"], "--epsilon"),
        (["--test-fraction", "0.99"], "--test-fraction"),
        (["--alpha", "0.0001"], "--alpha"),
    ],
)
def test_bad_values_stop_with_one_line_naming_the_option(argv, option, capsys, tmp_path):
    assert _exit_code(argv + ["--output", str(tmp_path / "reports")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1, error
    assert option in error
    assert "Traceback" not in error
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").iterdir())


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as stopped:  # argparse's own errors
        return int(stopped.code)


def test_real_cli_bad_value_exit_code_and_single_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "study.run", "--epsilon", "0", "--output", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "--epsilon" in done.stderr and "Traceback" not in done.stderr


def test_flags_override_toml_which_overrides_defaults(tmp_path):
    toml = tmp_path / "study.toml"
    toml.write_text('sites = 4\nrounds = 7\nlocal-epochs = 3\nepsilons = [0.5, 2.0]\n')
    config, _ = parse(["--config", str(toml), "--rounds", "9"])
    assert (config.sites, config.rounds, config.local_epochs, config.epsilons) == (4, 9, 3, (0.5, 2.0))
    assert config.batch_size == StudyConfig().batch_size


def test_infinite_budget_is_accepted():
    config, _ = parse(["--epsilon", "inf", "1"])
    assert config.epsilons == (float("inf"), 1.0)


def test_toml_with_unknown_key_is_a_config_error(tmp_path):
    toml = tmp_path / "study.toml"
    toml.write_text("epsilonz = [1.0]\n")
    with pytest.raises(ConfigError, match="unknown key 'epsilonz'"):
        parse(["--config", str(toml)])


def test_reproduce_command_rebuilds_the_same_config(tmp_path):
    config = StudyConfig(sites=4, split="iid", epsilons=(0.5, 8.0), seeds=(3,), models=("mlp",), learning_rate=0.05)
    command = reproduce_command(config, tmp_path)
    argv = shlex.split(command)[3:]
    rebuilt, args = parse(argv)
    assert rebuilt == config
    assert args.output == tmp_path


@pytest.mark.parametrize(
    "toml, option",
    [("epsilons = 3", "--epsilon"), ("seeds = [1.5]", "--seeds"), ('sites = "five"', "--sites"),
     ("rounds = true", "--rounds"), ("not toml at all [", "--config")],
)
def test_config_file_with_wrong_types_names_the_key(toml, option, tmp_path, capsys):
    path = tmp_path / "study.toml"
    path.write_text(toml + "\n")
    assert _exit_code(["--config", str(path), "--output", str(tmp_path / "reports")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and option in error


def test_config_file_may_start_with_a_byte_order_mark(tmp_path):
    path = tmp_path / "study.toml"
    path.write_bytes("\ufeffsites = 3\n".encode("utf-8"))
    config, _ = parse(["--config", str(path)])
    assert config.sites == 3


@pytest.mark.parametrize("where", ["config-dir", "output-under-file"])
def test_unusable_paths_name_their_option(where, tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    argv = ["--config", str(tmp_path)] if where == "config-dir" else ["--output", str(blocker / "reports")]
    assert _exit_code(argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and ("--config" in error if where == "config-dir" else "--output" in error)
