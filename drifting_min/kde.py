"""Kernel density estimates and their scores: how a set of samples gives a score.

With data y_1..y_M and a normalised kernel K_tau, the KDE is

    p_tau(x) = (1/M) sum_j K_tau(x - y_j),        log p_tau(x) = logsumexp_j log k(x, y_j) - log M - log Z,

and its score is a softmax-weighted average of the kernel's own gradient:

    grad log p_tau(x) = sum_j w_j(x) grad_x log k(x, y_j),    w_j(x) = softmax_j(log k(x, y_j)).

For the Gaussian kernel grad_x log k = (y_j - x) / tau^2, and p_tau is exactly the density of y + N(0, tau^2 I):
Tweedie's formula then gives the posterior mean E[y | x] = x + tau^2 grad log p_tau(x).
"""

from __future__ import annotations

import math

import torch

from .kernels import check_kernel, check_tau, full_precision, kernel_logits, pairwise_distances


def kernel_log_normaliser(dim: int, tau: float, kernel: str = "gaussian") -> float:
    """log Z, with Z the integral of k(x, 0) over R^dim.

    Gaussian: Z = (2 pi tau^2)^(D/2).  Laplace: Z = tau^D * Gamma(D) * 2 pi^(D/2) / Gamma(D/2).
    """
    check_tau(tau)
    check_kernel(kernel)
    if kernel == "gaussian":
        return 0.5 * dim * math.log(2.0 * math.pi * tau**2)
    return dim * math.log(tau) + math.lgamma(dim) + math.log(2.0) + 0.5 * dim * math.log(math.pi) - math.lgamma(dim / 2)


@full_precision
def kde_log_density(x: torch.Tensor, data: torch.Tensor, tau: float, kernel: str = "gaussian") -> torch.Tensor:
    """log p_tau(x_i) for each query, shape (N,); a logsumexp, so stable at any temperature."""
    logits = kernel_logits(x, data, tau, kernel)
    return torch.logsumexp(logits, dim=1) - math.log(data.shape[0]) - kernel_log_normaliser(x.shape[1], tau, kernel)


@full_precision
def kde_score(x: torch.Tensor, data: torch.Tensor, tau: float, kernel: str = "gaussian") -> torch.Tensor:
    """grad_x log p_tau(x), shape N x D, in closed form (no autograd).

    Gaussian: sum_j w_ij (y_j - x_i) / tau^2.  Laplace: sum_j w_ij (y_j - x_i) / (tau |y_j - x_i|), where a
    target that coincides with the query contributes nothing (the kernel's gradient is undefined there).
    """
    logits = kernel_logits(x, data, tau, kernel)
    weights = torch.softmax(logits, dim=1)
    if kernel == "gaussian":
        return (weights @ data.to(weights.dtype) - x.to(weights.dtype)) / tau**2
    dist = pairwise_distances(x, data)
    inv = torch.where(dist > 0, 1.0 / (tau * dist.clamp_min(torch.finfo(dist.dtype).tiny)), torch.zeros_like(dist))
    coef = weights * inv
    return coef @ data.to(coef.dtype) - x.to(coef.dtype) * coef.sum(1, keepdim=True)


def tweedie_denoise(x: torch.Tensor, data: torch.Tensor, tau: float) -> torch.Tensor:
    """E[y | x] for x = y + N(0, tau^2 I), y uniform on ``data``: x + tau^2 grad log p_tau(x)."""
    return x + tau**2 * kde_score(x, data, tau, "gaussian").to(x.dtype)


@full_precision
def laplace_log_potential(x: torch.Tensor, data: torch.Tensor, tau: float) -> torch.Tensor:
    """log (p * K)(x) for the Laplace kernel, up to a constant: log (1/M) sum_j (r_j + tau) exp(-r_j / tau).

    For a radial kernel kappa(r), K(r) = integral_r^inf s kappa(s) ds satisfies grad_x K(|x - y|) = kappa (y - x),
    so the Laplace mean shift is a *preconditioned* score of p * K (see ``laplace_preconditioner``).
    For kappa = exp(-r / tau), K(r) = tau (r + tau) exp(-r / tau); the constant factor tau is dropped here.
    """
    check_tau(tau)
    dist = pairwise_distances(x, data)
    return torch.logsumexp(torch.log(dist + tau) - dist / tau, dim=1) - math.log(data.shape[0])


@full_precision
def laplace_preconditioner(x: torch.Tensor, data: torch.Tensor, tau: float) -> torch.Tensor:
    """rho(x) = (p * K)(x) / (p * kappa)(x) = tau (tau + r_bar(x)), shape (N, 1).

    r_bar is the kernel-weighted mean distance sum_j softmax_j(-r_j / tau) r_j, and the mean shift towards
    the data is V+(x) = rho(x) grad log (p * K)(x).
    """
    dist = pairwise_distances(x, data)
    r_bar = (torch.softmax(-dist / tau, dim=1) * dist).sum(1, keepdim=True)
    return tau * (tau + r_bar)
