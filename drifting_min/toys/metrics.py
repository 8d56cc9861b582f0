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

The energy distance is one number for the whole plane, and a blur spread thinly over it costs little: the
three rings blurred by N(0, 0.2^2), which look like one filled disk, score about 2 times the floor. So the
protocol also reports where the samples are, with the same 4,000 generated against 4,000 fresh data samples:

* ``precision`` and ``recall`` (Kynkaanniemi et al. 2019, k = 5). Each sample of a set gets a ball whose radius
  is the distance to its 5th nearest neighbour in that same set; the union of the balls is the set's estimated
  support. Precision: the share of generated samples inside the data's support (are the samples realistic?).
  Recall: the share of data samples inside the generated samples' support (is the data covered?).
* ``off_support``: the share of generated samples off the toy's true support, by rule (``support_distance``):
  checkerboard, a light cell or off the board; eight Gaussians, beyond three standard deviations (0.15) of every
  centre; swiss roll, two moons and rings, farther than 0.15 (three times the noise's 0.05) from the noiseless
  curve. Data itself is off by about 1% on the eight Gaussians (a 2D Gaussian puts exp(-9/2) of its mass
  beyond three standard deviations) and by a fraction of a percent on the curves.

For the eight Gaussians, also: a sample is *near* a mode when it is within three standard deviations of its
centre, and a mode is *covered* when at least 5% of the samples are near it.
"""

from __future__ import annotations

import functools
import math
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
KNN_K = 5  # precision and recall: the radius of each ball is the distance to the 5th nearest neighbour
CURVE_WIDTH = 0.15  # off the support: farther than this from the noiseless curve (3 x the noise std 0.05)


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


def _min_distances(a: torch.Tensor, b: torch.Tensor, k: int = 1, chunk: int = 1024) -> torch.Tensor:
    """For each row of a, the distance to its k-th nearest row of b (float64, row chunks)."""
    out = []
    for start in range(0, a.shape[0], chunk):
        d = torch.cdist(a[start : start + chunk], b)
        out.append(d.kthvalue(k, dim=1).values)
    return torch.cat(out)


def _in_support(queries: torch.Tensor, points: torch.Tensor, radii: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """Whether each query lies in at least one ball |q - p_j| <= r_j (a boolean per query)."""
    out = []
    for start in range(0, queries.shape[0], chunk):
        d = torch.cdist(queries[start : start + chunk], points)
        out.append((d <= radii[None, :]).any(1))
    return torch.cat(out)


def precision_recall(generated: torch.Tensor, data: torch.Tensor, k: int = KNN_K) -> tuple[float, float]:
    """kNN precision and recall (Kynkaanniemi et al. 2019): each set's support is the union of balls around its
    samples, radius = distance to the k-th nearest *other* sample of the same set.

    precision = share of generated samples inside the data's support; recall = share of data samples inside the
    generated samples' support. Both are in [0, 1]; a set against itself gives 1 and 1.
    """
    check_samples("generated", generated)
    check_samples("data", data, dim=generated.shape[1])
    g, d = generated.detach().cpu().double(), data.detach().cpu().double()
    # the k-th nearest *other* sample: the (k + 1)-th smallest distance, the first being the sample itself (0)
    r_data, r_gen = _min_distances(d, d, k + 1), _min_distances(g, g, k + 1)
    precision = float(_in_support(g, d, r_data).double().mean())
    recall = float(_in_support(d, g, r_gen).double().mean())
    return precision, recall


def _curve(dataset: str, n: int = 20_000) -> torch.Tensor:
    """Dense points (n x 2, float64) on the noiseless curve of a curve toy (swiss roll, two moons)."""
    if dataset == "swiss_roll":
        t = 1.5 * math.pi * (1 + 2 * torch.linspace(0, 1, n, dtype=torch.float64))
        return torch.stack([t * t.cos(), t * t.sin()], dim=1) / 7.0
    if dataset == "two_moons":
        theta = math.pi * torch.linspace(0, 1, n // 2, dtype=torch.float64)
        upper = torch.stack([theta.cos(), theta.sin()], dim=1)
        lower = torch.stack([1 - theta.cos(), 0.5 - theta.sin()], dim=1)
        return 1.5 * (torch.cat([upper, lower]) - torch.tensor([0.5, 0.25], dtype=torch.float64))
    raise ValueError(f"{dataset!r} is not a curve toy")


@functools.cache
def _cached_curve(dataset: str) -> torch.Tensor:
    return _curve(dataset)


def off_support(samples: torch.Tensor, dataset: str) -> torch.Tensor:
    """Whether each sample (N x 2) lies off the toy's true support (a boolean per sample). The rules:

    * checkerboard: off the board [-2, 2]^2 or in a light cell (the dark cells have row and column of equal parity);
    * eight Gaussians: farther than three standard deviations (3 x 0.05) from every centre;
    * rings: farther than CURVE_WIDTH from every circle (radii 0.5, 1.25, 2): min_r ||x| - r| > 0.15;
    * swiss roll, two moons: farther than CURVE_WIDTH from the noiseless curve (distance to 20,000 points on it).
    """
    check_samples("samples", samples, dim=2)
    x = samples.detach().cpu().double()
    if dataset == "checkerboard":
        cell = torch.floor(x + 2.0)
        on_board = ((x >= -2.0) & (x < 2.0)).all(1)
        dark = (cell[:, 0] - cell[:, 1]).remainder(2) == 0
        return ~(on_board & dark)
    spec = DATASETS[dataset] if dataset in DATASETS else None
    if spec is None:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(DATASETS)}")
    if dataset == "eight_gaussians":
        return _min_distances(x, spec.centres().double()) > NEAR_STDS * spec.std
    if dataset == "rings":
        radii = torch.tensor([0.5, 1.25, 2.0], dtype=torch.float64)
        return (x.norm(dim=1, keepdim=True) - radii).abs().min(1).values > CURVE_WIDTH
    return _min_distances(x, _cached_curve(dataset)) > CURVE_WIDTH


def quality(generate: Callable[[int, int], torch.Tensor] | torch.Tensor, dataset: str) -> dict:
    """The protocol. ``generate(n, seed)`` returns n generated samples (or pass 4,000 samples directly).

    Returns a dict with ``energy``, ``floor``, ``floor_ratio``, ``precision``, ``recall`` and ``off_support`` (and,
    for the eight Gaussians, ``modes_covered`` and ``on_modes``).
    """
    samples = generate if isinstance(generate, torch.Tensor) else generate(N_EVAL, NOISE_SEED)
    if samples.shape[0] != N_EVAL:
        raise ValueError(f"the protocol compares {N_EVAL} generated samples; got {samples.shape[0]}")
    data = sample_data(dataset, N_EVAL, seed=DATA_SEED)
    energy = energy_distance(samples, data)
    floor = noise_floor(dataset)
    precision, recall = precision_recall(samples, data)
    out = {"energy": energy, "floor": floor, "floor_ratio": energy / floor, "precision": precision, "recall": recall,
           "off_support": float(off_support(samples, dataset).double().mean())}
    spec = DATASETS[dataset]
    if spec.centres is not None:
        cover = mode_coverage(samples, spec.centres(), spec.std)
        out["modes_covered"] = cover["covered"]
        out["on_modes"] = cover["on_modes"]
    return out
