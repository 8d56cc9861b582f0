"""The drift loss: a regression onto a frozen, drifted copy of each sample.

    L = (1/N) sum_i | x_i - stopgrad(x_i + V_i) |^2      (sum over dims, mean over samples)

Its value is (1/N) sum_i |V_i|^2 and its gradient is dL/dx_i = -2 V_i / N: a gradient step on L moves every
generated sample along its drift, and through x = f(eps) it moves the generator's weights so that it does.

``drift_regression_loss(x, V)`` is that regression for a field already computed; ``drifting_loss(x, y_pos)``
is the whole loss of a batch (the field computed from x and the data, then the regression), the function the
released code calls ``drift_loss``.
"""

from __future__ import annotations

from typing import Iterable

import torch

from .drift import Normalisation, multi_temperature_drift


def drift_regression_loss(x: torch.Tensor, drift: torch.Tensor) -> torch.Tensor:
    """(1/N) sum_i |x_i - stopgrad(x_i + V_i)|^2; ``drift`` is treated as a constant."""
    if x.shape != drift.shape:
        raise ValueError(f"x has shape {tuple(x.shape)} but the drift has shape {tuple(drift.shape)}")
    target = (x + drift.to(x.dtype)).detach()
    return (x - target).square().sum(dim=1).mean()


def drifting_loss(
    x: torch.Tensor,
    y_pos: torch.Tensor,
    taus: Iterable[float] = (0.02, 0.05, 0.2),
    kernel: str = "laplace",
    normalisation: Normalisation = "double",
    normalise_each: bool = True,
) -> tuple[torch.Tensor, dict]:
    """The whole training loss for a batch of generated samples ``x`` (negatives: x itself, self-masked).

    Returns the loss and a dict with each temperature's raw mean |V|^2 before normalisation.
    """
    with torch.no_grad():
        drift, raw_energy = multi_temperature_drift(x, y_pos, None, taus, kernel, normalisation, normalise_each)
    return drift_regression_loss(x, drift), {"raw_drift_sq": raw_energy}
