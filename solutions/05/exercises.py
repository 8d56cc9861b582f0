"""Lesson 05: 2D toys. A generator learns, and we measure how well.

Notation (the course's): x (N x 2) generated samples, y+ (M x 2) data, V the drift field, tau a temperature,
k~ the kernel normalised over its targets. The training loss is
L = (1/N) sum_i |x_i - stopgrad(x_i + V_i)|^2 (sum over dimensions, mean over samples).

Everything that trains uses drifting_min.toys: ``ToyConfig`` (every knob), ``Generator`` (the MLP),
``train(cfg)`` (the loop). The drift field itself is drifting_min's (lessons 03 and 04).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import torch
from torch import nn

import drifting_min as dm
from drifting_min import toys


def energy_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The energy distance between two sample sets, a (N x D) and b (M x D), in Szekely's standard form (lesson 04's):

        E(a, b) = 2 (1/(N M)) sum_ij |a_i - b_j| - (1/N^2) sum_ii' |a_i - a_i'| - (1/M^2) sum_jj' |b_j - b_j'|

    with plain (not squared) Euclidean distances, and every mean over *all* pairs, the i = i' terms (zeros)
    included. That keeps E >= 0, with E = 0 when the two sets are equal.

    Returns:
        A 0-dimensional tensor, in the dtype of the inputs.
    """
    # BEGIN SOLUTION 5.1: three means of plain pairwise distances (torch.cdist), twice the cross mean minus the two within-set means, each over all N^2 pairs (diagonal zeros included)
    # Cross term: every pair (a_i, b_j), N x M distances.
    cross = torch.cdist(a, b).mean()
    # Within-set terms: N x N and M x M, diagonal included (the zeros on it count in the mean). Leaving the
    # diagonal out gives the unbiased estimate, which can be negative: no good as a ratio's denominator.
    within_a = torch.cdist(a, a).mean()
    within_b = torch.cdist(b, b).mean()
    return 2 * cross - within_a - within_b
    # END SOLUTION


def train_step(
    generator: nn.Module, optimizer: torch.optim.Optimizer, noise: torch.Tensor, y_pos: torch.Tensor,
    cfg: toys.ToyConfig,
) -> float:
    """One training step of a toy generator, with every knob of the field taken from ``cfg``.

    1. clear the gradients; x = generator(noise), N x 2;
    2. the field, with no graph: V, raw = dm.multi_temperature_drift(x, y_pos, None, cfg.taus, cfg.kernel,
       cfg.normalisation, cfg.normalise_each) (the queries are their own negatives);
    3. L = (1/N) sum_i |x_i - stopgrad(x_i + V_i)|^2; backpropagate; one optimizer step.

    (``cfg.attraction_only`` is the ablation's business: ignore it here.)

    Returns:
        The loss before the step, as a Python float.
    """
    # BEGIN SOLUTION 5.2: zero_grad; x = generator(noise); V from dm.multi_temperature_drift under torch.no_grad(); L = |x - (x + V).detach()|^2 summed over dims, averaged over samples; backward; step
    optimizer.zero_grad()
    x = generator(noise)
    # The field is a target: no graph through it (it would cost memory and, through the self-negatives,
    # pull gradient into places it does not belong).
    with torch.no_grad():
        v, _ = dm.multi_temperature_drift(x, y_pos, None, cfg.taus, cfg.kernel, cfg.normalisation, cfg.normalise_each)
    # The frozen target x + V: the loss's gradient with respect to x is -2 V / N, so the step moves x along V.
    target = (x + v).detach()
    loss = (x - target).square().sum(dim=1).mean()
    loss.backward()
    optimizer.step()
    return float(loss.detach())
    # END SOLUTION


def field_on_grid(
    samples: torch.Tensor, data: torch.Tensor, taus: Sequence[float] = (0.02, 0.05, 0.2), kernel: str = "laplace",
    lim: float = 2.5, n: int = 21,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The drift field on an n x n grid over [-lim, lim]^2: the arrays behind the lesson's quiver plots.

    Grid: axis = torch.linspace(-lim, lim, n); points in row-major order with x_1 varying fastest, i.e.
    point k = (axis[k % n], axis[k // n]) (what torch.meshgrid(axis, axis, indexing="xy") gives, flattened).

    At each grid point g the field of each temperature is the population form, data y+ as positives and the
    generated samples x as negatives (no self-mask: a grid point is not a generated sample):

        V_tau(g) = sum_j k~(g, y+_j) (y+_j - g) - sum_j k~(g, x_j) (x_j - g)        (dm.drift_field)

    and the temperatures are summed after each is divided by its root mean square over the grid,
    rms = sqrt(mean over points and dims of V_tau^2).

    Returns:
        (points, V), both n^2 x 2, in the dtype of ``samples``.
    """
    # BEGIN SOLUTION 5.3: build the grid with meshgrid(indexing="xy") and flatten; for each tau V_tau = dm.drift_field(points, data, samples, tau, kernel), divide by its RMS over the grid, sum
    axis = torch.linspace(-lim, lim, n, dtype=samples.dtype)
    gx, gy = torch.meshgrid(axis, axis, indexing="xy")  # gx varies along columns: x_1 is the fast index
    points = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    total = torch.zeros_like(points)
    for tau in taus:
        v = dm.drift_field(points, data, samples, tau, kernel)
        # Each temperature gets the same weight: unit mean square over the grid.
        total = total + v / v.square().mean().sqrt().clamp_min(1e-12)
    return points, total
    # END SOLUTION


def ablation(base: toys.ToyConfig, **change) -> dict:
    """An ablation: train two fixed configurations and return their metrics.

    The variant is ``base`` with the fields in ``change`` replaced (dataclasses.replace), nothing else
    changed. Train each with ``toys.train(cfg, progress=False)`` and take its ``.metrics`` (the lesson's
    protocol: floor_ratio and the rest).

    Returns:
        {"base": metrics of base, "variant": metrics of the variant}.
    """
    # BEGIN SOLUTION 5.4: variant = dataclasses.replace(base, **change); train both with toys.train(cfg, progress=False) and return {"base": ..., "variant": ...} of their .metrics
    variant = dataclasses.replace(base, **change)
    # Training is seeded by the config (weights, noise, data): the same config always gives the same numbers,
    # so the two runs differ only by the change under study.
    return {
        "base": toys.train(base, progress=False).metrics,
        "variant": toys.train(variant, progress=False).metrics,
    }
    # END SOLUTION


def mode_coverage(samples: torch.Tensor, centres: torch.Tensor, std: float) -> tuple[torch.Tensor, int]:
    """Which modes of a Gaussian mixture does a generator cover?

    A sample is *near* mode k when |x_i - c_k| <= 3 std (plain distance, three standard deviations). A mode
    is *covered* when at least 5% of all the samples are near it (fraction >= 0.05).

    Args:
        samples: N x D generated samples; centres: K x D mode centres; std: the modes' standard deviation.

    Returns:
        (near, covered): near is a tensor of K fractions (in the dtype of ``samples``), the share of all N
        samples near each mode; covered is the number of covered modes, a Python int.
    """
    # BEGIN SOLUTION 5.5: distances to each centre (N x K), near = dist <= 3 * std, fraction = mean over the N samples, covered = count of fractions >= 0.05
    dist = torch.cdist(samples, centres.to(samples.dtype))  # N x K plain distances
    near = (dist <= 3.0 * std).to(samples.dtype)
    fractions = near.mean(dim=0)  # over all samples, so a sample far from every mode lowers every share
    return fractions, int((fractions >= 0.05).sum())
    # END SOLUTION
