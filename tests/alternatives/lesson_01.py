"""Correct answers to lesson 01's exercises written another way than the worked solutions; every graded check of
their exercise must accept them."""

from __future__ import annotations

import math

import torch

from course.mistakes import Alternative


def score_inverse(x, mean, cov):
    """The precision matrix applied to the centred rows."""
    return -(x - mean) @ torch.linalg.inv(cov).T


def score_cholesky(x, mean, cov):
    """A Cholesky solve: Sigma = L L^T."""
    chol = torch.linalg.cholesky(cov)
    return -torch.cholesky_solve((x - mean).T, chol).T


def kl_cholesky(mean_q, cov_q, mean_p, cov_p):
    """Log-determinants from the Cholesky factors, the trace and the Mahalanobis term from triangular solves."""
    chol_p, chol_q = torch.linalg.cholesky(cov_p), torch.linalg.cholesky(cov_q)
    a = torch.linalg.solve_triangular(chol_p, chol_q, upper=False)  # L_p^-1 L_q: tr(S_p^-1 S_q) = |a|_F^2
    b = torch.linalg.solve_triangular(chol_p, (mean_p - mean_q)[:, None], upper=False)
    logdet = 2 * (chol_p.diagonal().log().sum() - chol_q.diagonal().log().sum())
    return 0.5 * (a.square().sum() + b.square().sum() - mean_q.shape[0] + logdet)


def kl_slogdet(mean_q, cov_q, mean_p, cov_p):
    """slogdet and linalg.solve."""
    diff = mean_p - mean_q
    trace = torch.linalg.solve(cov_p, cov_q).diagonal().sum()
    maha = diff @ torch.linalg.solve(cov_p, diff)
    return 0.5 * (trace + maha - len(diff) + torch.linalg.slogdet(cov_p)[1] - torch.linalg.slogdet(cov_q)[1])


def mc_by_hand(x, log_q, log_p):
    """The unbiased variance written out."""
    terms = log_q(x) - log_p(x)
    n = terms.shape[0]
    estimate = terms.sum() / n
    variance = (terms - estimate).square().sum() / (n - 1)
    return estimate, (variance / n).sqrt()


def mc_std_mean(x, log_q, log_p):
    """torch.std_mean in one call."""
    std, mean = torch.std_mean(log_q(x) - log_p(x), correction=1)
    return mean, std / math.sqrt(x.shape[0])


def difference_solve(x, mean_q, cov_q, mean_p, cov_p):
    """Two linear solves, written out."""
    s_p = -torch.linalg.solve(cov_p, (x - mean_p).T).T
    s_q = -torch.linalg.solve(cov_q, (x - mean_q).T).T
    return s_p - s_q


def difference_precisions(x, mean_q, cov_q, mean_p, cov_p):
    """Precision matrices: V = P_q (x - mu_q) - P_p (x - mu_p)."""
    return (x - mean_q) @ torch.linalg.inv(cov_q).T - (x - mean_p) @ torch.linalg.inv(cov_p).T


def pathwise_autograd(eps, mean_q, chol_q, mean_p, cov_p):
    """Autograd on new leaves through the surrogate (1/N) sum_i <x_i(mu, L), stopgrad(-V(x_i))>."""
    mu = mean_q.detach().clone().requires_grad_(True)
    chol = chol_q.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        x = mu + eps @ chol.T
        cov_q = (chol @ chol.T).detach()
        v = -torch.linalg.solve(cov_p, (x - mean_p).T).T + torch.linalg.solve(cov_q, (x - mu).T).T
        surrogate = (x * (-v.detach())).sum() / eps.shape[0]
        grad_mu, grad_chol = torch.autograd.grad(surrogate, (mu, chol))
    return grad_mu, grad_chol


def pathwise_einsum(eps, mean_q, chol_q, mean_p, cov_p):
    """The outer products with einsum, the scores from precision matrices."""
    x = mean_q + torch.einsum("bc,nc->nb", chol_q, eps)
    prec_q, prec_p = torch.linalg.inv(chol_q @ chol_q.T), torch.linalg.inv(cov_p)
    g = (x - mean_p) @ prec_p.T - (x - mean_q) @ prec_q.T  # s_q - s_p
    return g.mean(0), torch.einsum("nb,nc->bc", g, eps) / eps.shape[0]


def _kl(mean_q, cov_q, mean_p, cov_p):
    diff = mean_p - mean_q
    prec_p = torch.linalg.inv(cov_p)
    return 0.5 * ((prec_p @ cov_q).trace() + diff @ prec_p @ diff - len(diff)
                  + torch.logdet(cov_p) - torch.logdet(cov_q))


def particles_torch_cov(x0, mean_p, cov_p, step, n_steps):
    """torch.cov with correction=0 for the fitted covariance; the states preallocated."""
    states = x0.new_empty((n_steps + 1, *x0.shape))
    kls = x0.new_empty(n_steps + 1)
    x = x0
    for t in range(n_steps + 1):
        states[t] = x
        mean_t, cov_t = x.mean(0), torch.cov(x.T, correction=0)
        kls[t] = _kl(mean_t, cov_t, mean_p, cov_p)
        if t < n_steps:
            v = -torch.linalg.solve(cov_p, (x - mean_p).T).T + torch.linalg.solve(cov_t, (x - mean_t).T).T
            x = x + step * v
    return states, kls


def particles_list(x0, mean_p, cov_p, step, n_steps):
    """Lists of states and KLs, the moments from sums."""
    xs, kls = [x0], []
    for t in range(n_steps + 1):
        x = xs[-1]
        n = x.shape[0]
        mean_t = x.sum(0) / n
        cov_t = torch.einsum("ni,nj->ij", x - mean_t, x - mean_t) / n
        kls.append(_kl(mean_t, cov_t, mean_p, cov_p))
        if t < n_steps:
            v = (x - mean_t) @ torch.linalg.inv(cov_t).T - (x - mean_p) @ torch.linalg.inv(cov_p).T
            xs.append(x + step * v)
    return torch.stack(xs), torch.stack(kls)


ALTERNATIVES = [
    Alternative("1.1", "gaussian_score", "precision matrix", score_inverse),
    Alternative("1.1", "gaussian_score", "Cholesky solve", score_cholesky),
    Alternative("1.2", "gaussian_kl", "Cholesky factors and triangular solves", kl_cholesky),
    Alternative("1.2", "gaussian_kl", "slogdet and solve", kl_slogdet),
    Alternative("1.3", "kl_monte_carlo", "variance written out", mc_by_hand),
    Alternative("1.3", "kl_monte_carlo", "torch.std_mean", mc_std_mean),
    Alternative("1.4", "score_difference", "two solves", difference_solve),
    Alternative("1.4", "score_difference", "precision matrices", difference_precisions),
    Alternative("1.5", "kl_gradient_pathwise", "autograd on new leaves through a surrogate", pathwise_autograd),
    Alternative("1.5", "kl_gradient_pathwise", "einsum and precision matrices", pathwise_einsum),
    Alternative("1.6", "drift_particles", "torch.cov, preallocated states", particles_torch_cov),
    Alternative("1.6", "drift_particles", "lists, moments from sums", particles_list),
]
