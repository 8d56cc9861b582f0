# Lesson 05 exercises: fill in every `raise NotImplementedError(...)`, then run `pytest lessons/05`.
# This file is generated from solutions/05/exercises.py by `make exercises`. It is yours to edit:
# the generator refuses to overwrite it once you have changed it.
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
    raise NotImplementedError('Exercise 5.1 `energy_distance` is not implemented yet. Hint: three means of plain pairwise distances (torch.cdist), twice the cross mean minus the two within-set means, each over all N^2 pairs (diagonal zeros included)')


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
    raise NotImplementedError('Exercise 5.2 `train_step` is not implemented yet. Hint: zero_grad; x = generator(noise); V from dm.multi_temperature_drift under torch.no_grad(); L = |x - (x + V).detach()|^2 summed over dims, averaged over samples; backward; step')


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
    raise NotImplementedError('Exercise 5.3 `field_on_grid` is not implemented yet. Hint: build the grid with meshgrid(indexing="xy") and flatten; for each tau V_tau = dm.drift_field(points, data, samples, tau, kernel), divide by its RMS over the grid, sum')


def ablation(base: toys.ToyConfig, **change) -> dict:
    """An ablation: train two fixed configurations and return their metrics.

    The variant is ``base`` with the fields in ``change`` replaced (dataclasses.replace), nothing else
    changed. Train each with ``toys.train(cfg, progress=False)`` and take its ``.metrics`` (the lesson's
    protocol: floor_ratio and the rest).

    Returns:
        {"base": metrics of base, "variant": metrics of the variant}.
    """
    raise NotImplementedError('Exercise 5.4 `ablation` is not implemented yet. Hint: variant = dataclasses.replace(base, **change); train both with toys.train(cfg, progress=False) and return {"base": ..., "variant": ...} of their .metrics')


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
    raise NotImplementedError('Exercise 5.5 `mode_coverage` is not implemented yet. Hint: distances to each centre (N x K), near = dist <= 3 * std, fraction = mean over the N samples, covered = count of fractions >= 0.05')
