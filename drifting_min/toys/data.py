"""The 2D toy distributions: seeded samplers, and the modes of the mixtures.

Every toy lives in [-2.5, 2.5]^2 and is drawn by ``sample_data(name, n, seed)``: the same seed gives the same
samples, so every run, check and figure can be reproduced exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch


def _rng(seed: int) -> torch.Generator:
    """A seeded random-number generator (not to be confused with the ``Generator`` network)."""
    return torch.Generator().manual_seed(int(seed))


def eight_gaussians(n: int, seed: int) -> torch.Tensor:
    """Eight isotropic Gaussians, std 0.05, centred on the circle of radius 2 at angles k pi / 4."""
    rng = _rng(seed)
    k = torch.randint(0, 8, (n,), generator=rng)
    return eight_gaussian_centres()[k] + 0.05 * torch.randn(n, 2, generator=rng)


def eight_gaussian_centres() -> torch.Tensor:
    """The eight modes (8 x 2): 2 (cos k pi / 4, sin k pi / 4), k = 0 .. 7."""
    angles = torch.arange(8) * (math.pi / 4)
    return 2.0 * torch.stack([angles.cos(), angles.sin()], dim=1)


def checkerboard(n: int, seed: int) -> torch.Tensor:
    """Uniform on the 8 dark cells of a 4 x 4 board covering [-2, 2]^2."""
    rng = _rng(seed)
    col = torch.randint(0, 4, (n,), generator=rng)
    row = 2 * torch.randint(0, 2, (n,), generator=rng) + (col % 2)  # rows of the same parity as the column
    cell = torch.stack([col, row], dim=1).float()
    return cell + torch.rand(n, 2, generator=rng) - 2.0


def swiss_roll(n: int, seed: int) -> torch.Tensor:
    """The 2D swiss roll (t cos t, t sin t) / 7 with t = 1.5 pi (1 + 2u), plus N(0, 0.05^2) noise."""
    rng = _rng(seed)
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=rng))
    return torch.stack([t * t.cos(), t * t.sin()], dim=1) / 7.0 + 0.05 * torch.randn(n, 2, generator=rng)


def two_moons(n: int, seed: int) -> torch.Tensor:
    """Two interleaved half circles (radius 1, scaled by 1.5), plus N(0, 0.05^2) noise."""
    rng = _rng(seed)
    theta = math.pi * torch.rand(n, generator=rng)
    lower = torch.rand(n, generator=rng) < 0.5
    upper_pt = torch.stack([theta.cos(), theta.sin()], dim=1)
    lower_pt = torch.stack([1 - theta.cos(), 0.5 - theta.sin()], dim=1)
    pts = torch.where(lower[:, None], lower_pt, upper_pt) - torch.tensor([0.5, 0.25])
    return 1.5 * pts + 0.05 * torch.randn(n, 2, generator=rng)


def rings(n: int, seed: int) -> torch.Tensor:
    """Three concentric circles of radii 0.5, 1.25 and 2 (samples in proportion to length), N(0, 0.05^2) noise."""
    rng = _rng(seed)
    radii = torch.tensor([0.5, 1.25, 2.0])
    ring = torch.multinomial(radii / radii.sum(), n, replacement=True, generator=rng)
    angle = 2 * math.pi * torch.rand(n, generator=rng)
    pts = radii[ring, None] * torch.stack([angle.cos(), angle.sin()], dim=1)
    return pts + 0.05 * torch.randn(n, 2, generator=rng)


@dataclass(frozen=True)
class Dataset:
    """A toy distribution: a seeded sampler ``sample(n, seed) -> n x 2``; mixtures also give their modes."""

    sample: Callable[[int, int], torch.Tensor]
    centres: Callable[[], torch.Tensor] | None = None
    std: float = 0.0


DATASETS = {
    "eight_gaussians": Dataset(eight_gaussians, eight_gaussian_centres, 0.05),
    "checkerboard": Dataset(checkerboard),
    "swiss_roll": Dataset(swiss_roll),
    "two_moons": Dataset(two_moons),
    "rings": Dataset(rings),
}


def sample_data(dataset: str, n: int, seed: int) -> torch.Tensor:
    """n samples (float32, n x 2) of a named toy; the same seed gives the same samples."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[dataset].sample(n, seed).float()
