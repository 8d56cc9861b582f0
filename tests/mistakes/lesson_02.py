"""Typical mistakes in lesson 02 (KDE makes scores sample-based); each must fail a graded check of its exercise.

Every wrong function keeps the shape and dtype of the right one, so only a value or a property check catches it.
"""

from __future__ import annotations

import math

import torch

from course.mistakes import Mistake

# drifting_min names that the solution of each exercise must not call (it would be checked against itself).
TAUGHT = {
    "2.1": ["pairwise_distances"],
    "2.2": ["kde_log_density"],
    "2.3": ["kde_score"],
    "2.4": ["tweedie_denoise", "kde_score"],
}


def _sq_dist(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x[:, None, :] - y[None, :, :]).square().sum(-1)


# ----------------------------------------------------------------------------------------------------- 2.1


def _distances_ignore_flag(correct, module):
    return lambda x, y, squared=False: correct(x, y, squared=False)


def _distances_always_squared(correct, module):
    return lambda x, y, squared=False: correct(x, y, squared=True)


def _distances_l1(correct, module):
    def wrong(x, y, squared=False):
        d = (x[:, None, :] - y[None, :, :]).abs().sum(-1)
        return d.square() if squared else d

    return wrong


def _distances_mean_over_dims(correct, module):
    def wrong(x, y, squared=False):
        sq = (x[:, None, :] - y[None, :, :]).square().mean(-1)
        return sq if squared else sq.sqrt()

    return wrong


def _distances_centred_in_place(correct):
    def wrong(x, y, squared=False):
        # Distances do not change when both sets move together, but the caller's tensors do.
        centre = y.mean(dim=0).clone()
        x.sub_(centre)
        if y is not x:
            y.sub_(centre)
        return correct(x, y, squared)

    return wrong


# ----------------------------------------------------------------------------------------------------- 2.2


def _log_density_naive(correct, module):
    def wrong(x, data, tau):
        logits = -_sq_dist(x, data) / (2 * tau**2)
        return (torch.log(torch.exp(logits).sum(1)) - math.log(data.shape[0])
                - 0.5 * x.shape[1] * math.log(2 * math.pi * tau**2))

    return wrong


def _log_density_unnormalised(correct, module):
    return lambda x, data, tau: correct(x, data, tau) + 0.5 * x.shape[1] * math.log(2 * math.pi * tau**2)


def _log_density_sum_not_mean(correct, module):
    return lambda x, data, tau: correct(x, data, tau) + math.log(data.shape[0])


def _log_density_tau_not_tau_squared(correct, module):
    def wrong(x, data, tau):
        logits = -_sq_dist(x, data) / (2 * tau)
        return torch.logsumexp(logits, 1) - math.log(data.shape[0]) - 0.5 * x.shape[1] * math.log(2 * math.pi * tau)

    return wrong


def _log_density_plain_distance(correct, module):
    def wrong(x, data, tau):
        logits = -_sq_dist(x, data).sqrt() / (2 * tau**2)
        return torch.logsumexp(logits, 1) - math.log(data.shape[0]) - 0.5 * x.shape[1] * math.log(2 * math.pi * tau**2)

    return wrong


# ----------------------------------------------------------------------------------------------------- 2.3


def _score_flipped(correct, module):
    return lambda x, data, tau: -correct(x, data, tau)


def _score_no_tau_squared(correct, module):
    return lambda x, data, tau: correct(x, data, tau) * tau**2


def _score_tau_not_tau_squared(correct, module):
    return lambda x, data, tau: correct(x, data, tau) * tau


def _score_softmax_over_queries(correct, module):
    def wrong(x, data, tau):
        weights = torch.softmax(-_sq_dist(x, data) / (2 * tau**2), dim=0)
        return (weights @ data - x) / tau**2

    return wrong


def _score_unnormalised_weights(correct, module):
    def wrong(x, data, tau):
        weights = torch.exp(-_sq_dist(x, data) / (2 * tau**2))
        return (weights @ data - x) / tau**2

    return wrong


def _score_naive_softmax(correct, module):
    def wrong(x, data, tau):
        k = torch.exp(-_sq_dist(x, data) / (2 * tau**2))
        weights = k / k.sum(1, keepdim=True)
        return (weights @ data - x) / tau**2

    return wrong


# ----------------------------------------------------------------------------------------------------- 2.4


def _tweedie_flipped(correct, module):
    return lambda x, data, tau: 2 * x - correct(x, data, tau)


def _tweedie_tau_not_tau_squared(correct, module):
    return lambda x, data, tau: x + (correct(x, data, tau) - x) / tau


def _tweedie_returns_the_step(correct, module):
    return lambda x, data, tau: correct(x, data, tau) - x


def _tweedie_softmax_over_queries(correct, module):
    def wrong(x, data, tau):
        return torch.softmax(-_sq_dist(x, data) / (2 * tau**2), dim=0) @ data

    return wrong


def _tweedie_laplace_weights(correct, module):
    def wrong(x, data, tau):
        return torch.softmax(-_sq_dist(x, data).sqrt() / tau, dim=1) @ data

    return wrong


def _tweedie_hard_nearest(correct, module):
    def wrong(x, data, tau):
        return data[_sq_dist(x, data).argmin(dim=1)]

    return wrong


def _distances_expanded(x, y, squared=False):
    """|x|^2 + |y|^2 - 2 x.y: exact in exact arithmetic, no digits left far from the origin."""
    sq = (x.square().sum(1)[:, None] + y.square().sum(1)[None, :] - 2 * x @ y.T).clamp_min(0)
    return sq if squared else sq.sqrt()


def _distances_epsilon(x, y, squared=False):
    """An epsilon under the root "for a finite gradient at zero"."""
    sq = (x[:, None, :] - y[None, :, :]).square().sum(-1)
    return sq if squared else (sq + 1e-12).sqrt()


def _log_density_tau_fixed(f, m):
    return lambda x, data, tau: f(x, data, 0.7)


def _log_density_numpy(x, data, tau):
    """scipy-style: the log-sum-exp in numpy, on the tensors' values."""
    import numpy as np

    d2 = ((x[:, None, :] - data[None, :, :]) ** 2).sum(-1).numpy()
    logits = -d2 / (2 * tau**2)
    top = logits.max(1, keepdims=True)
    lse = (top + np.log(np.exp(logits - top).sum(1, keepdims=True)))[:, 0]
    value = lse - math.log(data.shape[0]) - x.shape[1] / 2 * math.log(2 * math.pi * tau**2)
    return torch.from_numpy(value).to(x.dtype)


def _score_expanded(x, data, tau):
    """Weights from |x|^2 + |y|^2 - 2 x.y."""
    d2 = x.square().sum(1)[:, None] + data.square().sum(1)[None, :] - 2 * x @ data.T
    w = torch.softmax(-d2 / (2 * tau**2), dim=1)
    return (w @ data - x) / tau**2


def _tweedie_cpu_zeros(x, data, tau):
    """The posterior mean accumulated into a tensor made on the CPU."""
    w = torch.softmax(-(x[:, None, :] - data[None, :, :]).square().sum(-1) / (2 * tau**2), dim=1)
    out = torch.zeros(x.shape, dtype=x.dtype)
    return out + w @ data


MISTAKES = [
    Mistake("2.1", "pairwise_distances", "squared flag ignored (always plain)", _distances_ignore_flag),
    Mistake("2.1", "pairwise_distances", "squared distance returned when plain asked", _distances_always_squared),
    Mistake("2.1", "pairwise_distances", "L1 (Manhattan) distance", _distances_l1),
    Mistake("2.1", "pairwise_distances", "mean over dimensions instead of sum", _distances_mean_over_dims),
    Mistake("2.1", "pairwise_distances", "always returns float64 (computes in double and never casts back)",
            lambda f, m: lambda x, y, squared=False: f(x.double(), y.double(), squared)),
    Mistake("2.1", "pairwise_distances", "centres both sets in place (the inputs are modified)",
            lambda f, m: _distances_centred_in_place(f)),
    Mistake("2.2", "kde_log_density", "naive log(sum(exp)) underflows", _log_density_naive),
    Mistake("2.2", "kde_log_density", "missing (2 pi tau^2)^(D/2) normaliser", _log_density_unnormalised),
    Mistake("2.2", "kde_log_density", "sum of kernels instead of mean (no log M)", _log_density_sum_not_mean),
    Mistake("2.2", "kde_log_density", "tau instead of tau^2", _log_density_tau_not_tau_squared),
    Mistake("2.2", "kde_log_density", "plain distance instead of squared", _log_density_plain_distance),
    Mistake("2.3", "kde_score", "flipped sign (x - y)", _score_flipped),
    Mistake("2.3", "kde_score", "missing 1 / tau^2 (mean shift, not score)", _score_no_tau_squared),
    Mistake("2.3", "kde_score", "divided by tau instead of tau^2", _score_tau_not_tau_squared),
    Mistake("2.3", "kde_score", "softmax over the queries", _score_softmax_over_queries),
    Mistake("2.3", "kde_score", "unnormalised kernel weights", _score_unnormalised_weights),
    Mistake("2.3", "kde_score", "softmax written as exp / sum (0 / 0 at small tau)", _score_naive_softmax),
    Mistake("2.4", "tweedie_denoise", "flipped sign (x - tau^2 score)", _tweedie_flipped),
    Mistake("2.4", "tweedie_denoise", "tau instead of tau^2 (x + tau score)", _tweedie_tau_not_tau_squared),
    Mistake("2.4", "tweedie_denoise", "returns the step tau^2 score, not x plus it", _tweedie_returns_the_step),
    Mistake("2.4", "tweedie_denoise", "posterior normalised over the queries", _tweedie_softmax_over_queries),
    Mistake("2.4", "tweedie_denoise", "Laplace weights instead of the Gaussian posterior", _tweedie_laplace_weights),
    Mistake("2.4", "tweedie_denoise", "hard nearest data point", _tweedie_hard_nearest),
    Mistake("2.4", "tweedie_denoise", "posterior mean in float64 whatever the input dtype",
            lambda f, m: lambda x, data, tau: f(x.double(), data.double(), tau)),
    Mistake("2.1", "pairwise_distances", "|x|^2 + |y|^2 - 2 x.y", lambda f, m: _distances_expanded),
    Mistake("2.1", "pairwise_distances", "1e-12 under the root", lambda f, m: _distances_epsilon),
    Mistake("2.2", "kde_log_density", "tau fixed at 0.7", _log_density_tau_fixed),
    Mistake("2.2", "kde_log_density", "the log-sum-exp in numpy", lambda f, m: _log_density_numpy),
    Mistake("2.3", "kde_score", "weights from |x|^2 + |y|^2 - 2 x.y", lambda f, m: _score_expanded),
    Mistake("2.4", "tweedie_denoise", "accumulated into a tensor made on the CPU", lambda f, m: _tweedie_cpu_zeros),
]
