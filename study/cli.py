"""Command-line parsing: flags over an optional TOML file over defaults, and the command that reproduces a config."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
from pathlib import Path
from typing import Any, NoReturn, Sequence

from study.config import ACCOUNTANTS, ARMS, CLIENT_CLIPPINGS, DATASETS, MODELS, SPLITS, ConfigError, StudyConfig, build_config, option_name, read_toml

DEFAULTS = StudyConfig()

# Field name -> (argparse keyword arguments, help text). Every StudyConfig field has exactly one flag.
_FLAGS: dict[str, tuple[dict[str, Any], str]] = {
    "dataset": ({"choices": DATASETS}, "dataset to split into sites (bundled, no download)"),
    "sites": ({"type": int}, "number of sites (hospitals)"),
    "split": ({"choices": SPLITS}, "how rows are spread over sites: IID or Dirichlet label skew"),
    "alpha": ({"type": float}, "Dirichlet concentration: smaller means more label skew"),
    "test_fraction": ({"type": float}, "share of each site's rows held out for testing"),
    "seeds": ({"type": int, "nargs": "+"}, "seeds; each gives its own split and training run"),
    "models": ({"nargs": "+", "choices": MODELS}, "models: lr (logistic regression), mlp"),
    "arms": ({"nargs": "+", "choices": ARMS}, "arms to compare"),
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
        flags = [option_name(name)] + (["--epsilons"] if name == "epsilons" else [])
        metavar = {"epsilons": "EPSILON", "seeds": "SEED"}.get(name)
        parser.add_argument(*flags, dest=name, default=None, metavar=metavar, help=f"{text} (default: {shown})",
                            **kwargs)
    parser.add_argument("--output", type=Path, default=Path("reports"), help="folder for run folders (default: reports)")
    parser.add_argument("--quiet", action="store_true", help="print only where the report is")
    parser.add_argument("--no-cache", action="store_true",
                        help="retrain everything instead of reusing results of earlier runs with the same settings "
                        "(kept in OUTPUT/.cache)")
    return parser


def config_from_args(args: argparse.Namespace) -> StudyConfig:
    """Defaults, then the TOML file, then flags given on the command line."""
    values = read_toml(args.config) if args.config else {}
    values.update({name: getattr(args, name) for name in _FLAGS if getattr(args, name) is not None})
    return build_config(values)


def reproduce_command(config: StudyConfig, output: Path) -> str:
    """A command that runs exactly this config again, every value spelled out."""
    parts = ["python", "-m", "study.run"]
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        values = value if isinstance(value, tuple) else (value,)
        parts += [option_name(field.name)] + [repr(v) if isinstance(v, float) else str(v) for v in values]
    parts += ["--output", str(output)]
    return shlex.join(parts)


def parse(argv: Sequence[str] | None = None) -> tuple[StudyConfig, argparse.Namespace]:
    args = build_parser().parse_args(argv)
    return config_from_args(args), args


__all__ = ["ConfigError", "build_parser", "config_from_args", "parse", "reproduce_command"]
