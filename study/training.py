"""The one training loop of the study: plain SGD, or DP-SGD through Opacus. Every arm calls `fit`."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from opacus import PrivacyEngine
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from study.privacy import HistoryEntry


@dataclass(frozen=True)
class TrainSettings:
    """Optimisation settings shared by all arms."""

    epochs: int
    batch_size: int
    learning_rate: float
    max_grad_norm: float


@dataclass(frozen=True)
class PrivateTraining:
    """DP-SGD: per-example clipping to the settings' max_grad_norm plus Gaussian noise of this multiplier."""

    noise_multiplier: float
    accountant: str


@dataclass
class FitReport:
    """What training really did; a DP run's history is what its epsilon is computed from."""

    steps: int
    sample_rate: float
    privacy_history: list[HistoryEntry] = field(default_factory=list)


class _BatchedTensors(TensorDataset):
    """Hands the DataLoader a whole batch through one tensor index instead of row by row: the same rows in the same
    order as per-row fetching, without its per-row overhead (which dominated the step time of these small models)."""

    def __getitems__(self, indices: list[int]) -> tuple[torch.Tensor, ...]:
        rows = torch.as_tensor(indices, dtype=torch.long)
        return tuple(tensor[rows] for tensor in self.tensors)


def _already_batched(batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    return batch


def batch_plan(n_rows: int, batch_size: int, epochs: int) -> tuple[float, int]:
    """(sampling rate, optimizer steps) of training on n_rows: the numbers DP calibration must use."""
    batches_per_epoch = math.ceil(n_rows / min(batch_size, n_rows))
    return 1.0 / batches_per_epoch, batches_per_epoch * epochs


def fit(
    model: nn.Module,
    features: np.ndarray,
    labels: np.ndarray,
    settings: TrainSettings,
    *,
    seed: int,
    privacy: PrivateTraining | None = None,
    proximal_mu: float = 0.0,
) -> FitReport:
    """Train `model` in place with binary cross-entropy and SGD; with `privacy`, as DP-SGD with Poisson sampling.

    With `proximal_mu` (FedProx), the loss adds mu/2 ||w - w_start||^2, pulling the model towards the one it
    started from (the round's global model)."""
    if privacy is not None and proximal_mu:
        raise ValueError("the proximal term is not part of DP-SGD's per-example clipping; use one or the other")
    data = _BatchedTensors(
        torch.as_tensor(features, dtype=torch.float32), torch.as_tensor(labels, dtype=torch.float32)
    )
    batch_size = min(settings.batch_size, len(data))
    loader = DataLoader(data, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed),
                        collate_fn=_already_batched)
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.learning_rate)
    trained_model: nn.Module = model
    engine = None
    with warnings.catch_warnings():
        # Opacus warns that its noise is not from a cryptographically secure RNG (the report says so), and
        # torch that per-sample-gradient hooks fire on input-less first layers; neither changes the results.
        warnings.filterwarnings("ignore", message=".*Secure RNG turned off.*")
        warnings.filterwarnings("ignore", message=".*Full backward hook is firing.*")
        if privacy is not None:
            engine = PrivacyEngine(accountant=privacy.accountant)
            trained_model, optimizer, loader = engine.make_private(
                module=model,
                optimizer=optimizer,
                data_loader=loader,
                noise_multiplier=privacy.noise_multiplier,
                max_grad_norm=settings.max_grad_norm,
                poisson_sampling=True,
                noise_generator=torch.Generator().manual_seed(seed + 1),
                # Expanded weights compute per-example gradients in one pass: about 20% faster than hooks here.
                grad_sample_mode="ew",
            )
        anchor = [p.detach().clone() for p in model.parameters()] if proximal_mu else []
        steps = _run_epochs(trained_model, loader, optimizer, settings.epochs, proximal_mu, anchor)
    sample_rate, _ = batch_plan(len(data), settings.batch_size, settings.epochs)
    if engine is None:
        return FitReport(steps=steps, sample_rate=sample_rate)
    trained_model.remove_hooks()
    return FitReport(steps=steps, sample_rate=sample_rate, privacy_history=list(engine.accountant.history))


def _run_epochs(model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer, epochs: int,
                proximal_mu: float, anchor: list[torch.Tensor]) -> int:
    loss_fn = nn.BCEWithLogitsLoss()
    model.train()
    steps = 0
    for _ in range(epochs):
        for batch_features, batch_labels in loader:
            optimizer.zero_grad()
            if len(batch_labels):
                loss = loss_fn(model(batch_features).squeeze(-1), batch_labels)
            else:
                # Poisson sampling can draw an empty batch: its step still happens (zero gradient plus DP noise), as
                # the accountant assumes. One all-zero row with zero loss gives that zero per-example gradient
                # (expanded weights refuse a batch of none).
                loss = model(batch_features.new_zeros((1, *batch_features.shape[1:]))).sum() * 0.0
            if proximal_mu:
                loss = loss + proximal_mu / 2 * sum(((p - a) ** 2).sum() for p, a in zip(model.parameters(), anchor))
            loss.backward()
            optimizer.step()
            steps += 1
    return steps
