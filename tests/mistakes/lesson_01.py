"""Typical mistakes of lesson 01; each must fail at least one graded check of its exercise.

drifting_min has no Gaussian functions, so no exercise of this lesson teaches one of its names: TAUGHT is empty.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from course.mistakes import Mistake

TAUGHT: dict[str, list[str]] = {"1.1": [], "1.2": [], "1.3": [], "1.4": [], "1.5": [], "1.6": []}


def _negated(f):
    return lambda *a, **k: -f(*a, **k)


# 1.1 gaussian_score --------------------------------------------------------------------------------------------


def _score_with_cov(f, m):
    return lambda x, mean, cov: -(x - mean) @ cov  # Sigma where Sigma^{-1} belongs


def _score_without_mean(f, m):
    return lambda x, mean, cov: -torch.linalg.solve(cov, x.T).T  # forgot to subtract mu


def _score_diagonal(f, m):
    return lambda x, mean, cov: -(x - mean) / torch.diagonal(cov)  # ignores the correlations


# 1.2 gaussian_kl -----------------------------------------------------------------------------------------------


def _kl_swapped(f, m):
    return lambda mean_q, cov_q, mean_p, cov_p: f(mean_p, cov_p, mean_q, cov_q)  # KL(p || q)


def _kl_without_half(f, m):
    return lambda *a: 2 * f(*a)


def _kl_flipped_logdet(f, m):
    def wrong(mean_q, cov_q, mean_p, cov_p):
        log_det_ratio = torch.logdet(cov_p) - torch.logdet(cov_q)
        return f(mean_q, cov_q, mean_p, cov_p) - log_det_ratio  # 1/2 (... - log_det_ratio)

    return wrong


def _kl_trace_with_cov_p(f, m):
    def wrong(mean_q, cov_q, mean_p, cov_p):
        correct_trace = torch.trace(torch.linalg.solve(cov_p, cov_q))
        return f(mean_q, cov_q, mean_p, cov_p) + 0.5 * (torch.trace(cov_p @ cov_q) - correct_trace)

    return wrong


# 1.3 kl_monte_carlo --------------------------------------------------------------------------------------------


def _mc_flipped(f, m):
    return lambda x, log_q, log_p: f(x, log_p, log_q)  # E_q[log p - log q]


def _mc_std_not_stderr(f, m):
    def wrong(x, log_q, log_p):
        estimate, stderr = f(x, log_q, log_p)
        return estimate, stderr * math.sqrt(x.shape[0])  # the spread of one term

    return wrong


def _mc_stderr_over_n(f, m):
    def wrong(x, log_q, log_p):
        estimate, stderr = f(x, log_q, log_p)
        return estimate, stderr / math.sqrt(x.shape[0])  # std / N

    return wrong


def _mc_sum(f, m):
    def wrong(x, log_q, log_p):
        estimate, stderr = f(x, log_q, log_p)
        return estimate * x.shape[0], stderr  # a sum instead of a mean

    return wrong


def _mc_biased_std(f, m):
    def wrong(x, log_q, log_p):
        terms = log_q(x) - log_p(x)
        return terms.mean(), terms.std(correction=0) / math.sqrt(x.shape[0])

    return wrong


# 1.4 score_difference ------------------------------------------------------------------------------------------


def _attraction_only(f, m):
    return lambda x, mean_q, cov_q, mean_p, cov_p: m.gaussian_score(x, mean_p, cov_p)


def _difference_halved(f, m):
    return lambda *a: 0.5 * f(*a)


def _difference_uses_p_cov_twice(f, m):
    return lambda x, mean_q, cov_q, mean_p, cov_p: f(x, mean_q, cov_p, mean_p, cov_p)  # q's covariance forgotten


# 1.5 kl_gradient_pathwise --------------------------------------------------------------------------------------


def _gradient_ascent(f, m):
    def wrong(*a):
        grad_mean, grad_chol = f(*a)
        return -grad_mean, -grad_chol  # uses V instead of -V

    return wrong


def _gradient_transposed(f, m):
    def wrong(*a):
        grad_mean, grad_chol = f(*a)
        return grad_mean, grad_chol.T  # eps^T g instead of g^T eps

    return wrong


def _gradient_summed(f, m):
    def wrong(eps, *a):
        grad_mean, grad_chol = f(eps, *a)
        return grad_mean, grad_chol * eps.shape[0]  # forgot to divide the outer products by N

    return wrong


def _gradient_without_own_score(f, m):
    def wrong(eps, mean_q, chol_q, mean_p, cov_p):
        x = mean_q + eps @ chol_q.T
        g = -m.gaussian_score(x, mean_p, cov_p)  # s_q dropped: nothing keeps q from collapsing
        return g.mean(dim=0), g.T @ eps / eps.shape[0]

    return wrong


# 1.6 drift_particles -------------------------------------------------------------------------------------------


def _drift_loop(m, *, refit=True, ddof=0, repulsion=True):
    def run(x0, mean_p, cov_p, step, n_steps):
        x, trajectory, kls = x0, [x0], []
        n = x0.shape[0]
        first = None
        for t in range(n_steps + 1):
            mean_t = x.mean(dim=0)
            cov_t = (x - mean_t).T @ (x - mean_t) / (n - ddof)
            kls.append(m.gaussian_kl(mean_t, cov_t, mean_p, cov_p))
            if t == n_steps:
                break
            if first is None or refit:
                first = (mean_t, cov_t)
            if repulsion:
                v = m.score_difference(x, first[0], first[1], mean_p, cov_p)
            else:
                v = m.gaussian_score(x, mean_p, cov_p)
            x = x + step * v
            trajectory.append(x)
        return torch.stack(trajectory), torch.stack(kls)

    return run


def _drift_records_after_moving(f, m):
    # off by one: every entry is one move late, so trajectory[0] is not x0
    def run(x0, mean_p, cov_p, step, n_steps):
        x, trajectory, kls = x0, [], []
        for _ in range(n_steps + 1):
            mean_t = x.mean(dim=0)
            cov_t = (x - mean_t).T @ (x - mean_t) / x.shape[0]
            x = x + step * m.score_difference(x, mean_t, cov_t, mean_p, cov_p)
            trajectory.append(x)
            mean_t = x.mean(dim=0)
            kls.append(m.gaussian_kl(mean_t, (x - mean_t).T @ (x - mean_t) / x.shape[0], mean_p, cov_p))
        return torch.stack(trajectory), torch.stack(kls)

    return run


def _score_centred_in_place(x, mean, cov):
    centred = x.sub_(mean)  # the right value, but the caller's x is now x - mean
    return -torch.linalg.solve(cov, centred.T).T


def _score_numpy(x, mean, cov):
    """np.linalg.solve on the tensors' values: no graph, CPU only."""
    return torch.from_numpy(-np.linalg.solve(cov.numpy(), (x - mean).numpy().T).T)


def _kl_identity_on_cpu(mean_q, cov_q, mean_p, cov_p):
    """The trace as the sum of (Sigma_p^-1 Sigma_q) * I, the identity made on the CPU."""
    d = mean_q.shape[0]
    prec_p = torch.linalg.inv(cov_p)
    diff = mean_p - mean_q
    return 0.5 * ((prec_p @ cov_q * torch.eye(d, dtype=cov_p.dtype)).sum() + diff @ prec_p @ diff - d
                  + torch.logdet(cov_p) - torch.logdet(cov_q))


def _mc_numpy_error(f, m):
    def kl_monte_carlo(x, log_q, log_p):
        terms = log_q(x) - log_p(x)
        error = np.std(terms.numpy(), ddof=1) / math.sqrt(len(terms))
        return terms.mean(), torch.tensor(error, dtype=terms.dtype)
    return kl_monte_carlo


def _gradient_marks_chol(f, m):
    def kl_gradient_pathwise(eps, mean_q, chol_q, mean_p, cov_p):
        chol_q.requires_grad_(True)  # "to be safe": the caller's tensor now tracks gradients
        return f(eps, mean_q, chol_q.detach(), mean_p, cov_p)
    return kl_gradient_pathwise


def _drift_fixed_step(f, m):
    return lambda x0, mean_p, cov_p, step, n_steps: f(x0, mean_p, cov_p, 0.05, n_steps)


MISTAKES = [
    Mistake("1.1", "gaussian_score", "flipped sign", lambda f, m: _negated(f)),
    Mistake("1.1", "gaussian_score", "covariance instead of its inverse", _score_with_cov),
    Mistake("1.1", "gaussian_score", "mean not subtracted", _score_without_mean),
    Mistake("1.1", "gaussian_score", "only the diagonal of the covariance", _score_diagonal),
    Mistake("1.1", "gaussian_score", "always returns float64 (solves in double and never casts back)",
            lambda f, m: lambda x, mean, cov: f(x.double(), mean.double(), cov.double())),
    Mistake("1.1", "gaussian_score", "centres x in place (x -= mean modifies the caller's tensor)",
            lambda f, m: _score_centred_in_place),
    Mistake("1.2", "gaussian_kl", "arguments swapped: KL(p || q)", _kl_swapped),
    Mistake("1.2", "gaussian_kl", "missing factor 1/2", _kl_without_half),
    Mistake("1.2", "gaussian_kl", "log-det ratio with the wrong sign", _kl_flipped_logdet),
    Mistake("1.2", "gaussian_kl", "trace of Sigma_p Sigma_q instead of Sigma_p^-1 Sigma_q", _kl_trace_with_cov_p),
    Mistake("1.3", "kl_monte_carlo", "log p - log q instead of log q - log p", _mc_flipped),
    Mistake("1.3", "kl_monte_carlo", "standard deviation instead of standard error", _mc_std_not_stderr),
    Mistake("1.3", "kl_monte_carlo", "standard error divided by N", _mc_stderr_over_n),
    Mistake("1.3", "kl_monte_carlo", "sum instead of mean", _mc_sum),
    Mistake("1.3", "kl_monte_carlo", "biased variance in the standard error", _mc_biased_std),
    Mistake("1.4", "score_difference", "flipped sign: s_q - s_p", lambda f, m: _negated(f)),
    Mistake("1.4", "score_difference", "attraction only: s_p without - s_q", _attraction_only),
    Mistake("1.4", "score_difference", "halved field", _difference_halved),
    Mistake("1.4", "score_difference", "q's covariance replaced by p's", _difference_uses_p_cov_twice),
    Mistake("1.5", "kl_gradient_pathwise", "ascent direction: V instead of -V", _gradient_ascent),
    Mistake("1.5", "kl_gradient_pathwise", "grad_L transposed", _gradient_transposed),
    Mistake("1.5", "kl_gradient_pathwise", "outer products summed, not averaged", _gradient_summed),
    Mistake("1.5", "kl_gradient_pathwise", "the model's own score s_q left out", _gradient_without_own_score),
    Mistake("1.6", "drift_particles", "attraction only (no -s_q)", lambda f, m: _drift_loop(m, repulsion=False)),
    Mistake("1.6", "drift_particles", "q fitted once, never refitted", lambda f, m: _drift_loop(m, refit=False)),
    Mistake("1.6", "drift_particles", "covariance divided by N - 1", lambda f, m: _drift_loop(m, ddof=1)),
    Mistake("1.6", "drift_particles", "off by one: recorded after each move, x0 missing", _drift_records_after_moving),
    Mistake("1.1", "gaussian_score", "through numpy (np.linalg.solve)", lambda f, m: _score_numpy),
    Mistake("1.2", "gaussian_kl", "an identity made on the CPU", lambda f, m: _kl_identity_on_cpu),
    Mistake("1.3", "kl_monte_carlo", "the standard error through numpy", _mc_numpy_error),
    Mistake("1.5", "kl_gradient_pathwise", "sets requires_grad on the caller's L", _gradient_marks_chol),
    Mistake("1.6", "drift_particles", "step size fixed at 0.05", _drift_fixed_step),
]
