"""Correct answers to lesson 05's exercises written another way than the worked solutions; every graded check of
their exercise must accept them.

Exercise 5.4 trains four small runs per check; one alternative is kept for it, so that this file stays fast.
"""

from __future__ import annotations

import copy
import dataclasses

import torch
import torch.nn.functional as F

import drifting_min as dm
from course.mistakes import Alternative
from drifting_min import toys


def _mean_distance(p, q):
    return (p[:, None, :] - q[None, :, :]).norm(dim=-1).mean()


def energy_differences(a, b):
    """Mean distances from explicit differences."""
    return 2 * _mean_distance(a, b) - _mean_distance(a, a) - _mean_distance(b, b)


def energy_joint_matrix(a, b):
    """One distance matrix of the joined set [a | b], read by blocks."""
    n = a.shape[0]
    d = torch.cdist(torch.cat([a, b]), torch.cat([a, b]), compute_mode="donot_use_mm_for_euclid_dist")
    return 2 * d[:n, n:].mean() - d[:n, :n].mean() - d[n:, n:].mean()


def train_mse(generator, optimizer, noise, y_pos, cfg):
    """mse_loss with a summed reduction over N."""
    optimizer.zero_grad()
    x = generator(noise)
    with torch.no_grad():
        v, _ = dm.multi_temperature_drift(x, y_pos, None, cfg.taus, cfg.kernel, cfg.normalisation, cfg.normalise_each)
    loss = F.mse_loss(x, x.detach() + v, reduction="sum") / x.shape[0]
    loss.backward()
    optimizer.step()
    return loss.item()


def train_regression(generator, optimizer, noise, y_pos, cfg):
    """drifting_min's drift_regression_loss, the field from keyword arguments."""
    optimizer.zero_grad(set_to_none=True)
    x = generator(noise)
    v, _ = dm.multi_temperature_drift(x.detach(), y_pos, None, taus=cfg.taus, kernel=cfg.kernel,
                                      normalisation=cfg.normalisation, normalise_each=cfg.normalise_each)
    loss = dm.drift_regression_loss(x, v)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def grid_stacked(samples, data, taus=(0.02, 0.05, 0.2), kernel="laplace", lim=2.5, n=21):
    """The grid by cartesian_prod (x_1 fastest after a flip), the fields stacked."""
    axis = torch.linspace(-lim, lim, n, dtype=samples.dtype)
    points = torch.cartesian_prod(axis, axis).flip(1)  # (a_j, a_i) with i slow: x_1 varies fastest
    fields = torch.stack([dm.drift_field(points, data, samples, tau, kernel) for tau in taus])
    rms = fields.square().mean(dim=(1, 2), keepdim=True).sqrt().clamp_min(1e-12)
    return points, (fields / rms).sum(0)


def grid_repeat(samples, data, taus=(0.02, 0.05, 0.2), kernel="laplace", lim=2.5, n=21):
    """The grid by repeat and repeat_interleave."""
    axis = torch.linspace(-lim, lim, n, dtype=samples.dtype)
    points = torch.stack([axis.repeat(n), axis.repeat_interleave(n)], dim=1)
    total = 0
    for tau in taus:
        v = dm.drift_field(points, data, samples, tau, kernel)
        total = total + v / torch.sqrt(torch.mean(v * v)).clamp_min(1e-12)
    return points, total


def ablation_copy(base, **change):
    """dataclasses.replace on a deep copy (the base itself untouched either way)."""
    variant = dataclasses.replace(copy.deepcopy(base), **change)
    runs = {"base": base, "variant": variant}
    return {name: toys.train(cfg, progress=False).metrics for name, cfg in runs.items()}


def coverage_differences(samples, centres, std):
    """Squared distances against (3 std)^2; the count by a Python sum."""
    sq = (samples[:, None, :] - centres[None, :, :].to(samples.dtype)).square().sum(-1)
    fractions = (sq <= (3 * std) ** 2).to(samples.dtype).mean(0)
    return fractions, sum(1 for f in fractions.tolist() if f >= 0.05)


def coverage_counts(samples, centres, std):
    """Counts of near samples divided by N; the number covered by .item()."""
    near = torch.cdist(samples, centres.to(samples.dtype), compute_mode="donot_use_mm_for_euclid_dist") <= 3 * std
    fractions = near.sum(0).to(samples.dtype) / samples.shape[0]
    return fractions, int((fractions >= 0.05).sum().item())


ALTERNATIVES = [
    Alternative("5.1", "energy_distance", "explicit differences", energy_differences),
    Alternative("5.1", "energy_distance", "blocks of the joined set's distances", energy_joint_matrix),
    Alternative("5.2", "train_step", "mse_loss, summed, over N", train_mse),
    Alternative("5.2", "train_step", "drifting_min's drift_regression_loss", train_regression),
    Alternative("5.3", "field_on_grid", "cartesian_prod grid, stacked fields", grid_stacked),
    Alternative("5.3", "field_on_grid", "repeat / repeat_interleave grid", grid_repeat),
    Alternative("5.4", "ablation", "replace on a deep copy", ablation_copy),
    Alternative("5.5", "mode_coverage", "squared distances, a Python count", coverage_differences),
    Alternative("5.5", "mode_coverage", "counts over N, .item()", coverage_counts),
]
