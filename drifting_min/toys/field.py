"""The drift field on a grid of points: the arrays behind the toys' quiver plots."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..drift import drift_field


def field_on_grid(
    samples: torch.Tensor,
    data: torch.Tensor,
    taus: Sequence[float] = (0.02, 0.05, 0.2),
    kernel: str = "laplace",
    lim: float = 2.5,
    n: int = 21,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The drift field on an n x n grid over [-lim, lim]^2: the arrays behind a quiver plot.

    At a grid point g (not itself a generated sample), the field is the population form for each temperature,
    V_tau(g) = sum_j k~(g, y+_j)(y+_j - g) - sum_j k~(g, x_j)(x_j - g), with data y+ and generated samples x as
    the negatives, and the temperatures are summed after dividing each by its root mean square over the grid.
    The batch form's softmax over queries would couple the grid points to one another, so it is not used here.

    Returns (points, V), both n^2 x 2, points in row-major order (y outer, x inner, as ``torch.meshgrid(...,
    indexing="xy")``).
    """
    axis = torch.linspace(-lim, lim, n, dtype=samples.dtype)
    gx, gy = torch.meshgrid(axis, axis, indexing="xy")
    points = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    total = torch.zeros_like(points)
    for tau in taus:
        v = drift_field(points, data.to(points.dtype), samples.detach(), tau, kernel).to(points.dtype)
        total = total + v / v.square().mean().sqrt().clamp_min(1e-12)
    return points, total
