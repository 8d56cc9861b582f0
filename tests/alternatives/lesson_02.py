"""Correct answers to lesson 02's exercises written another way than the worked solutions; every graded check of
their exercise must accept them."""

from __future__ import annotations

import math

import torch

from course.mistakes import Alternative


def distances_cdist(x, y, squared=False):
    """torch.cdist in its exact mode (differences, never the |x|^2 expansion)."""
    d = torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist")
    return d.square() if squared else d


def distances_norm(x, y, squared=False):
    """The norm of the broadcast differences."""
    diff = x.unsqueeze(1) - y.unsqueeze(0)
    return (diff * diff).sum(-1) if squared else torch.linalg.vector_norm(diff, dim=-1)


def _sq(x, data):
    return (x[:, None, :] - data[None, :, :]).square().sum(-1)


def log_density_max_shift(x, data, tau):
    """The log-sum-exp written out: subtract each row's largest logit first."""
    logits = -_sq(x, data) / (2 * tau * tau)
    top = logits.amax(1, keepdim=True)
    lse = (top + (logits - top).exp().sum(1, keepdim=True).log()).squeeze(1)
    return lse - math.log(data.shape[0]) - 0.5 * x.shape[1] * math.log(2 * math.pi * tau**2)


def log_density_mean_kernel(x, data, tau):
    """log of the mean over the data: logsumexp minus log M, the Gaussian normaliser written as a sum of logs."""
    d = x.shape[1]
    log_kernel = -_sq(x, data) / (2 * tau**2) - d * math.log(tau) - d / 2 * math.log(2 * math.pi)
    return torch.logsumexp(log_kernel - math.log(len(data)), dim=1)


def score_log_softmax(x, data, tau):
    """Weights as exp(log_softmax), the differences y_j - x weighted with einsum."""
    w = torch.log_softmax(-_sq(x, data) / (2 * tau**2), dim=1).exp()
    return torch.einsum("nm,nmd->nd", w, data[None, :, :] - x[:, None, :]) / tau**2


def score_weighted_mean(x, data, tau):
    """(weighted mean of the data - x) / tau^2, the weights by torch.softmax."""
    w = torch.softmax(-_sq(x, data) / (2 * tau**2), dim=1)
    return (torch.matmul(w, data) - x) / (tau * tau)


def tweedie_einsum(x, data, tau):
    """The posterior weights applied with einsum."""
    return torch.einsum("nm,md->nd", torch.softmax(-_sq(x, data) / (2 * tau**2), dim=1), data)


def tweedie_from_score(x, data, tau):
    """x + tau^2 times the closed-form score, written out here."""
    w = torch.softmax(-_sq(x, data) / (2 * tau**2), dim=1)
    return x + tau**2 * ((w[:, :, None] * (data[None] - x[:, None])).sum(1) / tau**2)


ALTERNATIVES = [
    Alternative("2.1", "pairwise_distances", "torch.cdist in its exact mode", distances_cdist),
    Alternative("2.1", "pairwise_distances", "vector_norm of the differences", distances_norm),
    Alternative("2.2", "kde_log_density", "log-sum-exp written out", log_density_max_shift),
    Alternative("2.2", "kde_log_density", "normaliser inside the log-sum-exp", log_density_mean_kernel),
    Alternative("2.3", "kde_score", "exp(log_softmax) and einsum", score_log_softmax),
    Alternative("2.3", "kde_score", "weighted mean minus x", score_weighted_mean),
    Alternative("2.4", "tweedie_denoise", "einsum of the posterior", tweedie_einsum),
    Alternative("2.4", "tweedie_denoise", "x + tau^2 score", tweedie_from_score),
]
