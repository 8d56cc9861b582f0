"""Lesson 01: from KL to a score difference.

Everything here is about Gaussians, where scores, KL divergences and their gradients have closed forms, so
each step of the lesson's derivation can be checked to the last digit.

Notation (the course's): x (N x D) are samples, p is the target, q the model; s_p(x) = grad_x log p(x) and
s_q(x) = grad_x log q(x) are their scores; V(x) = s_p(x) - s_q(x) is the field that moves samples. A generator
x = f_theta(eps), eps ~ N(0, I), pushes the noise forward to q.

Convention for matrices: a mean is a vector of shape (D,), a covariance Sigma a symmetric positive definite
D x D matrix, and a batch of points is one point per row.
"""

from __future__ import annotations

import math
from typing import Callable

import torch


def gaussian_score(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """The score of N(mean, cov) at each row of ``x``: s(x) = grad_x log N(x; mu, Sigma) = -Sigma^{-1} (x - mu).

    Args:
        x: N x D points.
        mean: mu, shape (D,).
        cov: Sigma, D x D, symmetric positive definite.

    Returns:
        N x D: row i is -Sigma^{-1} (x_i - mu), in the dtype of ``x``.

    The score does not depend on the normalising constant of the density: it points from x towards the mean,
    more steeply along directions where Sigma is small. Check: ``pytest lessons/01 -k ex1_1``.
    """
    # BEGIN SOLUTION 1.1: solve a linear system with Sigma rather than inverting it; mind the minus sign
    # log N(x; mu, Sigma) = -1/2 (x - mu)^T Sigma^{-1} (x - mu) + const, whose gradient is -Sigma^{-1} (x - mu).
    diff = x - mean  # N x D, one displacement from the mean per row
    # Sigma^{-1} diff_i for every row at once: solve Sigma Z = diff^T (D x N), then transpose back.
    # (Sigma is symmetric, so the row form diff_i^T Sigma^{-1} is the same vector.)
    precision_times_diff = torch.linalg.solve(cov, diff.T).T
    return -precision_times_diff
    # END SOLUTION


def gaussian_kl(mean_q: torch.Tensor, cov_q: torch.Tensor, mean_p: torch.Tensor, cov_p: torch.Tensor) -> torch.Tensor:
    """KL(q || p) between q = N(mu_q, Sigma_q) and p = N(mu_p, Sigma_p), in closed form:

        KL(q || p) = 1/2 [ tr(Sigma_p^{-1} Sigma_q) + (mu_p - mu_q)^T Sigma_p^{-1} (mu_p - mu_q) - D
                           + log det Sigma_p - log det Sigma_q ].

    Args:
        mean_q, mean_p: shape (D,).
        cov_q, cov_p: D x D, symmetric positive definite.

    Returns:
        A 0-dimensional tensor (a scalar), >= 0, equal to 0 exactly when the two Gaussians are the same.

    The order matters: the expectation is over q, the first argument. Check: ``pytest lessons/01 -k ex1_2``.
    """
    # BEGIN SOLUTION 1.2: four terms: a trace, a Mahalanobis distance under Sigma_p, minus D, a log-det ratio; times 1/2
    dim = mean_q.shape[0]
    diff = mean_p - mean_q
    trace_term = torch.trace(torch.linalg.solve(cov_p, cov_q))  # tr(Sigma_p^{-1} Sigma_q)
    mahalanobis = diff @ torch.linalg.solve(cov_p, diff)  # (mu_p - mu_q)^T Sigma_p^{-1} (mu_p - mu_q)
    # log det of a positive definite matrix; slogdet's sign is +1 here.
    log_det_ratio = torch.linalg.slogdet(cov_p)[1] - torch.linalg.slogdet(cov_q)[1]
    return 0.5 * (trace_term + mahalanobis - dim + log_det_ratio)
    # END SOLUTION


def kl_monte_carlo(
    x: torch.Tensor,
    log_q: Callable[[torch.Tensor], torch.Tensor],
    log_p: Callable[[torch.Tensor], torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Monte Carlo estimate of KL(q || p) = E_{x ~ q}[log q(x) - log p(x)] from samples of q, with its
    standard error.

    With d_i = log q(x_i) - log p(x_i) for the N samples x_i ~ q:

        estimate = (1/N) sum_i d_i,        standard error = std(d) / sqrt(N),

    where std uses the unbiased variance (1/(N-1)) sum_i (d_i - estimate)^2.

    Args:
        x: N x D samples of q (N >= 2).
        log_q, log_p: functions mapping N x D points to their N log-densities.

    Returns:
        (estimate, standard_error), two 0-dimensional tensors. The estimate is unbiased; the closed form
        should lie within a few standard errors of it. Check: ``pytest lessons/01 -k ex1_3``.
    """
    # BEGIN SOLUTION 1.3: the per-sample terms are log q - log p on samples of q; their mean, and std / sqrt(N)
    n = x.shape[0]
    if n < 2:
        raise ValueError("a standard error needs at least two samples")
    terms = log_q(x) - log_p(x)  # (N,): one unbiased estimate of the KL per sample
    estimate = terms.mean()
    # The spread of the mean of N independent terms: their standard deviation over sqrt(N).
    standard_error = terms.std(correction=1) / math.sqrt(n)
    return estimate, standard_error
    # END SOLUTION


def score_difference(
    x: torch.Tensor,
    mean_q: torch.Tensor,
    cov_q: torch.Tensor,
    mean_p: torch.Tensor,
    cov_p: torch.Tensor,
) -> torch.Tensor:
    """The field that lowers KL(q || p) when samples move along it: V(x) = s_p(x) - s_q(x).

    For Gaussians q = N(mu_q, Sigma_q) and p = N(mu_p, Sigma_p):
    V(x) = -Sigma_p^{-1} (x - mu_p) + Sigma_q^{-1} (x - mu_q).

    Args:
        x: N x D points.
        mean_q, cov_q: q's mean (D,) and covariance (D x D).
        mean_p, cov_p: p's mean (D,) and covariance (D x D).

    Returns:
        N x D: V at each row of ``x``. It is minus the gradient with respect to x of the per-sample KL
        integrand log q(x) - log p(x) (q's parameters held fixed), it vanishes everywhere when q = p, and
        swapping p and q negates it. Check: ``pytest lessons/01 -k ex1_4``.
    """
    # BEGIN SOLUTION 1.4: attraction by the target's score minus the model's own score (use gaussian_score)
    s_p = gaussian_score(x, mean_p, cov_p)  # pulls every sample towards where p is high
    s_q = gaussian_score(x, mean_q, cov_q)  # q's own score: subtracting it pushes samples apart (spreads q)
    return s_p - s_q
    # END SOLUTION


def kl_gradient_pathwise(
    eps: torch.Tensor,
    mean_q: torch.Tensor,
    chol_q: torch.Tensor,
    mean_p: torch.Tensor,
    cov_p: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The gradient of KL(q_theta || p) for the affine generator x = f_theta(eps) = mu + L eps, estimated from
    the noise samples ``eps`` with the score difference only:

        grad_theta KL = E_eps[ (s_q(x) - s_p(x))^T df_theta(eps)/dtheta ] = E_eps[ -V(x)^T df_theta(eps)/dtheta ],

    where q = N(mu, L L^T) is the generator's pushforward. For this generator dx/dmu = I and dx_a/dL_bc =
    [a = b] eps_c, so with g_i = s_q(x_i) - s_p(x_i):

        grad_mu = (1/N) sum_i g_i,          grad_L = (1/N) sum_i g_i eps_i^T.

    Args:
        eps: N x D noise samples, one per row.
        mean_q: mu, shape (D,).
        chol_q: L, D x D and invertible (any such matrix, not only a triangular one); Sigma_q = L L^T.
        mean_p, cov_p: the target's mean (D,) and covariance (D x D).

    Returns:
        (grad_mu, grad_L) with shapes (D,) and (D, D): the gradient with respect to every entry of L. The term
        E_q[d/dtheta log q_theta] is left out on purpose: its expectation is zero. On noise whose sample mean
        is 0 and sample second moment is I, both equal the gradients of the closed-form KL exactly.
        Check: ``pytest lessons/01 -k ex1_5``.
    """
    # BEGIN SOLUTION 1.5: push the noise through the generator, g_i = -V(x_i) (use score_difference), then chain rule
    n = eps.shape[0]
    x = mean_q + eps @ chol_q.T  # x_i = mu + L eps_i, one sample per row
    cov_q = chol_q @ chol_q.T
    g = -score_difference(x, mean_q, cov_q, mean_p, cov_p)  # N x D: each sample's gradient s_q - s_p
    grad_mean = g.mean(dim=0)  # dx/dmu is the identity
    grad_chol = g.T @ eps / n  # entry (b, c): (1/N) sum_i g_ib eps_ic
    return grad_mean, grad_chol
    # END SOLUTION


def drift_particles(
    x0: torch.Tensor,
    mean_p: torch.Tensor,
    cov_p: torch.Tensor,
    step: float,
    n_steps: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Move particles along V = s_p - s_q, where q is the Gaussian fitted to the particles at each step.

    At step t, with the particles x^(t) (N x D):

        mu_t = (1/N) sum_i x_i^(t),    Sigma_t = (1/N) sum_i (x_i^(t) - mu_t)(x_i^(t) - mu_t)^T   (divide by N),
        kl_t = KL(N(mu_t, Sigma_t) || p),
        x^(t+1) = x^(t) + step * V(x^(t)),   V = s_p - s_q with q = N(mu_t, Sigma_t).

    Args:
        x0: N x D starting particles (N > D, so that Sigma_t is invertible).
        mean_p, cov_p: the target p = N(mu_p, Sigma_p).
        step: the step size (a small positive number).
        n_steps: how many moves.

    Returns:
        (trajectory, kl): trajectory has shape (n_steps + 1, N, D), trajectory[0] = x0 and trajectory[t] the
        particles after t moves; kl has shape (n_steps + 1,), kl[t] the KL of the Gaussian fitted to
        trajectory[t]. For a small step the KL decreases to 0 and the particles' mean and covariance
        become p's. Check: ``pytest lessons/01 -k ex1_6``.
    """
    # BEGIN SOLUTION 1.6: refit mu_t and Sigma_t (divide by N) at every step, record the KL, then x += step * V
    x = x0
    trajectory = [x0]
    kls = []
    for t in range(n_steps + 1):
        mean_t = x.mean(dim=0)
        centred = x - mean_t
        cov_t = centred.T @ centred / x.shape[0]  # the maximum-likelihood covariance (divide by N)
        kls.append(gaussian_kl(mean_t, cov_t, mean_p, cov_p))
        if t == n_steps:
            break
        # Every particle moves along the same field, computed from the current q: an explicit Euler step
        # of dx/dt = V(x).
        x = x + step * score_difference(x, mean_t, cov_t, mean_p, cov_p)
        trajectory.append(x)
    return torch.stack(trajectory), torch.stack(kls)
    # END SOLUTION
