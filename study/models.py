"""The two models of the study, built by name; every arm uses exactly these."""

from __future__ import annotations

import threading

import torch
from torch import nn

# torch initialises layers from its one global generator: models built at the same time in two threads (the
# in-process arms, the federated server, the background evaluation) would take each other's random numbers.
_GLOBAL_RNG = threading.Lock()


def build_model(name: str, n_features: int, *, hidden: int, seed: int) -> nn.Module:
    """A freshly initialised model whose weights depend only on (name, n_features, hidden, seed), whichever
    threads build models at the same time."""
    with _GLOBAL_RNG, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if name == "lr":
            return nn.Linear(n_features, 1)
        if name == "mlp":
            # No normalisation layer: BatchNorm is not DP-SGD compatible and GroupNorm hurts narrow tabular input.
            return nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, 1))
    raise ValueError(f"unknown model {name!r}")


def predict_proba(model: nn.Module, features) -> "torch.Tensor":
    """Probability of the positive class for each row."""
    model.eval()
    with torch.no_grad():
        return torch.sigmoid(model(torch.as_tensor(features, dtype=torch.float32))).squeeze(-1)
