"""Lesson 02: KDE makes scores sample-based.

Notation (the course's): queries ``x`` are N x D, the data ``data`` (the targets y_1..y_M) are M x D, ``tau`` is
the bandwidth of the Gaussian kernel k(x, y) = exp(-|x - y|^2 / (2 tau^2)).

The kernel density estimate (KDE) of the data is

    p_tau(x) = (1/M) sum_j N(x; y_j, tau^2 I) = (1/M) (2 pi tau^2)^(-D/2) sum_j exp(-|x - y_j|^2 / (2 tau^2)),

the normalised kernel weights are k~(x, y_j) = softmax_j(-|x - y_j|^2 / (2 tau^2)), and everything in this file is
built from the N x M matrix of distances between queries and data.
"""

from __future__ import annotations

import math

import torch


def pairwise_distances(x: torch.Tensor, y: torch.Tensor, squared: bool = False) -> torch.Tensor:
    """Euclidean distances between every query and every target.

    d[i, j] = |x_i - y_j| = sqrt(sum_d (x_id - y_jd)^2), or d[i, j]^2 when ``squared`` is True.

    Args:
        x: queries, shape N x D.
        y: targets, shape M x D (same D).
        squared: return |x_i - y_j|^2 instead of |x_i - y_j|.

    Returns:
        The N x M matrix of distances (or squared distances), in the dtype of ``x``.
    """
    # BEGIN SOLUTION 2.1: broadcast x[:, None, :] - y[None, :, :], square, sum over the last dim; sqrt unless squared
    # Broadcasting: x[:, None, :] is N x 1 x D and y[None, :, :] is 1 x M x D, so their difference is N x M x D,
    # the displacement from every target to every query.
    diff = x[:, None, :] - y[None, :, :]
    # Sum the squares over the D coordinates (the last axis), not over samples.
    sq = diff.square().sum(dim=-1)
    if squared:
        return sq
    # The square root is taken last, so that d(x, x) has an exact zero diagonal.
    return sq.sqrt()
    # END SOLUTION


def kde_log_density(x: torch.Tensor, data: torch.Tensor, tau: float) -> torch.Tensor:
    """log p_tau(x_i) of the normalised Gaussian KDE of ``data``, for each query.

    log p_tau(x) = logsumexp_j(-|x - y_j|^2 / (2 tau^2)) - log M - (D/2) log(2 pi tau^2).

    Use a logsumexp, never log(sum(exp(.))): at small bandwidth (tau = 0.02) every exp underflows to 0 for a
    query a little away from the data, and the naive formula returns -inf.

    Args:
        x: queries, shape N x D.
        data: the samples y_1..y_M of the KDE, shape M x D.
        tau: the bandwidth (> 0).

    Returns:
        The log-densities, shape (N,).
    """
    # BEGIN SOLUTION 2.2: torch.logsumexp(-d^2 / (2 tau^2), dim=1) - log M - (D/2) log(2 pi tau^2)
    m, dim = data.shape
    # The kernel's logits log k(x_i, y_j): squared distances, divided by 2 tau^2 (tau squared, not tau).
    logits = -pairwise_distances(x, data, squared=True) / (2.0 * tau**2)
    # logsumexp subtracts the largest logit of each row before exponentiating, so no row underflows to log(0).
    log_sum = torch.logsumexp(logits, dim=1)
    # The KDE is a *mean* of M normalised Gaussians: divide the sum by M and by (2 pi tau^2)^(D/2).
    log_normaliser = 0.5 * dim * math.log(2.0 * math.pi * tau**2)
    return log_sum - math.log(m) - log_normaliser
    # END SOLUTION


def kde_score(x: torch.Tensor, data: torch.Tensor, tau: float) -> torch.Tensor:
    """The score grad_x log p_tau(x) of the Gaussian KDE, in closed form (no autograd).

    grad_x log p_tau(x) = sum_j k~(x, y_j) (y_j - x) / tau^2,   k~(x, y_j) = softmax_j(-|x - y_j|^2 / (2 tau^2)):
    a softmax-weighted average of the displacements towards the data, divided by tau^2.

    Args:
        x: queries, shape N x D.
        data: the samples y_1..y_M of the KDE, shape M x D.
        tau: the bandwidth (> 0).

    Returns:
        The scores, shape N x D.
    """
    # BEGIN SOLUTION 2.3: w = softmax(-d^2 / (2 tau^2), dim=1) over the data; return (w @ data - x) / tau^2
    logits = -pairwise_distances(x, data, squared=True) / (2.0 * tau**2)
    # Normalise over the data (dim=1): each query's weights sum to one. torch.softmax is stable at small tau.
    weights = torch.softmax(logits, dim=1)
    # sum_j w_ij (y_j - x_i) = (sum_j w_ij y_j) - x_i, because the weights of a row sum to one.
    displacement = weights @ data - x
    # The gradient of -|x - y|^2 / (2 tau^2) is (y - x) / tau^2: divide by tau squared.
    return displacement / tau**2
    # END SOLUTION


def tweedie_denoise(x: torch.Tensor, data: torch.Tensor, tau: float) -> torch.Tensor:
    """The posterior mean E[y | x] when y is drawn uniformly from ``data`` and x = y + N(0, tau^2 I) noise.

    By Bayes, P(y = y_j | x) = k~(x, y_j) = softmax_j(-|x - y_j|^2 / (2 tau^2)), so

        E[y | x] = sum_j k~(x, y_j) y_j = x + tau^2 grad_x log p_tau(x)     (Tweedie's formula).

    Args:
        x: noisy queries, shape N x D.
        data: the clean samples y_1..y_M, shape M x D.
        tau: the standard deviation of the noise, which is the bandwidth of the KDE (> 0).

    Returns:
        The denoised points E[y | x_i], shape N x D.
    """
    # BEGIN SOLUTION 2.4: posterior P(j | x) = softmax(-d^2 / (2 tau^2), dim=1); return P @ data (= x + tau^2 score)
    # Bayes with a uniform prior 1/M: P(j | x) is proportional to N(x; y_j, tau^2 I); the prior and the Gaussian's
    # normaliser are the same for every j and cancel in the softmax.
    log_posterior = -pairwise_distances(x, data, squared=True) / (2.0 * tau**2)
    posterior = torch.softmax(log_posterior, dim=1)
    # The posterior mean: a convex combination of the data points. Written as x + sum_j P(j | x) (y_j - x) it is
    # x + tau^2 * score, but the weighted mean is the form that does not lose digits when tau is tiny.
    return posterior @ data
    # END SOLUTION
