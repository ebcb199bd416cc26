"""What the ServerApp tells the sites about an experiment, packed into and out of a Flower ConfigRecord."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from flwr.app import ConfigRecord

from study.data.preprocess import Preprocessor
from study.data.sites import SplitSpec
from study.data.sources import DataSource
from study.training import TrainSettings


@dataclass(frozen=True)
class FederatedExperiment:
    """One federated training run: an arm, a model, a seed and (for DP) a whole-run target epsilon per site."""

    arm: str
    model: str
    seed: int
    epsilon: float | None
    split: SplitSpec
    local: TrainSettings
    rounds: int
    delta: float
    accountant: str
    mlp_hidden: int
    site_clip_norm: float
    client_clipping: str
    canaries: int
    strategy: str = "fedavg"
    proximal_mu: float = 0.0
    server_learning_rate: float = 0.1

    @property
    def key(self) -> str:
        """Tells experiments apart in messages and in each site's state."""
        budget = "non-private" if self.epsilon is None else f"eps={self.epsilon!r}"
        return f"{self.arm}/{self.model}/seed={self.seed}/{budget}"

    def to_config(self, preprocessor: Preprocessor) -> ConfigRecord:
        """A fresh record per experiment: Flower adds keys (such as server-round) to the record it sends."""
        return ConfigRecord(
            {
                "experiment": self.key,
                "arm": self.arm,
                "model": self.model,
                "seed": self.seed,
                "private": self.epsilon is not None,
                "target-epsilon": self.epsilon or 0.0,
                "delta": self.delta,
                "accountant": self.accountant,
                "num-rounds": self.rounds,
                "local-epochs": self.local.epochs,
                "batch-size": self.local.batch_size,
                "learning-rate": self.local.learning_rate,
                "max-grad-norm": self.local.max_grad_norm,
                "mlp-hidden": self.mlp_hidden,
                "site-clip-norm": self.site_clip_norm,
                "client-clipping": self.client_clipping,
                "canaries": self.canaries,
                "strategy": self.strategy,
                "server-learning-rate": self.server_learning_rate,
                "preprocessor": preprocessor.to_json(),
                **split_to_config(self.split),
            }
        )

    @classmethod
    def from_config(cls, config: ConfigRecord) -> tuple[FederatedExperiment, Preprocessor]:
        experiment = cls(
            arm=str(config["arm"]),
            model=str(config["model"]),
            seed=int(config["seed"]),
            epsilon=float(config["target-epsilon"]) if config["private"] else None,
            split=split_from_config(config),
            local=TrainSettings(
                epochs=int(config["local-epochs"]),
                batch_size=int(config["batch-size"]),
                learning_rate=float(config["learning-rate"]),
                max_grad_norm=float(config["max-grad-norm"]),
            ),
            rounds=int(config["num-rounds"]),
            delta=float(config["delta"]),
            accountant=str(config["accountant"]),
            mlp_hidden=int(config["mlp-hidden"]),
            site_clip_norm=float(config["site-clip-norm"]),
            client_clipping=str(config["client-clipping"]),
            canaries=int(config["canaries"]),
            strategy=str(config["strategy"]),
            # FedProx puts its mu into the record it sends; every other strategy trains without the proximal term.
            proximal_mu=float(config.get("proximal-mu", 0.0)),
            server_learning_rate=float(config["server-learning-rate"]),
        )
        return experiment, Preprocessor.from_json(str(config["preprocessor"]))


def split_to_config(split: SplitSpec) -> dict[str, str | int | float]:
    return {
        "data-source": json.dumps(dataclasses.asdict(split.source)),
        "num-sites": split.n_sites,
        "split": split.split,
        "alpha": split.alpha,
        "test-fraction": split.test_fraction,
        "split-seed": split.seed,
    }


def split_from_config(config: ConfigRecord) -> SplitSpec:
    source = json.loads(str(config["data-source"]))
    source["synthetic_prevalence"] = tuple(source["synthetic_prevalence"])
    return SplitSpec(
        source=DataSource(**source),
        n_sites=int(config["num-sites"]),
        split=str(config["split"]),
        alpha=float(config["alpha"]),
        test_fraction=float(config["test-fraction"]),
        seed=int(config["split-seed"]),
    )
