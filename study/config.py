"""The study's configuration: one validated object built from defaults, a TOML file and CLI flags."""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATASETS = ("breast-cancer", "heart-disease", "synthetic-hospitals", "csv")
MODELS = ("lr", "mlp")
SPLITS = ("auto", "natural", "iid", "dirichlet", "quantity")
ACCOUNTANTS = ("prv", "rdp")
CLIENT_CLIPPINGS = ("fixed", "adaptive")
ARMS = ("centralized", "local", "federated", "centralized-dp", "federated-dp", "centralized-iid", "federated-iid",
        "federated-client-dp")
DEFAULT_ARMS = ARMS[:7]  # client-level DP is opt-in (--arms ... federated-client-dp): it adds a third more time
DP_ARMS = ("centralized-dp", "federated-dp", "federated-client-dp")
# The federated arm of each Flower strategy (`--strategy`); DP and contrast arms use FedAvg.
STRATEGY_ARMS = {"fedavg": "federated", "fedprox": "federated-fedprox", "fedadam": "federated-fedadam",
                 "fedyogi": "federated-fedyogi"}
FEDERATED_ARMS = ("federated", "federated-dp", "federated-iid", "federated-client-dp", *list(STRATEGY_ARMS.values())[1:])
# Not an arm a user picks: a short FedAvg run of logistic regression on an IID split into 2, 5 and 10 sites, timed
# only, so the report can show how the time per round grows with the number of sites.
SCALING_ARM = "federated-scaling"
SCALING_SITES = (2, 5, 10)
SCALING_ROUNDS = 3
SCALING_MIN_ROWS_PER_SITE = 20
SCALING_MAX_ROWS = 20_000  # beyond, the sweep would cost minutes: benchmarks/run.py measures scale instead


def strategy_of(arm: str) -> str:
    """The Flower strategy an arm trains with."""
    return next((strategy for strategy, name in STRATEGY_ARMS.items() if name == arm), "fedavg")
# Contrast arms: the same training as their base arm, on an IID split of the same data, to show how much the
# federated-vs-centralized gap depends on how different the sites are. Skipped when the study's split is IID.
CONTRAST_ARMS = {"centralized-iid": "centralized", "federated-iid": "federated"}


MAX_SEED = 2**31 - 1  # seeds are offset per site and round; scikit-learn takes seeds below 2**32
MAX_EPSILON = 100.0  # e**100: no meaningful guarantee, and accountants grow slow and unstable there
MIN_CANARIES, MAX_CANARIES = 20, 10_000  # fewer than 20 cannot refute any epsilon at 95% confidence


class ConfigError(ValueError):
    """A bad configuration value; the message names the option and how to fix it."""


@dataclass(frozen=True)
class StudyConfig:
    """Everything a study run depends on. Two equal configs give the same numbers."""

    dataset: str = "breast-cancer"
    data: str = ""
    target: str = ""
    positive: str = ""
    positive_above: float | None = None
    site_column: str = ""
    public_schema: str = ""
    data_dir: str = "datasets/heart-disease"
    synthetic_rows: int = 5000
    synthetic_shift: float = 1.0
    synthetic_missing: float = 0.1
    synthetic_prevalence: tuple[float, ...] = (0.1, 0.4)
    synthetic_seed: int = 0
    sites: int = 5
    split: str = "auto"
    alpha: float = 0.5
    test_fraction: float = 0.25
    seeds: tuple[int, ...] = (0, 1, 2)
    models: tuple[str, ...] = MODELS
    arms: tuple[str, ...] = DEFAULT_ARMS
    strategies: tuple[str, ...] = ("fedavg",)
    proximal_mu: float = 0.1
    server_learning_rate: float = 0.1
    epsilons: tuple[float, ...] = (1.0, 3.0, 8.0, math.inf)
    delta: float = 1e-5
    accountant: str = "rdp"
    rounds: int = 15
    local_epochs: int = 2
    batch_size: int = 32
    learning_rate: float = 0.1
    max_grad_norm: float = 1.0
    site_clip_norm: float = 1.0
    client_clipping: str = "fixed"
    mlp_hidden: int = 32
    canaries: int = 64

    def __post_init__(self) -> None:
        for name in ("seeds", "models", "arms", "epsilons", "strategies", "synthetic_prevalence"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        for name in ("epsilons", "synthetic_prevalence"):
            object.__setattr__(self, name, tuple(float(e) for e in getattr(self, name)))
        _validate(self)

    @property
    def total_epochs(self) -> int:
        """Passes over each training record, the same for every arm."""
        return self.rounds * self.local_epochs

    @property
    def dp_arms(self) -> tuple[str, ...]:
        return tuple(arm for arm in self.arms if arm in DP_ARMS)

    def to_dict(self) -> dict[str, Any]:
        """Every field that is set (an unset optional value, None, is left out: TOML has no null)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}

    def with_overrides(self, **changes: Any) -> StudyConfig:
        return dataclasses.replace(self, **changes)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


_FLAG_NAMES = {"epsilons": "--epsilon", "strategies": "--strategy"}


def option_name(field_name: str) -> str:
    """The CLI flag that sets a config field (``--epsilon`` sets ``epsilons``; otherwise the name, hyphenated)."""
    return _FLAG_NAMES.get(field_name, "--" + field_name.replace("_", "-"))


def key_name(field_name: str) -> str:
    """The TOML key of a config field: the flag without its dashes, as in ``local-epochs``."""
    return field_name.replace("_", "-")


def _require(ok: bool, field_name: str, problem: str) -> None:
    if not ok:
        raise ConfigError(f"{option_name(field_name)}: {problem}")


def _validate(config: StudyConfig) -> None:
    _require(config.dataset in DATASETS, "dataset",
             f"unknown dataset {config.dataset!r}; choose one of {', '.join(DATASETS)}")
    _validate_data(config)
    _require(config.sites >= 2, "sites", f"needs at least 2 sites to federate, got {config.sites}")
    _require(config.split in SPLITS, "split", f"unknown split {config.split!r}; choose {' or '.join(SPLITS)}")
    _require(config.alpha > 0 and math.isfinite(config.alpha), "alpha",
             f"the Dirichlet concentration must be a positive number, got {config.alpha}")
    _require(0 < config.test_fraction < 1, "test_fraction",
             f"must be between 0 and 1 (exclusive), got {config.test_fraction}")
    _require(len(config.seeds) > 0, "seeds", "give at least one seed")
    _require(len(set(config.seeds)) == len(config.seeds), "seeds", "seeds must be distinct")
    _require(all(0 <= s <= MAX_SEED for s in config.seeds), "seeds", f"seeds must be integers from 0 to {MAX_SEED}")
    _require(len(config.models) > 0, "models", "give at least one model")
    for name in ("models", "arms", "epsilons", "strategies"):
        values = getattr(config, name)
        _require(len(set(values)) == len(values), name, f"each value may appear once, got {' '.join(map(str, values))}")
    for model in config.models:
        _require(model in MODELS, "models", f"unknown model {model!r}; choose from {', '.join(MODELS)}")
    _require(len(config.arms) > 0, "arms", "give at least one arm")
    for arm in config.arms:
        _require(arm in ARMS, "arms", f"unknown arm {arm!r}; choose from {', '.join(ARMS)}")
    _require(len(config.strategies) > 0, "strategies", "give at least one strategy")
    for strategy in config.strategies:
        _require(strategy in STRATEGY_ARMS, "strategies",
                 f"unknown strategy {strategy!r}; choose from {', '.join(STRATEGY_ARMS)}")
    _require(config.proximal_mu > 0 and math.isfinite(config.proximal_mu), "proximal_mu",
             f"FedProx's proximal weight must be a positive number, got {config.proximal_mu}")
    _require(config.server_learning_rate > 0 and math.isfinite(config.server_learning_rate), "server_learning_rate",
             f"must be a positive number, got {config.server_learning_rate}")
    _require(len(config.epsilons) > 0, "epsilons", "give at least one privacy budget")
    for epsilon in config.epsilons:
        _require(epsilon > 0 and not math.isnan(epsilon), "epsilons",
                 f"each privacy budget must be a positive number (or inf: DP-SGD clipping without noise), got {epsilon}")
        _require(epsilon <= MAX_EPSILON or math.isinf(epsilon), "epsilons",
                 f"{epsilon:g} bounds nothing a patient would care about; use at most {MAX_EPSILON:g}, or inf for "
                 "DP-SGD without noise")
    _require(0 < config.delta < 1, "delta", f"must be strictly between 0 and 1, got {config.delta}")
    _require(config.accountant in ACCOUNTANTS, "accountant",
             f"unknown accountant {config.accountant!r}; choose {' or '.join(ACCOUNTANTS)}")
    _require(config.rounds >= 1, "rounds", f"needs at least 1 round, got {config.rounds}")
    _require(config.local_epochs >= 1, "local_epochs", f"needs at least 1 epoch, got {config.local_epochs}")
    _require(config.batch_size >= 1, "batch_size", f"must be at least 1, got {config.batch_size}")
    _require(config.learning_rate > 0 and math.isfinite(config.learning_rate), "learning_rate",
             f"must be a positive number, got {config.learning_rate}")
    _require(config.max_grad_norm > 0 and math.isfinite(config.max_grad_norm), "max_grad_norm",
             f"the DP-SGD clipping norm must be a positive number, got {config.max_grad_norm}")
    _require(config.site_clip_norm > 0 and math.isfinite(config.site_clip_norm), "site_clip_norm",
             f"the client-level DP clipping norm must be a positive number, got {config.site_clip_norm}")
    _require(config.client_clipping in CLIENT_CLIPPINGS, "client_clipping",
             f"unknown clipping {config.client_clipping!r}; choose {' or '.join(CLIENT_CLIPPINGS)}")
    _require(config.mlp_hidden >= 1, "mlp_hidden", f"must be at least 1, got {config.mlp_hidden}")
    _require(config.canaries == 0 or MIN_CANARIES <= config.canaries <= MAX_CANARIES, "canaries",
             f"use 0 (no privacy audit) or {MIN_CANARIES} to {MAX_CANARIES} canaries, got {config.canaries}")


def _validate_data(config: StudyConfig) -> None:
    """The options that say where the data comes from agree with each other."""
    csv = config.dataset == "csv"
    _require(not csv or bool(config.data), "data", "--dataset csv needs --data PATH.csv (and --target COLUMN)")
    _require(csv or not config.data, "data", f"--data reads a CSV, but --dataset is {config.dataset}; leave out --dataset")
    _require(not csv or bool(config.target), "target", f"name the outcome column of {config.data} with --target COLUMN")
    for name in ("target", "positive", "site_column", "public_schema"):
        _require(csv or not getattr(config, name), name, f"applies to --data PATH.csv only, not to --dataset {config.dataset}")
    _require(csv or config.positive_above is None, "positive_above", "applies to --data PATH.csv only")
    _require(not (config.positive and config.positive_above is not None), "positive",
             "give either --positive VALUE or --positive-above NUMBER, not both")
    _require(config.positive_above is None or math.isfinite(config.positive_above), "positive_above",
             f"must be a finite number, got {config.positive_above}")
    _require(config.site_column != config.target or not config.site_column, "site_column",
             "the site column cannot be the target column")
    _require(1_000 <= config.synthetic_rows <= 50_000_000, "synthetic_rows",
             f"use 1000 to 50000000 rows, got {config.synthetic_rows}")
    _require(0 <= config.synthetic_shift <= 5 and math.isfinite(config.synthetic_shift), "synthetic_shift",
             f"use a covariate shift from 0 (none) to 5, got {config.synthetic_shift}")
    _require(0 <= config.synthetic_missing < 0.9, "synthetic_missing",
             f"use a missing share from 0 to below 0.9, got {config.synthetic_missing}")
    low_high = config.synthetic_prevalence
    _require(len(low_high) == 2 and 0 < low_high[0] <= low_high[1] < 1, "synthetic_prevalence",
             f"give LOW HIGH with 0 < LOW <= HIGH < 1, got {' '.join(map(str, low_high))}")
    _require(0 <= config.synthetic_seed <= MAX_SEED, "synthetic_seed", f"use 0 to {MAX_SEED}, got {config.synthetic_seed}")


def read_toml(path: Path) -> dict[str, Any]:
    """Config values from a TOML file; keys are field names (``local_epochs`` or ``local-epochs``)."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise ConfigError(f"--config: file {path} does not exist; check the path") from None
    except OSError as error:
        raise ConfigError(f"--config: cannot read {path} ({error.strerror}); give a TOML file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigError(f"--config: {path} is not valid TOML ({error}); fix the file") from None
    known = {f.name for f in dataclasses.fields(StudyConfig)}
    values = {key.replace("-", "_"): value for key, value in raw.items()}
    unknown = sorted(set(values) - known)
    if unknown:
        keys = ", ".join(key_name(name) for name in sorted(known))
        raise ConfigError(f"--config: unknown key {key_name(unknown[0])!r} in {path}; known keys: {keys}")
    return values


def build_config(values: dict[str, Any]) -> StudyConfig:
    """A StudyConfig from plain values (CLI or TOML); a value of the wrong type is a ConfigError naming it."""
    defaults = StudyConfig()
    for name, value in values.items():
        _check_type(name, value, _OPTIONAL_FLOATS.get(name, getattr(defaults, name)))
    if values.get("data") and "dataset" not in values:
        values = {**values, "dataset": "csv"}  # --data PATH.csv is enough to say the data is a CSV
    if values.get("dataset") == "csv" and "arms" not in values and not values.get("public_schema"):
        # Without a public schema the DP arms have nothing to preprocess with: by default they are left out.
        values = {**values, "arms": tuple(arm for arm in DEFAULT_ARMS if arm not in DP_ARMS)}
    return StudyConfig(**values)


_OPTIONAL_FLOATS = {"positive_above": 0.0}  # fields whose default is None: the type a value must have


def _check_type(name: str, value: Any, default: Any) -> None:
    if isinstance(default, tuple):
        _require(isinstance(value, (list, tuple)), name, f"expects a list, got {value!r}")
        for item in value:
            _check_type(name, item, default[0])
        return
    expected = {bool: (bool,), int: (int,), float: (int, float), str: (str,)}[type(default)]
    ok = isinstance(value, expected) and (type(default) is bool or not isinstance(value, bool))
    _require(ok, name, f"expects {'numbers' if type(default) is float else type(default).__name__ + ' values'}, got {value!r}")
