"""Sample-based quality metrics for the 2D toys: one fixed protocol, used everywhere.

Energy distance (Szekely's standard form, as in lesson 04), between two sets a (N x D) and b (M x D):

    E(a, b) = 2 mean_ij |a_i - b_j| - mean_ii' |a_i - a_i'| - mean_jj' |b_j - b_j'|

Every mean runs over *all* pairs, the i = i' diagonal included (the "V-statistic"). That choice makes
E(a, b) >= 0 always (it is the squared MMD with the distance-induced kernel k(u, v) = |u| + |v| - |u - v|),
and E = 0 only when the two sets are equal; with the diagonal left out the estimate could go negative and a
ratio to it would mean nothing.

Two finite samples of the *same* distribution still give E > 0: about 2 (mean distance) / N. That is the
noise floor. The protocol (``quality``):

* generated: 4,000 samples, from noise drawn with a fixed seed;
* data: 4,000 fresh samples, with a fixed seed that training never uses;
* floor: the mean of E over five independent pairs of 4,000 data samples (fixed seeds);
* headline: ``floor_ratio`` = E(generated, data) / floor. About 1 is as good as data itself.

For the eight Gaussians, also: a sample is *near* a mode when it is within three standard deviations of its
centre, and a mode is *covered* when at least 5% of the samples are near it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from ..kernels import check_samples, pairwise_distances
from .data import DATASETS, sample_data

N_EVAL = 4000
FLOOR_PAIRS = 5
DATA_SEED = 10_000  # fresh data for the comparison (training seeds are small integers)
FLOOR_SEED = 20_000  # the five floor pairs use FLOOR_SEED + 0 .. + 9
NOISE_SEED = 30_000  # the generator's evaluation noise
COVER_FRACTION = 0.05
NEAR_STDS = 3.0


def _mean_distance(a: torch.Tensor, b: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """mean_ij |a_i - b_j| in float64, computed in row chunks (a 4,000 x 4,000 matrix at most 2,048 rows at once)."""
    total = torch.zeros((), dtype=torch.float64)
    for start in range(0, a.shape[0], chunk):
        total = total + pairwise_distances(a[start : start + chunk], b).double().sum()
    return total / (a.shape[0] * b.shape[0])


def energy_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """E(a, b) = 2 E|A - B| - E|A - A'| - E|B - B'|, all pairs (diagonals included), in float64; >= 0."""
    check_samples("a", a)
    check_samples("b", b, dim=a.shape[1])
    a, b = a.detach().cpu().double(), b.detach().cpu().double()
    return float(2 * _mean_distance(a, b) - _mean_distance(a, a) - _mean_distance(b, b))


@functools.cache
def noise_floor(dataset: str, n: int = N_EVAL, pairs: int = FLOOR_PAIRS) -> float:
    """The mean energy distance of ``pairs`` independent pairs of n data samples (seeded, cached)."""
    values = []
    for k in range(pairs):
        a = sample_data(dataset, n, seed=FLOOR_SEED + 2 * k)
        b = sample_data(dataset, n, seed=FLOOR_SEED + 2 * k + 1)
        values.append(energy_distance(a, b))
    return sum(values) / len(values)


def mode_coverage(samples: torch.Tensor, centres: torch.Tensor, std: float) -> dict:
    """Near-mode fractions for a mixture of isotropic Gaussians with centres (K x D) and one std.

    Returns ``near`` (fraction of samples within NEAR_STDS * std of each centre, a list of K floats),
    ``covered`` (how many modes have near >= COVER_FRACTION) and ``on_modes`` (fraction of samples near
    any mode).
    """
    dist = pairwise_distances(samples.detach().cpu().double(), centres.double())
    near = dist <= NEAR_STDS * std
    fractions = near.double().mean(0)
    return {
        "near": [round(float(f), 4) for f in fractions],
        "covered": int((fractions >= COVER_FRACTION).sum()),
        "on_modes": float(near.any(1).double().mean()),
    }


def quality(generate: Callable[[int, int], torch.Tensor] | torch.Tensor, dataset: str) -> dict:
    """The protocol. ``generate(n, seed)`` returns n generated samples (or pass 4,000 samples directly).

    Returns a dict with ``energy``, ``floor`` and ``floor_ratio`` (and, for the eight Gaussians, ``modes_covered``
    and ``on_modes``).
    """
    samples = generate if isinstance(generate, torch.Tensor) else generate(N_EVAL, NOISE_SEED)
    if samples.shape[0] != N_EVAL:
        raise ValueError(f"the protocol compares {N_EVAL} generated samples; got {samples.shape[0]}")
    data = sample_data(dataset, N_EVAL, seed=DATA_SEED)
    energy = energy_distance(samples, data)
    floor = noise_floor(dataset)
    out = {"energy": energy, "floor": floor, "floor_ratio": energy / floor}
    spec = DATASETS[dataset]
    if spec.centres is not None:
        cover = mode_coverage(samples, spec.centres(), spec.std)
        out["modes_covered"] = cover["covered"]
        out["on_modes"] = cover["on_modes"]
    return out
