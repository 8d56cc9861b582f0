"""Typical mistakes in lesson 08 (when the field lies); each must fail a graded check of its exercise."""

from __future__ import annotations

import math

import torch

import drifting_min as dm
from course.mistakes import Mistake

TAUGHT = {
    "8.1": ["sinkhorn_coupling"],
    "8.2": ["batch_drift_field", "batch_drift_fields", "multi_temperature_drift"],
    "8.3": ["kernel_matrix"],
    "8.4": ["annealed_taus"],
    "8.5": ["feature_drift_loss"],
}


# ------------------------------------------------------------------------------------------------ 8.1


def _coupling(*, rows_last=False, unit_marginals=False, exp_domain=False, one_sided=False):
    def coupling(logits, iterations=10):
        n, m = logits.shape
        row, col = (0.0, 0.0) if unit_marginals else (-math.log(n), -math.log(m))
        if one_sided:  # one row normalisation: the softmax over targets, divided by N
            return torch.softmax(logits, dim=1) / n
        if exp_domain:  # exp(l) / sums: every entry underflows to 0 at tau = 0.02 in float32
            p = logits.exp()
            for _ in range(iterations):
                p = p / (n * p.sum(1, keepdim=True))
                p = p / (m * p.sum(0, keepdim=True))
            return p
        a = torch.zeros(n, dtype=logits.dtype)
        b = torch.zeros(m, dtype=logits.dtype)
        for _ in range(iterations):
            if rows_last:
                b = col - torch.logsumexp(logits + a[:, None], dim=0)
                a = row - torch.logsumexp(logits + b, dim=1)
            else:
                a = row - torch.logsumexp(logits + b, dim=1)
                b = col - torch.logsumexp(logits + a[:, None], dim=0)
        return torch.exp(logits + a[:, None] + b)

    return coupling


# ------------------------------------------------------------------------------------------------ 8.2


def _field(module, *, mask_self=False, one_sided=False, no_rownorm=False, sign=1.0, detach=True, float64=False):
    def field(x, y_pos, tau, kernel="laplace", iterations=10):
        x_in = x.detach() if detach else x
        y_pos = y_pos.detach().to(x.dtype)
        pos_logits = dm.kernel_logits(x_in, y_pos, tau, kernel)
        neg_logits = dm.kernel_logits(x_in, x_in, tau, kernel)
        if mask_self:
            neg_logits = neg_logits.clone()
            neg_logits.diagonal().fill_(float("-inf"))
        couple = (lambda lg, it: torch.softmax(lg, dim=1) / lg.shape[0]) if one_sided else module.sinkhorn_coupling
        p_pos, p_neg = couple(pos_logits, iterations), couple(neg_logits, iterations)
        if no_rownorm:  # N P y instead of P y / rowsum(P): exact only once the rows have converged
            v = x.shape[0] * (p_pos @ y_pos - p_neg @ x_in)
        else:
            v = p_pos @ y_pos / p_pos.sum(1, keepdim=True) - p_neg @ x_in / p_neg.sum(1, keepdim=True)
        v = sign * v
        return v.double() if float64 else v

    return field


# ------------------------------------------------------------------------------------------------ 8.3


def _overlap(*, no_diagonal=False, inverted=False, raw=False, ignore_kernel=False):
    def overlap(x, y, tau, kernel="laplace"):
        kernel = "laplace" if ignore_kernel else kernel
        cross = dm.kernel_logits(x, y, tau, kernel).exp().mean()
        k_yy = dm.kernel_logits(y, y, tau, kernel).exp()
        m = y.shape[0]
        within = (k_yy.sum() - k_yy.diagonal().sum()) / max(m * (m - 1), 1) if no_diagonal else k_yy.mean()
        if raw:
            return cross.to(x.dtype)
        return (within / cross if inverted else cross / within).to(x.dtype)

    return overlap


# ------------------------------------------------------------------------------------------------ 8.4


def _schedule(kind):
    def schedule(step, steps, taus, factor):
        if kind == "over steps":
            t = step / steps
        else:
            t = step / max(steps - 1, 1) if kind != "no guard" else step / (steps - 1) if steps > 1 else float("nan")
        if kind == "linear":
            return tuple(tau * (factor + (1.0 - factor) * t) for tau in taus)
        if kind == "wrong direction":
            return tuple(tau * factor ** (-t) for tau in taus)
        if kind == "ignores factor":
            return tuple(float(tau) for tau in taus)
        return tuple(tau * factor ** (1.0 - t) for tau in taus)

    return schedule


# ------------------------------------------------------------------------------------------------ 8.5


def _pullback(*, transpose=True, input_space=False, with_graph_field=False, sign=1.0, mean=False):
    def pulled(x, y_pos, feature_map, tau):
        x = x.detach().requires_grad_(True)
        features = feature_map(x)
        if input_space:  # the field of the samples themselves, ignoring the map
            with torch.no_grad():
                return sign * dm.batch_drift_field(x, y_pos, None, tau)
        if with_graph_field:  # V keeps its graph: the gradient adds the field's own derivative
            v_graph = _graph_field(features, feature_map(y_pos), tau)
            (g,) = torch.autograd.grad((features * v_graph).sum(), x)
            return g
        with torch.no_grad():
            v = dm.batch_drift_field(features, feature_map(y_pos), None, tau)
        if not transpose:  # J V instead of J^T V (it only has the right shape for a square map)
            jacobians = torch.stack([torch.autograd.functional.jacobian(lambda u: feature_map(u[None])[0], xi)
                                     for xi in x.detach()])  # N x F x D
            if jacobians.shape[1] == jacobians.shape[2]:
                return sign * torch.einsum("nfd,nd->nf", jacobians, v)
        inner = (features * v).mean() if mean else (features * v).sum()  # a mean scales J^T V by 1 / (N F)
        (g,) = torch.autograd.grad(inner, x)
        return sign * g

    return pulled


def _graph_field(features, targets, tau):
    """The batch field (double softmax, self-masked) written with autograd-friendly operations."""
    n = features.shape[0]
    logits = -torch.cdist(features, torch.cat([features, targets])) / tau
    mask = torch.zeros_like(logits, dtype=torch.bool)
    mask[:, :n] = torch.eye(n, dtype=torch.bool)
    logits = logits.masked_fill(mask, float("-inf"))
    affinity = torch.exp(0.5 * (logits.log_softmax(dim=1) + logits.log_softmax(dim=0)))
    a_neg, a_pos = affinity[:, :n], affinity[:, n:]
    return (a_pos * a_neg.sum(1, keepdim=True)) @ targets - (a_neg * a_pos.sum(1, keepdim=True)) @ features


MISTAKES = [
    Mistake("8.1", "sinkhorn_coupling", "rows updated last (columns not exact)",
            lambda f, m: _coupling(rows_last=True)),
    Mistake("8.1", "sinkhorn_coupling", "marginals 1 instead of 1/N and 1/M",
            lambda f, m: _coupling(unit_marginals=True)),
    Mistake("8.1", "sinkhorn_coupling", "one-sided: a softmax over the targets",
            lambda f, m: _coupling(one_sided=True)),
    Mistake("8.1", "sinkhorn_coupling", "exp / sum scaling (underflows at tau = 0.02)",
            lambda f, m: _coupling(exp_domain=True)),
    Mistake("8.1", "sinkhorn_coupling", "a float64 result for float32 logits",
            lambda f, m: lambda logits, iterations=10: f(logits.double(), iterations)),
    Mistake("8.2", "sinkhorn_field", "self entry masked (-inf) as in the one-sided field",
            lambda f, m: _field(m, mask_self=True)),
    Mistake("8.2", "sinkhorn_field", "one-sided couplings (softmax over targets)",
            lambda f, m: _field(m, one_sided=True)),
    Mistake("8.2", "sinkhorn_field", "N P y instead of P y / rowsum(P)", lambda f, m: _field(m, no_rownorm=True)),
    Mistake("8.2", "sinkhorn_field", "flipped sign", lambda f, m: _field(m, sign=-1.0)),
    Mistake("8.2", "sinkhorn_field", "x not detached (the field carries a graph)",
            lambda f, m: _field(m, detach=False)),
    Mistake("8.2", "sinkhorn_field", "a float64 result for float32 inputs", lambda f, m: _field(m, float64=True)),
    Mistake("8.3", "kernel_overlap", "diagonal left out of the within-data mean",
            lambda f, m: _overlap(no_diagonal=True)),
    Mistake("8.3", "kernel_overlap", "ratio inverted", lambda f, m: _overlap(inverted=True)),
    Mistake("8.3", "kernel_overlap", "cross mean not divided by the within-data mean", lambda f, m: _overlap(raw=True)),
    Mistake("8.3", "kernel_overlap", "ignores the kernel option (always Laplace)",
            lambda f, m: _overlap(ignore_kernel=True)),
    Mistake("8.3", "kernel_overlap", "a float64 result for float32 inputs",
            lambda f, m: lambda x, y, tau, kernel="laplace": f(x.double(), y.double(), tau, kernel)),
    Mistake("8.4", "annealed_taus", "linear instead of exponential decay", lambda f, m: _schedule("linear")),
    Mistake("8.4", "annealed_taus", "t = step / steps (never reaches tau)", lambda f, m: _schedule("over steps")),
    Mistake("8.4", "annealed_taus", "decays from tau to tau / factor", lambda f, m: _schedule("wrong direction")),
    Mistake("8.4", "annealed_taus", "ignores the factor", lambda f, m: _schedule("ignores factor")),
    Mistake("8.4", "annealed_taus", "no guard for a one-step run", lambda f, m: _schedule("no guard")),
    Mistake("8.5", "pulled_back_field", "J V instead of J^T V", lambda f, m: _pullback(transpose=False)),
    Mistake("8.5", "pulled_back_field", "the field of x itself, ignoring the feature map",
            lambda f, m: _pullback(input_space=True)),
    Mistake("8.5", "pulled_back_field", "the field computed with its graph",
            lambda f, m: _pullback(with_graph_field=True)),
    Mistake("8.5", "pulled_back_field", "flipped sign", lambda f, m: _pullback(sign=-1.0)),
    Mistake("8.5", "pulled_back_field", "gradient of the mean of <phi(x), V> instead of its sum",
            lambda f, m: _pullback(mean=True)),
]
