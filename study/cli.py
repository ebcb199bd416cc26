"""Command-line parsing: flags over an optional TOML file over defaults, and the command that reproduces a config."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
from pathlib import Path
from typing import Any, NoReturn, Sequence

from study.config import (ACCOUNTANTS, ARMS, CLIENT_CLIPPINGS, DATASETS, MODELS, SPLITS, STRATEGY_ARMS, ConfigError,
                          StudyConfig, build_config, option_name, read_toml)

DEFAULTS = StudyConfig()

# Field name -> (argparse keyword arguments, help text). Every StudyConfig field has exactly one flag.
_FLAGS: dict[str, tuple[dict[str, Any], str]] = {
    "dataset": ({"choices": DATASETS}, "breast-cancer (bundled), heart-disease (UCI's four hospitals, downloaded "
                "once), synthetic-hospitals (generated), csv (your --data file)"),
    "data": ({"metavar": "PATH.csv"}, "your own table: a CSV with a header row, one row per patient"),
    "target": ({"metavar": "COLUMN"}, "--data: the outcome column (0/1, or binarized by --positive/--positive-above)"),
    "positive": ({"metavar": "VALUE"}, "--data: the target value that counts as positive"),
    "positive_above": ({"type": float, "metavar": "NUMBER"}, "--data: a numeric target is positive above NUMBER"),
    "site_column": ({"metavar": "COLUMN"}, "--data: the column naming each row's hospital (a natural split)"),
    "public_schema": ({"metavar": "FILE.toml"}, "--data: public bounds and categories of the features (never "
                      "computed from the data), which the DP arms preprocess with; without it they are left out"),
    "data_dir": ({"metavar": "FOLDER"}, "heart-disease: folder with UCI's processed.*.data files"),
    "synthetic_rows": ({"type": int}, "synthetic-hospitals: patients in all hospitals together"),
    "synthetic_shift": ({"type": float}, "synthetic-hospitals: covariate shift between hospitals (0 = none)"),
    "synthetic_missing": ({"type": float}, "synthetic-hospitals: share of missing values in BMI, labs and smoking"),
    "synthetic_prevalence": ({"type": float, "nargs": 2, "metavar": ("LOW", "HIGH")},
                             "synthetic-hospitals: each hospital's prevalence is drawn from LOW to HIGH"),
    "synthetic_seed": ({"type": int}, "synthetic-hospitals: seed of the generated cohort"),
    "sites": ({"type": int}, "number of sites (hospitals) of a simulated split, or of synthetic-hospitals"),
    "split": ({"choices": SPLITS}, "how rows are spread over sites: auto (the data's own sites if it names them, "
              "else dirichlet), natural, iid, dirichlet (label skew) or quantity (size skew)"),
    "alpha": ({"type": float}, "Dirichlet concentration of the dirichlet and quantity splits: smaller means more skew"),
    "test_fraction": ({"type": float}, "share of each site's rows held out for testing"),
    "seeds": ({"type": int, "nargs": "+"}, "seeds; each gives its own split and training run"),
    "models": ({"nargs": "+", "choices": MODELS}, "models: lr (logistic regression), mlp"),
    "arms": ({"nargs": "+", "choices": ARMS}, "arms to compare"),
    "strategies": ({"nargs": "+", "choices": tuple(STRATEGY_ARMS)}, "Flower strategies of the federated arm, compared side by "
                   "side (DP arms use fedavg)"),
    "proximal_mu": ({"type": float}, "fedprox: weight mu of the proximal term mu/2 ||w - w_global||^2"),
    "server_learning_rate": ({"type": float}, "fedadam, fedyogi: the server optimizer's learning rate"),
    "epsilons": ({"type": float, "nargs": "+"}, "privacy budgets (epsilon over the whole run, per site) for DP arms"),
    "delta": ({"type": float}, "delta of the (epsilon, delta) guarantee"),
    "accountant": ({"choices": ACCOUNTANTS}, "Opacus accountant for calibration and reporting"),
    "rounds": ({"type": int}, "federated rounds"),
    "local_epochs": ({"type": int}, "local epochs per round (centralized/local arms train rounds x local epochs)"),
    "batch_size": ({"type": int}, "batch size (expected batch size under DP-SGD's Poisson sampling)"),
    "learning_rate": ({"type": float}, "SGD learning rate"),
    "max_grad_norm": ({"type": float}, "DP-SGD per-example clipping norm"),
    "site_clip_norm": ({"type": float}, "client-level DP: clipping norm of each site's model update per round "
                       "(the starting norm with adaptive clipping)"),
    "client_clipping": ({"choices": CLIENT_CLIPPINGS}, "client-level DP: Flower's fixed or adaptive server-side clipping"),
    "mlp_hidden": ({"type": int}, "hidden units of the MLP"),
    "canaries": ({"type": int}, "canary records for the privacy audit, each trained on with probability 1/2 at the "
                 "largest site (0: no audit)"),
}


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (exit 2) instead of the usage block plus the error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="python -m study.run",
        description="Compare centralized, local-only, federated (Flower) and differentially private training "
        "on a horizontally split medical dataset, and write an HTML report.",
    )
    parser.add_argument("--config", type=Path, help="TOML file with config values; flags override it")
    for name, (kwargs, text) in _FLAGS.items():
        default = getattr(DEFAULTS, name)
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
        flags = [option_name(name)] + {"epsilons": ["--epsilons"], "strategies": ["--strategies"]}.get(name, [])
        kwargs = {"metavar": {"epsilons": "EPSILON", "seeds": "SEED"}.get(name), **kwargs}
        described = f"{text} (default: {shown})" if shown not in ("", None) else text
        parser.add_argument(*flags, dest=name, default=None, help=described, **kwargs)
    parser.add_argument("--output", type=Path, default=Path("reports"), help="folder for run folders (default: reports)")
    parser.add_argument("--quiet", action="store_true", help="print only where the report is")
    parser.add_argument("--ray-address", metavar="ADDRESS",
                        help="run the simulation on an existing Ray cluster (e.g. auto or HOST:6379) instead of "
                        "starting Ray here; the numbers do not change")
    parser.add_argument("--no-cache", action="store_true",
                        help="retrain everything instead of reusing results of earlier runs with the same settings "
                        "(kept in OUTPUT/.cache)")
    return parser


def config_from_args(args: argparse.Namespace) -> StudyConfig:
    """Defaults, then the TOML file, then flags given on the command line."""
    values = read_toml(args.config) if args.config else {}
    values.update({name: getattr(args, name) for name in _FLAGS if getattr(args, name) is not None})
    return build_config(values)


# Settings that only one dataset reads; the reproduce command leaves them out for other datasets when unchanged.
DATASET_ONLY = {"data_dir": "heart-disease", "synthetic_rows": "synthetic-hospitals",
                "synthetic_shift": "synthetic-hospitals", "synthetic_missing": "synthetic-hospitals",
                "synthetic_prevalence": "synthetic-hospitals", "synthetic_seed": "synthetic-hospitals"}


def reproduce_command(config: StudyConfig, output: Path) -> str:
    """A command that runs exactly this config again, every value that matters spelled out."""
    parts = ["python", "-m", "study.run"]
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if value is None or value == "":
            continue  # unset: the default is the same
        if DATASET_ONLY.get(field.name, config.dataset) != config.dataset and value == field.default:
            continue  # another dataset's setting, at its default
        values = value if isinstance(value, tuple) else (value,)
        parts += [option_name(field.name)] + [repr(v) if isinstance(v, float) else str(v) for v in values]
    parts += ["--output", str(output)]
    return shlex.join(parts)


def parse(argv: Sequence[str] | None = None) -> tuple[StudyConfig, argparse.Namespace]:
    args = build_parser().parse_args(argv)
    return config_from_args(args), args


__all__ = ["ConfigError", "build_parser", "config_from_args", "parse", "reproduce_command"]
