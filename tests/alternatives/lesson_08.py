"""Correct answers to lesson 08's exercises written another way than the worked solutions; every graded check of
their exercise must accept them. None calls the drifting_min function that its exercise teaches (the TAUGHT table
of tests/mistakes/lesson_08.py)."""

from __future__ import annotations

import math

import torch

import drifting_min as dm
from course.mistakes import Alternative
from drifting_min.drift import SINKHORN_ITERATIONS
from drifting_min.drift import sinkhorn_coupling as dm_sinkhorn_coupling


def _logits(x, y, tau, kernel):
    """Kernel logits from explicit differences, the kernel name compared by value."""
    d = (x[:, None, :] - y[None, :, :]).norm(dim=-1)
    if kernel == "gaussian":
        return -d.square() / (2 * tau**2)
    if kernel == "laplace":
        return -d / tau
    raise ValueError(f"unknown kernel {kernel!r}")


# ------------------------------------------------------------------------------------------------ 8.1


def coupling_log_softmax(logits, iterations=SINKHORN_ITERATIONS):
    """The log coupling itself renormalised, not its potentials: log P = log_softmax over each row minus log N,
    then over each column minus log M (starting from log P = l, which is b = 0)."""
    n, m = logits.shape
    log_p = logits
    for _ in range(iterations):
        log_p = log_p.log_softmax(dim=1) - math.log(n)
        log_p = log_p.log_softmax(dim=0) - math.log(m)
    return log_p.exp()


def coupling_scaling_form(logits, iterations=SINKHORN_ITERATIONS):
    """The multiplicative form P = diag(u) K diag(v), in float64, on K = exp(l - r_i - c_j) whose every row and
    column has largest entry exactly 1 (r the row maxima of l, c the column maxima of l - r), so that no sum is
    ever 0. The start b = 0 is v_j = exp(c_j); the result is cast back to the logits' dtype."""
    n, m = logits.shape
    l64 = logits.to(torch.float64)
    shifted = l64 - l64.amax(dim=1, keepdim=True)
    c = shifted.amax(dim=0)
    kernel = torch.exp(shifted - c)
    v = torch.exp(c)
    for _ in range(iterations):
        u = 1.0 / (n * torch.mv(kernel, v))
        v = 1.0 / (m * torch.mv(kernel.T, u))
    return (u[:, None] * kernel * v[None, :]).to(logits.dtype)


# ------------------------------------------------------------------------------------------------ 8.2


def _column_potentials(logits, iterations):
    """Sinkhorn's column potentials b after ``iterations`` rounds from b = 0 (float64, log space)."""
    n, m = logits.shape
    b = logits.new_zeros(m)
    for _ in range(iterations):
        a = -math.log(n) - torch.logsumexp(logits + b[None, :], dim=1)
        b = -math.log(m) - torch.logsumexp(logits + a[:, None], dim=0)
    return b


def field_row_softmax(x, y_pos, tau, kernel="laplace", iterations=SINKHORN_ITERATIONS):
    """A coupling's rows divided by their sums are softmax_j(l_ij + b_j): the row potentials cancel, so only the
    column potentials b are needed; everything in float64 from explicit differences, cast back at the end."""
    x64, y64 = x.detach().to(torch.float64), y_pos.detach().to(torch.float64)
    barycentres = []
    for targets in (y64, x64):
        logits = _logits(x64, targets, tau, kernel)
        b = _column_potentials(logits, iterations)
        barycentres.append(torch.softmax(logits + b[None, :], dim=1) @ targets)
    return (barycentres[0] - barycentres[1]).to(x.dtype)


def field_displacements(x, y_pos, tau, kernel="laplace", iterations=SINKHORN_ITERATIONS):
    """drifting_min's coupling (8.2 teaches the field, not the coupling), each barycentre written as the
    coupling-weighted mean of the displacements y_j - x_i with einsum, under torch.no_grad()."""
    with torch.no_grad():
        y_pos = y_pos.to(x.dtype)
        field = torch.zeros_like(x)
        for sign, targets in ((1.0, y_pos), (-1.0, x)):
            p = dm_sinkhorn_coupling(dm.kernel_logits(x, targets, tau, kernel), iterations)
            moves = torch.einsum("nm,nmd->nd", p, targets[None, :, :] - x[:, None, :])
            field = field + sign * moves / p.sum(dim=1, keepdim=True)
        return field.to(x.dtype)


# ------------------------------------------------------------------------------------------------ 8.3


def overlap_logsumexp(x, y, tau, kernel="laplace"):
    """The ratio of means in log space: logsumexp of the cross logits minus log(N M), minus the same for the data
    (in float64), exponentiated once."""
    n, m = x.shape[0], y.shape[0]
    cross = torch.logsumexp(dm.kernel_logits(x, y, tau, kernel).to(torch.float64).flatten(), dim=0)
    within = torch.logsumexp(dm.kernel_logits(y, y, tau, kernel).to(torch.float64).flatten(), dim=0)
    return torch.exp(cross - within + math.log(m / n)).to(x.dtype)


def overlap_row_sums(x, y, tau, kernel="laplace"):
    """Exact-mode torch.cdist, the kernel written out, one generated sample's row at a time, then
    (sum of the cross kernel / N M) / (sum of the data kernel / M^2) as M sum_cross / (N sum_within)."""
    if kernel not in ("laplace", "gaussian"):
        raise ValueError(f"unknown kernel {kernel!r}")

    def k(d):
        return torch.exp(-d.square() / (2 * tau**2)) if kernel == "gaussian" else torch.exp(-d / tau)

    y = y.to(x.dtype)
    dist = torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist")
    cross = sum(k(dist[i]).sum() for i in range(x.shape[0]))
    within = k(torch.cdist(y, y, compute_mode="donot_use_mm_for_euclid_dist")).sum()
    return (y.shape[0] * cross / (x.shape[0] * within)).to(x.dtype)


# ------------------------------------------------------------------------------------------------ 8.4


def taus_exponential_decay(step, steps, taus, factor):
    """tau_0 exp(-r t) with tau_0 = factor * tau and r = log(factor), as the docstring writes it."""
    t = step / (steps - 1) if steps > 1 else 0.0
    rate = math.log(factor)
    return tuple(float(factor * tau * math.exp(-rate * t)) for tau in taus)


def taus_geometric_sequence(step, steps, taus, factor):
    """A geometric sequence: factor * tau times the per-step ratio factor^(-1 / (steps - 1)) to the power step."""
    ratio = factor ** (-1.0 / (steps - 1)) if steps > 1 else 1.0
    out = []
    for tau in taus:
        out.append(float(factor * tau * ratio**step))
    return tuple(out)


# ------------------------------------------------------------------------------------------------ 8.5


def pulled_back_jacobians(x, y_pos, feature_map, tau):
    """Each sample's Jacobian formed explicitly (torch.func.vmap of jacrev), then J(x_i)^T V_i by einsum."""
    x = x.detach()
    with torch.no_grad():
        v = dm.batch_drift_field(feature_map(x), feature_map(y_pos.detach()), None, tau)

    def phi_one(u):
        return feature_map(u[None, :])[0]

    jac = torch.func.vmap(torch.func.jacrev(phi_one))(x)  # N x F x D
    return torch.einsum("nfd,nf->nd", jac, v.to(jac.dtype)).detach()


def _batch_field(f, f_pos, tau):
    """The batch drift field (Laplace, double softmax, self-masked negatives) written out."""
    n = f.shape[0]
    logits = -torch.cdist(f, torch.cat([f, f_pos]), compute_mode="donot_use_mm_for_euclid_dist") / tau
    mask = torch.zeros_like(logits, dtype=torch.bool)
    mask[:, :n] = torch.eye(n, dtype=torch.bool, device=f.device)
    logits = logits.masked_fill(mask, float("-inf"))
    a = (torch.softmax(logits, dim=1) * torch.softmax(logits, dim=0)).sqrt()
    a_neg, a_pos = a[:, :n], a[:, n:]
    return (a_pos * a_neg.sum(1, keepdim=True)) @ f_pos - (a_neg * a_pos.sum(1, keepdim=True)) @ f


def pulled_back_loss_gradient(x, y_pos, feature_map, tau):
    """The definition itself: the gradient of L = mean_i |phi(x_i) - stopgrad(phi(x_i) + V_i)|^2, times -N/2,
    the field written out by hand."""
    xg = x.detach().clone().requires_grad_(True)
    f = feature_map(xg)
    with torch.no_grad():
        v = _batch_field(f.detach(), feature_map(y_pos.detach()).to(f.dtype), tau)
    loss = (f - (f + v).detach()).square().sum(dim=1).mean()
    (grad,) = torch.autograd.grad(loss, xg)
    return grad * (-x.shape[0] / 2)


ALTERNATIVES = [
    Alternative("8.1", "sinkhorn_coupling", "log coupling renormalised by log_softmax", coupling_log_softmax),
    Alternative("8.1", "sinkhorn_coupling", "float64 scaling form diag(u) K diag(v)", coupling_scaling_form),
    Alternative("8.2", "sinkhorn_field", "row-normalised coupling as softmax(l + b)", field_row_softmax),
    Alternative("8.2", "sinkhorn_field", "drifting_min's coupling, einsum of displacements", field_displacements),
    Alternative("8.3", "kernel_overlap", "ratio of means in log space", overlap_logsumexp),
    Alternative("8.3", "kernel_overlap", "exact cdist, row-by-row sums", overlap_row_sums),
    Alternative("8.4", "annealed_taus", "tau_0 exp(-r t)", taus_exponential_decay),
    Alternative("8.4", "annealed_taus", "geometric sequence of per-step ratios", taus_geometric_sequence),
    Alternative("8.5", "pulled_back_field", "explicit per-sample Jacobians", pulled_back_jacobians),
    Alternative("8.5", "pulled_back_field", "gradient of the drift loss times -N/2", pulled_back_loss_gradient),
]
