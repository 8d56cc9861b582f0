"""Typical mistakes in lesson 05 (2D toys); each must fail a graded check of its exercise."""

from __future__ import annotations

import dataclasses

import torch

import drifting_min as dm
from course.mistakes import Mistake
from drifting_min import toys

TAUGHT = {
    "5.1": ["energy_distance"],
    "5.2": ["train_step", "drift"],
    "5.3": ["field_on_grid"],
    "5.4": ["ablation", "run_ablations"],
    "5.5": ["mode_coverage"],
}


# ------------------------------------------------------------------------------------------------ 5.1


def _energy(a, b, *, squared=False, unbiased=False, cross=2.0, scale=1.0):
    def mean_dist(u, v, same):
        d = torch.cdist(u, v)
        d = d.square() if squared else d
        if same and unbiased:  # the diagonal left out: mean over the N (N - 1) off-diagonal pairs
            n = u.shape[0]
            return d.sum() / max(n * (n - 1), 1)
        return d.mean()

    return scale * (cross * mean_dist(a, b, False) - mean_dist(a, a, True) - mean_dist(b, b, True))


# ------------------------------------------------------------------------------------------------ 5.2


def _step(*, zero_grad=True, sign=1.0, detach=True, mean_dims=False, loss_after=False, ignore=()):
    def step(generator, optimizer, noise, y_pos, cfg):
        if zero_grad:
            optimizer.zero_grad()
        x = generator(noise)
        defaults = toys.ToyConfig()  # an ignored option falls back to its default
        kernel = defaults.kernel if "kernel" in ignore else cfg.kernel
        normalisation = defaults.normalisation if "normalisation" in ignore else cfg.normalisation
        each = defaults.normalise_each if "normalise_each" in ignore else cfg.normalise_each
        with torch.no_grad():
            v, _ = dm.multi_temperature_drift(x, y_pos, None, cfg.taus, kernel, normalisation, each)
        target = x + sign * v
        target = target.detach() if detach else target
        err = (x - target).square()
        loss = err.mean() if mean_dims else err.sum(1).mean()
        loss.backward()
        optimizer.step()
        if loss_after:
            with torch.no_grad():
                return float((generator(noise) - target).square().sum(1).mean())
        return float(loss.detach())

    return step


# ------------------------------------------------------------------------------------------------ 5.3


def _grid(*, indexing="xy", normalise=True, sign=1.0, floor=0.0, dtype=None):
    def field(samples, data, taus=(0.02, 0.05, 0.2), kernel="laplace", lim=2.5, n=21):
        axis = torch.linspace(-lim, lim, n, dtype=samples.dtype)
        gx, gy = torch.meshgrid(axis, axis, indexing=indexing)
        points = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
        total = torch.zeros_like(points)
        for tau in taus:
            v = sign * dm.drift_field(points, data, samples, tau, kernel)
            total = total + (v / v.square().mean().sqrt().clamp_min(floor) if normalise else v)
        return (points, total) if dtype is None else (points.to(dtype), total.to(dtype))

    return field


def _grid_rms_of_sum(samples, data, taus=(0.02, 0.05, 0.2), kernel="laplace", lim=2.5, n=21):
    """Sums the raw fields, then normalises the sum (one big temperature dominates)."""
    points, _ = toys.field_on_grid(samples, data, taus, kernel, lim, n)
    total = sum(dm.drift_field(points, data, samples, tau, kernel) for tau in taus)
    return points, total / total.square().mean().sqrt()


# ------------------------------------------------------------------------------------------------ 5.4


def _ablation(kind):
    def run(base, **change):
        if kind == "mutates base":
            original = dataclasses.replace(base)
            for key, value in change.items():
                setattr(base, key, value)  # the caller's config now carries the change
            return {"base": toys.train(original, progress=False).metrics,
                    "variant": toys.train(base, progress=False).metrics}
        variant = dataclasses.replace(base, **change)
        if kind == "change applied to both":
            base = variant
        elif kind == "change ignored":
            variant = base
        out = {"base": toys.train(base, progress=False).metrics, "variant": toys.train(variant, progress=False).metrics}
        if kind == "swapped":
            out = {"base": out["variant"], "variant": out["base"]}
        return out

    return run


# ------------------------------------------------------------------------------------------------ 5.5


def _coverage(*, radius=lambda std: 3 * std, strict=False, over_near=False, nearest_only=False):
    def cover(samples, centres, std):
        dist = torch.cdist(samples, centres.to(samples.dtype))
        r = radius(std)
        near = ((dist < r) if strict else (dist <= r)).to(samples.dtype)
        if nearest_only:  # each sample credited to its nearest mode only
            nearest = torch.nn.functional.one_hot(dist.argmin(dim=1), centres.shape[0]).to(samples.dtype)
            near = near * nearest
        if over_near:  # shares among the samples near some mode only, not among all samples
            fractions = near.sum(0) / near.any(1).sum().clamp_min(1)
        else:
            fractions = near.mean(0)
        return fractions, int((fractions >= 0.05).sum())

    return cover


def _coverage_strict_threshold(samples, centres, std):
    near, _ = _coverage()(samples, centres, std)
    return near, int((near > 0.05).sum())


def _energy_expanded(a, b):
    """Mean distances from |a|^2 + |b|^2 - 2 a.b."""
    def mean_distance(p, q):
        sq = p.square().sum(1)[:, None] + q.square().sum(1)[None, :] - 2 * p @ q.T
        return sq.clamp_min(0).sqrt().mean()
    return 2 * mean_distance(a, b) - mean_distance(a, a) - mean_distance(b, b)


def _train_two_calls(f, m):
    def train_step(generator, optimizer, noise, y_pos, cfg):
        optimizer.zero_grad()
        with torch.no_grad():  # one call for the field
            v, _ = dm.multi_temperature_drift(generator(noise), y_pos, None, cfg.taus, cfg.kernel, cfg.normalisation,
                                              cfg.normalise_each)
        x = generator(noise)  # another for the loss
        loss = (x - (x + v).detach()).square().sum(1).mean()
        loss.backward()
        optimizer.step()
        return float(loss.detach())
    return train_step


def _coverage_rule(*, bound=3.0, threshold=0.05, count_tensor=False):
    def mode_coverage(samples, centres, std):
        near = (torch.cdist(samples, centres.to(samples.dtype)) <= bound * std).to(samples.dtype)
        fractions = near.mean(dim=0)
        count = (fractions >= threshold).sum()
        return fractions, count if count_tensor else int(count)
    return mode_coverage


MISTAKES = [
    Mistake("5.1", "energy_distance", "squared distances", lambda f, m: lambda a, b: _energy(a, b, squared=True)),
    Mistake("5.1", "energy_distance", "diagonal left out (unbiased)",
            lambda f, m: lambda a, b: _energy(a, b, unbiased=True)),
    Mistake("5.1", "energy_distance", "cross term not doubled", lambda f, m: lambda a, b: _energy(a, b, cross=1.0)),
    Mistake("5.1", "energy_distance", "half the standard form (cross - 1/2 within - 1/2 within)",
            lambda f, m: lambda a, b: _energy(a, b, scale=0.5)),
    Mistake("5.1", "energy_distance", "flipped sign", lambda f, m: lambda a, b: -f(a, b)),
    Mistake("5.2", "train_step", "gradients never zeroed", lambda f, m: _step(zero_grad=False)),
    Mistake("5.2", "train_step", "target x - V (flipped sign)", lambda f, m: _step(sign=-1.0)),
    Mistake("5.2", "train_step", "forgotten stop-gradient on the target", lambda f, m: _step(detach=False)),
    Mistake("5.2", "train_step", "mean over dimensions instead of sum", lambda f, m: _step(mean_dims=True)),
    Mistake("5.2", "train_step", "returns the loss after the step", lambda f, m: _step(loss_after=True)),
    Mistake("5.2", "train_step", "ignores cfg.kernel (always the default Laplace)",
            lambda f, m: _step(ignore=("kernel",))),
    Mistake("5.2", "train_step", "ignores cfg.normalisation (always the double softmax)",
            lambda f, m: _step(ignore=("normalisation",))),
    Mistake("5.2", "train_step", "ignores cfg.normalise_each (always normalised)",
            lambda f, m: _step(ignore=("normalise_each",))),
    Mistake("5.3", "field_on_grid", 'meshgrid indexing="ij" (grid transposed)', lambda f, m: _grid(indexing="ij")),
    Mistake("5.3", "field_on_grid", "temperatures summed raw", lambda f, m: _grid(normalise=False)),
    Mistake("5.3", "field_on_grid", "the sum normalised instead of each temperature", lambda f, m: _grid_rms_of_sum),
    Mistake("5.3", "field_on_grid", "flipped sign", lambda f, m: _grid(sign=-1.0)),
    Mistake("5.3", "field_on_grid", "rms normalisation without its floor (a zero field gives 0 / 0 = NaN)",
            lambda f, m: _grid(floor=0.0)),
    Mistake("5.3", "field_on_grid", "points and field returned in float64 whatever the dtype of the samples",
            lambda f, m: _grid(floor=1e-12, dtype=torch.float64)),
    Mistake("5.4", "ablation", "change applied to both runs", lambda f, m: _ablation("change applied to both")),
    Mistake("5.4", "ablation", "change ignored", lambda f, m: _ablation("change ignored")),
    Mistake("5.4", "ablation", "base and variant swapped", lambda f, m: _ablation("swapped")),
    Mistake("5.4", "ablation", "the change written into base (setattr) instead of a replaced copy",
            lambda f, m: _ablation("mutates base")),
    Mistake("5.5", "mode_coverage", "radius 3 std^2 (variance, not std)",
            lambda f, m: _coverage(radius=lambda s: 3 * s**2)),
    Mistake("5.5", "mode_coverage", "strict < at the boundary", lambda f, m: _coverage(strict=True)),
    Mistake("5.5", "mode_coverage", "covered needs more than 5% (> not >=)", lambda f, m: _coverage_strict_threshold),
    Mistake("5.5", "mode_coverage", "shares among near samples only", lambda f, m: _coverage(over_near=True)),
    Mistake("5.5", "mode_coverage", "each sample credited to its nearest mode only",
            lambda f, m: _coverage(nearest_only=True)),
    Mistake("5.1", "energy_distance", "distances from |a|^2 + |b|^2 - 2 a.b", lambda f, m: _energy_expanded),
    Mistake("5.2", "train_step", "the generator called twice (field and loss)", _train_two_calls),
    Mistake("5.5", "mode_coverage", "covered returned as a 0-d tensor", lambda f, m: _coverage_rule(count_tensor=True)),
    Mistake("5.5", "mode_coverage", "near within 3.5 std", lambda f, m: _coverage_rule(bound=3.5)),
    Mistake("5.5", "mode_coverage", "covered from 4%", lambda f, m: _coverage_rule(threshold=0.04)),
]
