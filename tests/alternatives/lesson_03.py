"""Correct answers to lesson 03's exercises written another way than the worked solutions; every graded check of
their exercise must accept them."""

from __future__ import annotations

import torch

import drifting_min as dm
from course.mistakes import Alternative


def _logits(x, y, tau, kernel):
    """Kernel logits from explicit differences, the kernel name compared by value."""
    d = (x[:, None, :] - y[None, :, :]).norm(dim=-1)
    if kernel == "gaussian":
        return -d.square() / (2 * tau**2)
    if kernel == "laplace":
        return -d / tau
    raise ValueError(f"unknown kernel {kernel!r}")


def mean_shift_log_softmax(x, targets, tau, kernel="gaussian"):
    """exp(log_softmax) weights, the differences y_j - x weighted with einsum."""
    w = _logits(x, targets, tau, kernel).log_softmax(1).exp()
    return torch.einsum("nm,nmd->nd", w, targets[None] - x[:, None])


def mean_shift_kernel_logits(x, targets, tau, kernel="gaussian"):
    """drifting_min's kernel_logits, a softmax, the weighted mean minus x."""
    return torch.softmax(dm.kernel_logits(x, targets, tau, kernel), dim=1) @ targets - x


def modes_preallocated(x0, data, tau, n_steps=50):
    """The path preallocated and filled step by step."""
    path = x0.new_empty((n_steps + 1, *x0.shape))
    path[0] = x0
    for t in range(n_steps):
        w = torch.softmax(_logits(path[t], data, tau, "gaussian"), dim=1)
        path[t + 1] = w @ data  # x + (weighted mean - x) = the weighted mean
    return path


def modes_reference_shift(x0, data, tau, n_steps=50):
    """drifting_min's mean shift (3.2 teaches the iteration, not the shift)."""
    path = [x0]
    for _ in range(n_steps):
        path.append(path[-1] + dm.mean_shift(path[-1], data, tau, "gaussian"))
    return torch.stack(path)


def field_two_means(x, y_pos, y_neg, tau, kernel="gaussian"):
    """The two weighted means subtracted: the x terms cancel."""
    w_pos = torch.softmax(_logits(x, y_pos, tau, kernel), dim=1)
    w_neg = torch.softmax(_logits(x, y_neg, tau, kernel), dim=1)
    return w_pos @ y_pos - w_neg @ y_neg


def field_reference_shifts(x, y_pos, y_neg, tau, kernel="gaussian"):
    """drifting_min's mean shift towards each set."""
    return dm.mean_shift(x, y_pos, tau, kernel) - dm.mean_shift(x, y_neg, tau, kernel)


def joint_pair_weights(x, y_pos, y_neg, tau, kernel="gaussian"):
    """The N x M x K pair weights formed explicitly, then summed against the pair differences."""
    w_pos = torch.softmax(_logits(x, y_pos, tau, kernel), dim=1)
    w_neg = torch.softmax(_logits(x, y_neg, tau, kernel), dim=1)
    pairs = w_pos[:, :, None] * w_neg[:, None, :]  # N x M x K, each slice sums to 1
    diff = y_pos[:, None, :] - y_neg[None, :, :]  # M x K x D
    return (pairs[..., None] * diff[None]).sum(dim=(1, 2))


def joint_log_space(x, y_pos, y_neg, tau, kernel="gaussian"):
    """Pair weights from the sum of the two log-softmaxes."""
    log_pos = _logits(x, y_pos, tau, kernel).log_softmax(1)
    log_neg = _logits(x, y_neg, tau, kernel).log_softmax(1)
    pairs = (log_pos[:, :, None] + log_neg[:, None, :]).exp()
    return torch.einsum("njk,jkd->nd", pairs, y_pos[:, None, :] - y_neg[None, :, :])


def preconditioner_log_softmax(x, data, tau):
    """tau^2 + tau r_bar, the weights from log_softmax."""
    r = (x[:, None, :] - data[None, :, :]).norm(dim=-1)
    r_bar = (torch.log_softmax(-r / tau, dim=1).exp() * r).sum(1, keepdim=True)
    return tau**2 + tau * r_bar


def preconditioner_cdist(x, data, tau):
    """torch.cdist in its exact mode; the weighted mean distance by a matrix product with ones."""
    r = torch.cdist(x, data, compute_mode="donot_use_mm_for_euclid_dist")
    w = torch.softmax(-r / tau, dim=1)
    return tau * (tau + (w * r) @ torch.ones(r.shape[1], 1, dtype=r.dtype, device=r.device))


def batch_where_mask(x, y_pos, y_neg=None, tau=0.05, kernel="laplace"):
    """The self-mask by torch.where; the two softmaxes multiplied, then the root."""
    x = x.detach()
    negatives = x if y_neg is None else y_neg.detach()
    y_pos = y_pos.detach()
    k = negatives.shape[0]
    logits = _logits(x, torch.cat([negatives, y_pos]), tau, kernel)
    if y_neg is None:
        mask = torch.zeros_like(logits, dtype=torch.bool)
        mask[:, :k] = torch.eye(x.shape[0], k, dtype=torch.bool, device=x.device)
        logits = torch.where(mask, torch.full_like(logits, float("-inf")), logits)
    a = (torch.softmax(logits, dim=1) * torch.softmax(logits, dim=0)).sqrt()
    a_neg, a_pos = a[:, :k], a[:, k:]
    return (a_pos * a_neg.sum(1, keepdim=True)) @ y_pos - (a_neg * a_pos.sum(1, keepdim=True)) @ negatives


def batch_no_grad(x, y_pos, y_neg=None, tau=0.05, kernel="laplace"):
    """Under torch.no_grad(), the affinities in log space, the force with einsum."""
    with torch.no_grad():
        negatives = x if y_neg is None else y_neg
        k = negatives.shape[0]
        logits = dm.kernel_logits(x, torch.cat([negatives, y_pos]), tau, kernel)
        if y_neg is None:
            logits[:, :k].fill_diagonal_(float("-inf"))
        log_a = 0.5 * (logits.log_softmax(1) + logits.log_softmax(0))
        a = log_a.exp()
        w_pos = a[:, k:] * a[:, :k].sum(1, keepdim=True)
        w_neg = a[:, :k] * a[:, k:].sum(1, keepdim=True)
        return torch.einsum("nm,md->nd", w_pos, y_pos) - torch.einsum("nk,kd->nd", w_neg, negatives)


ALTERNATIVES = [
    Alternative("3.1", "mean_shift", "exp(log_softmax) and einsum", mean_shift_log_softmax),
    Alternative("3.1", "mean_shift", "drifting_min's kernel_logits", mean_shift_kernel_logits),
    Alternative("3.2", "find_modes", "preallocated path", modes_preallocated),
    Alternative("3.2", "find_modes", "drifting_min's mean shift", modes_reference_shift),
    Alternative("3.3", "drift_field", "two weighted means", field_two_means),
    Alternative("3.3", "drift_field", "drifting_min's mean shifts", field_reference_shifts),
    Alternative("3.4", "drift_field_joint", "explicit pair weights", joint_pair_weights),
    Alternative("3.4", "drift_field_joint", "pair weights in log space", joint_log_space),
    Alternative("3.5", "laplace_preconditioner", "tau^2 + tau r_bar from log_softmax", preconditioner_log_softmax),
    Alternative("3.5", "laplace_preconditioner", "exact cdist and a matrix product", preconditioner_cdist),
    Alternative("3.6", "batch_drift_field", "torch.where mask, softmax product", batch_where_mask),
    Alternative("3.6", "batch_drift_field", "no_grad, log space, einsum", batch_no_grad),
]
