"""Graded checks of lesson 01: Gaussian scores, KL divergences, the score difference and particles moved along it.

drifting_min has no Gaussian functions, so every reference here is a float64 closed form or autograd of
``torch.distributions.MultivariateNormal``, computed inside the check.
"""

from __future__ import annotations

import math

import torch
from torch.distributions import MultivariateNormal, kl_divergence

from course import (
    call_unchanged,
    check_close,
    check_dtype,
    check_portable,
    check_tensor,
    check_true,
    exercise,
    generator,
    randn,
)

F64 = torch.float64


def _spd(gen: torch.Generator, dim: int) -> torch.Tensor:
    """A random symmetric positive definite matrix with clear off-diagonal terms."""
    a = randn(gen, dim, dim)
    return a @ a.T / dim + 0.3 * torch.eye(dim, dtype=F64)


def _gaussian(gen: torch.Generator, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    return randn(gen, dim), _spd(gen, dim)


def _kl_reference(mean_q, cov_q, mean_p, cov_p) -> torch.Tensor:
    return kl_divergence(MultivariateNormal(mean_q, cov_q), MultivariateNormal(mean_p, cov_p))


def _autograd_score(x: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """grad_x log N(x; mean, cov) by autograd, in float64."""
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(MultivariateNormal(mean, cov).log_prob(x).sum(), x)
    return grad


def _whitened_noise(gen: torch.Generator, n: int, dim: int) -> torch.Tensor:
    """Noise whose sample mean is exactly 0 and whose sample second moment (1/N) sum eps eps^T is exactly I."""
    eps = randn(gen, n, dim)
    eps = eps - eps.mean(dim=0)
    chol = torch.linalg.cholesky(eps.T @ eps / n)
    return torch.linalg.solve_triangular(chol, eps.T, upper=False).T


def _fitted(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and maximum-likelihood covariance (divide by N) of the rows of x."""
    mean = x.mean(dim=0)
    centred = x - mean
    return mean, centred.T @ centred / x.shape[0]


# ---------------------------------------------------------------------------------------------- 1.1


@exercise("1.1", "gaussian_score")
def test_ex1_1_matches_autograd(ex):
    gen = generator(11)
    mean, cov = _gaussian(gen, 3)
    x = randn(gen, 7, 3, scale=2.0)
    got = call_unchanged(ex.gaussian_score, x, mean, cov)
    check_tensor(got, (7, 3), name="gaussian_score(x, mean, cov)")
    check_close(
        got,
        _autograd_score(x, mean, cov),
        prop="the score equals the autograd gradient of MultivariateNormal(mean, cov).log_prob(x) with respect to x",
        rtol=1e-8,
        hint="s(x) = -Sigma^{-1} (x - mu): the inverse covariance (not Sigma itself, not only its diagonal), "
        "applied to x minus the mean, with a minus sign",
    )


@exercise("1.1", "gaussian_score")
def test_ex1_1_zero_at_the_mean(ex):
    gen = generator(12)
    mean, cov = _gaussian(gen, 4)
    got = ex.gaussian_score(mean.repeat(5, 1), mean, cov)
    check_tensor(got, (5, 4), name="gaussian_score(mean, mean, cov)")
    check_close(
        got,
        torch.zeros(5, 4, dtype=F64),
        prop="the score is zero at the mean (the density's maximum)",
        atol=1e-10,
        hint="s(mu) = -Sigma^{-1} (mu - mu) = 0: x must enter only through x - mu",
    )


@exercise("1.1", "gaussian_score")
def test_ex1_1_points_towards_the_mean(ex):
    gen = generator(13)
    mean, cov = _gaussian(gen, 3)
    x = mean + randn(gen, 50, 3, scale=3.0)
    got = ex.gaussian_score(x, mean, cov)
    check_tensor(got, (50, 3), name="gaussian_score(x, mean, cov)")
    # (x - mu)^T s(x) = -(x - mu)^T Sigma^{-1} (x - mu) < 0: moving along the score goes uphill, towards the mean.
    inner = ((x - mean) * got.double()).sum(dim=1)
    check_true(
        bool((inner < 0).all()),
        "the score points towards the mean: (x - mu) . s(x) < 0 for every x away from the mean",
        f"{int((inner >= 0).sum())} of 50 points have (x - mu) . s(x) >= 0",
        hint="the score is the gradient of log p, which grows towards the mean: check the sign",
    )


@exercise("1.1", "gaussian_score")
def test_ex1_1_translation_and_affine(ex):
    gen = generator(14)
    mean, cov = _gaussian(gen, 3)
    x, x2 = randn(gen, 6, 3), randn(gen, 6, 3)
    shift = randn(gen, 3, scale=5.0)
    got = ex.gaussian_score(x, mean, cov)
    check_tensor(got, (6, 3), name="gaussian_score(x, mean, cov)")
    check_close(
        ex.gaussian_score(x + shift, mean + shift, cov),
        got,
        prop="moving the points and the mean together leaves the score unchanged",
        rtol=1e-8,
        atol=1e-10,
        hint="the score depends on x only through x - mu",
    )
    a = 0.3
    check_close(
        ex.gaussian_score(a * x + (1 - a) * x2, mean, cov),
        a * got + (1 - a) * ex.gaussian_score(x2, mean, cov),
        prop="the Gaussian score is affine in x: s(a x + (1 - a) x') = a s(x) + (1 - a) s(x')",
        rtol=1e-8,
        atol=1e-10,
        hint="nothing in -Sigma^{-1} (x - mu) is squared or normalised per point",
    )


@exercise("1.1", "gaussian_score")
def test_ex1_1_float32_inputs_keep_dtype_and_are_unchanged(ex):
    gen = generator(15)
    mean, cov = _gaussian(gen, 3)
    x = randn(gen, 8, 3, scale=2.0)
    x32, mean32, cov32 = x.float(), mean.float(), cov.float()
    got = call_unchanged(ex.gaussian_score, x32, mean32, cov32)
    check_dtype(got, torch.float32, name="gaussian_score of float32 inputs",
                hint="the docstring promises the dtype of x: no .double() or dtype=torch.float64 inside")
    check_tensor(got, (8, 3), name="gaussian_score of float32 inputs")
    # Float32 keeps about seven digits and the solve amplifies rounding by the condition number of Sigma
    # (below 100 here): 1e-4 relative is ten times looser than what a float32 solve achieves.
    check_close(got, _autograd_score(x32.double(), mean32.double(), cov32.double()), rtol=1e-4, atol=1e-4,
                prop="float32 inputs give the float64 score to float32 accuracy",
                hint="if the float64 checks pass, look for a step that loses precision (an explicit inverse of a "
                "badly conditioned Sigma, a cast to half)")


# ---------------------------------------------------------------------------------------------- 1.2


@exercise("1.2", "gaussian_kl")
def test_ex1_2_matches_closed_form(ex):
    gen = generator(21)
    for dim in (1, 2, 4):
        mean_q, cov_q = _gaussian(gen, dim)
        mean_p, cov_p = _gaussian(gen, dim)
        got = ex.gaussian_kl(mean_q, cov_q, mean_p, cov_p)
        check_tensor(got, (), name=f"gaussian_kl(...) in D = {dim}", hint="return a 0-dimensional tensor")
        check_close(
            got,
            _kl_reference(mean_q, cov_q, mean_p, cov_p),
            prop=f"KL(q || p) equals torch.distributions.kl_divergence in float64 (D = {dim})",
            rtol=1e-8,
            hint="1/2 [tr(Sigma_p^{-1} Sigma_q) + Mahalanobis(mu_p - mu_q) under Sigma_p - D + log det Sigma_p - "
            "log det Sigma_q]; the inverse is p's, the expectation is over q",
        )


@exercise("1.2", "gaussian_kl")
def test_ex1_2_zero_iff_equal_and_nonnegative(ex):
    gen = generator(22)
    mean, cov = _gaussian(gen, 3)
    same = ex.gaussian_kl(mean, cov, mean, cov)
    check_tensor(same, (), name="gaussian_kl(q, q)")
    check_close(same, torch.tensor(0.0, dtype=F64), prop="KL(q || q) = 0", atol=1e-10,
                hint="the trace term gives D, which the -D cancels; the log-det terms cancel")
    values = []
    for _ in range(20):
        values.append(float(ex.gaussian_kl(*_gaussian(gen, 3), *_gaussian(gen, 3))))
    check_true(
        min(values) > 0,
        "KL(q || p) > 0 whenever q != p",
        f"smallest value over 20 random pairs: {min(values):.4g}",
        hint="a negative KL usually means a flipped log-det ratio or a missing -D",
    )


@exercise("1.2", "gaussian_kl")
def test_ex1_2_asymmetric(ex):
    gen = generator(23)
    mean_q, cov_q = torch.zeros(2, dtype=F64), 0.2 * torch.eye(2, dtype=F64)
    mean_p, cov_p = randn(gen, 2), _spd(gen, 2) + torch.eye(2, dtype=F64)
    forward = ex.gaussian_kl(mean_q, cov_q, mean_p, cov_p)
    backward = ex.gaussian_kl(mean_p, cov_p, mean_q, cov_q)
    check_tensor(forward, (), name="gaussian_kl(q, p)")
    check_close(
        torch.stack([forward, backward]),
        torch.stack([_kl_reference(mean_q, cov_q, mean_p, cov_p), _kl_reference(mean_p, cov_p, mean_q, cov_q)]),
        prop="KL is not symmetric: KL(narrow q || wide p) and KL(wide p || narrow q) are different numbers",
        rtol=1e-8,
        hint="the first pair of arguments is q, the distribution the expectation is taken over",
    )


@exercise("1.2", "gaussian_kl")
def test_ex1_2_affine_invariance(ex):
    gen = generator(24)
    mean_q, cov_q = _gaussian(gen, 3)
    mean_p, cov_p = _gaussian(gen, 3)
    a, b = randn(gen, 3, 3) + 2 * torch.eye(3, dtype=F64), randn(gen, 3)
    got = ex.gaussian_kl(mean_q, cov_q, mean_p, cov_p)
    check_tensor(got, (), name="gaussian_kl(q, p)")
    moved = ex.gaussian_kl(a @ mean_q + b, a @ cov_q @ a.T, a @ mean_p + b, a @ cov_p @ a.T)
    check_close(
        moved,
        got,
        prop="KL is unchanged when both distributions go through the same invertible map x -> A x + b",
        rtol=1e-7,
        hint="with Sigma_p^{-1} (not Sigma_p) in the trace and the Mahalanobis term, every A cancels",
    )


@exercise("1.2", "gaussian_kl")
def test_ex1_2_agrees_with_monte_carlo(ex):
    gen = generator(25)
    mean_q, cov_q = _gaussian(gen, 2)
    mean_p, cov_p = _gaussian(gen, 2)
    got = ex.gaussian_kl(mean_q, cov_q, mean_p, cov_p)
    check_tensor(got, (), name="gaussian_kl(q, p)")
    q, p = MultivariateNormal(mean_q, cov_q), MultivariateNormal(mean_p, cov_p)
    x = mean_q + randn(gen, 200_000, 2) @ torch.linalg.cholesky(cov_q).T
    terms = q.log_prob(x) - p.log_prob(x)
    estimate, stderr = terms.mean(), terms.std() / math.sqrt(x.shape[0])
    check_true(
        abs(float(got) - float(estimate)) < 5 * float(stderr),
        "the closed form agrees with a Monte Carlo estimate E_q[log q - log p] on 200,000 samples of q",
        f"closed form {float(got):.5f}, Monte Carlo {float(estimate):.5f} +- {float(stderr):.5f}",
        hint="compare term by term with the formula in the docstring",
    )


# ---------------------------------------------------------------------------------------------- 1.3


def _densities(gen: torch.Generator, dim: int):
    mean_q, cov_q = _gaussian(gen, dim)
    mean_p, cov_p = _gaussian(gen, dim)
    q, p = MultivariateNormal(mean_q, cov_q), MultivariateNormal(mean_p, cov_p)
    sampler = torch.linalg.cholesky(cov_q)
    return q, p, lambda n: mean_q + randn(gen, n, dim) @ sampler.T


@exercise("1.3", "kl_monte_carlo")
def test_ex1_3_matches_reference(ex):
    gen = generator(31)
    q, p, sample = _densities(gen, 3)
    x = sample(500)
    got = ex.kl_monte_carlo(x, q.log_prob, p.log_prob)
    check_true(isinstance(got, tuple) and len(got) == 2, "kl_monte_carlo returns a pair (estimate, standard_error)",
               f"got {type(got).__name__}")
    estimate, stderr = got
    check_tensor(estimate, (), name="the estimate")
    check_tensor(stderr, (), name="the standard error")
    terms = q.log_prob(x) - p.log_prob(x)
    check_close(estimate, terms.mean(), prop="the estimate is the mean over the samples of log q(x) - log p(x)",
                rtol=1e-10, hint="log q first, then log p, averaged (not summed) over the N samples")
    check_close(
        stderr,
        terms.std(correction=1) / math.sqrt(x.shape[0]),
        prop="the standard error is the unbiased standard deviation of the terms over sqrt(N)",
        rtol=1e-10,
        hint="std with 1/(N-1) inside, divided by sqrt(N) (the spread of a mean, not of one term)",
    )


@exercise("1.3", "kl_monte_carlo")
def test_ex1_3_within_standard_errors_of_closed_form(ex):
    gen = generator(32)
    q, p, sample = _densities(gen, 2)
    estimate, stderr = ex.kl_monte_carlo(sample(4000), q.log_prob, p.log_prob)
    exact = float(kl_divergence(q, p))
    check_true(
        abs(float(estimate) - exact) < 4 * float(stderr),
        "the estimate lies within 4 standard errors of the closed-form KL",
        f"closed form {exact:.5f}, estimate {float(estimate):.5f} +- {float(stderr):.5f}",
        hint="the estimate must agree with the closed form within its own standard error: the terms are "
               "log q(x) - log p(x) on samples of q (a sign or order slip, or too small a standard error, breaks it)",
    )


@exercise("1.3", "kl_monte_carlo")
def test_ex1_3_standard_error_shrinks_like_one_over_sqrt_n(ex):
    gen = generator(33)
    q, p, sample = _densities(gen, 2)
    _, small = ex.kl_monte_carlo(sample(2000), q.log_prob, p.log_prob)
    _, large = ex.kl_monte_carlo(sample(8000), q.log_prob, p.log_prob)
    ratio = float(large) / float(small)
    check_true(
        0.4 < ratio < 0.6,
        "four times as many samples halve the standard error",
        f"standard error with 2,000 samples {float(small):.5f}, with 8,000 samples {float(large):.5f} "
        f"(ratio {ratio:.3f}, expected about 0.5)",
        hint="divide the standard deviation by sqrt(N), not by N and not by 1",
    )


@exercise("1.3", "kl_monte_carlo")
def test_ex1_3_zero_when_q_is_p(ex):
    gen = generator(34)
    q, _, sample = _densities(gen, 3)
    estimate, stderr = ex.kl_monte_carlo(sample(100), q.log_prob, q.log_prob)
    check_close(torch.stack([estimate, stderr]), torch.zeros(2, dtype=F64),
                prop="when log_q and log_p are the same function, the estimate and its standard error are 0",
                atol=1e-12, hint="each term is log q(x) - log p(x)")


# ---------------------------------------------------------------------------------------------- 1.4


@exercise("1.4", "score_difference")
def test_ex1_4_minus_gradient_of_the_kl_integrand(ex):
    gen = generator(41)
    mean_q, cov_q = _gaussian(gen, 3)
    mean_p, cov_p = _gaussian(gen, 3)
    x = randn(gen, 9, 3, scale=2.0)
    got = ex.score_difference(x, mean_q, cov_q, mean_p, cov_p)
    check_tensor(got, (9, 3), name="score_difference(x, ...)")
    xg = x.clone().requires_grad_(True)
    integrand = MultivariateNormal(mean_q, cov_q).log_prob(xg) - MultivariateNormal(mean_p, cov_p).log_prob(xg)
    (grad,) = torch.autograd.grad(integrand.sum(), xg)
    check_close(
        got,
        -grad,
        prop="V = s_p - s_q equals minus the autograd gradient of log q(x) - log p(x) with respect to x",
        rtol=1e-8,
        hint="V is the target's score minus the model's score; each is -Sigma^{-1} (x - mu) with its own mean "
        "and covariance",
    )


@exercise("1.4", "score_difference")
def test_ex1_4_zero_when_q_is_p(ex):
    gen = generator(42)
    mean, cov = _gaussian(gen, 3)
    x = randn(gen, 20, 3, scale=3.0)
    got = ex.score_difference(x, mean, cov, mean, cov)
    check_tensor(got, (20, 3), name="score_difference(x, q, q)")
    check_close(got, torch.zeros(20, 3, dtype=F64), prop="V = 0 everywhere when q = p", atol=1e-10,
                hint="V = s_p - s_q vanishes when q = p only if both scores enter with equal weight and opposite "
                "signs")


@exercise("1.4", "score_difference")
def test_ex1_4_anti_symmetric(ex):
    gen = generator(43)
    mean_q, cov_q = _gaussian(gen, 2)
    mean_p, cov_p = _gaussian(gen, 2)
    x = randn(gen, 15, 2)
    got = ex.score_difference(x, mean_q, cov_q, mean_p, cov_p)
    check_tensor(got, (15, 2), name="score_difference(x, q, p)")
    check_close(
        ex.score_difference(x, mean_p, cov_p, mean_q, cov_q),
        -got,
        prop="anti-symmetry: swapping p and q negates the field, V_{q,p} = -V_{p,q}",
        rtol=1e-8,
        atol=1e-10,
        hint="the two scores must enter with opposite signs and the same scale",
    )


@exercise("1.4", "score_difference")
def test_ex1_4_average_is_minus_the_kl_gradient_in_the_mean(ex):
    gen = generator(44)
    mean_q, cov_q = _gaussian(gen, 3)
    mean_p, cov_p = _gaussian(gen, 3)
    # samples of q whose sample mean and covariance are exactly mu_q and Sigma_q
    x = mean_q + _whitened_noise(gen, 40, 3) @ torch.linalg.cholesky(cov_q).T
    got = ex.score_difference(x, mean_q, cov_q, mean_p, cov_p)
    check_tensor(got, (40, 3), name="score_difference(x, ...)")
    mu = mean_q.clone().requires_grad_(True)
    (grad_mean,) = torch.autograd.grad(_kl_reference(mu, cov_q, mean_p, cov_p), mu)
    check_close(
        -got.mean(dim=0),
        grad_mean,
        prop="shifting every sample of q by the same vector: E_q[-V] is the gradient of KL(q || p) "
             "with respect to mu_q",
        rtol=1e-8,
        atol=1e-10,
        hint="V = s_p - s_q at full scale (not halved, not doubled)",
    )


# ---------------------------------------------------------------------------------------------- 1.5


def _generator_problem(seed: int, dim: int = 3):
    gen = generator(seed)
    mean_q = randn(gen, dim)
    chol_q = randn(gen, dim, dim, scale=0.5) + torch.eye(dim, dtype=F64)  # a full (not triangular) L
    mean_p, cov_p = _gaussian(gen, dim)
    return gen, mean_q, chol_q, mean_p, cov_p


@exercise("1.5", "kl_gradient_pathwise")
def test_ex1_5_matches_gradient_of_the_closed_form(ex):
    gen, mean_q, chol_q, mean_p, cov_p = _generator_problem(51)
    eps = _whitened_noise(gen, 64, 3)
    got = ex.kl_gradient_pathwise(eps, mean_q, chol_q, mean_p, cov_p)
    check_true(isinstance(got, tuple) and len(got) == 2, "kl_gradient_pathwise returns a pair (grad_mu, grad_L)",
               f"got {type(got).__name__}")
    grad_mean, grad_chol = got
    check_tensor(grad_mean, (3,), name="grad_mu")
    check_tensor(grad_chol, (3, 3), name="grad_L")
    mu = mean_q.clone().requires_grad_(True)
    chol = chol_q.clone().requires_grad_(True)
    ref_mean, ref_chol = torch.autograd.grad(_kl_reference(mu, chol @ chol.T, mean_p, cov_p), (mu, chol))
    hint = ("g_i = s_q(x_i) - s_p(x_i) = -V(x_i) with x_i = mu + L eps_i; grad_mu is the mean of g_i and grad_L the "
            "mean of the outer products g_i eps_i^T (g first)")
    check_close(grad_mean, ref_mean, prop="on noise with exact zero mean and identity second moment, grad_mu equals "
                "the autograd gradient of the closed-form KL(q || p)", rtol=1e-8, atol=1e-10, hint=hint)
    check_close(grad_chol, ref_chol, prop="on noise with exact zero mean and identity second moment, grad_L equals "
                "the autograd gradient of the closed-form KL(q || p)", rtol=1e-8, atol=1e-10, hint=hint)


@exercise("1.5", "kl_gradient_pathwise")
def test_ex1_5_gradient_of_the_surrogate_with_q_frozen(ex):
    gen, mean_q, chol_q, mean_p, cov_p = _generator_problem(52)
    eps = randn(gen, 40, 3)  # plain noise: its moments are not exactly 0 and I
    grad_mean, grad_chol = ex.kl_gradient_pathwise(eps, mean_q, chol_q, mean_p, cov_p)
    check_tensor(grad_mean, (3,), name="grad_mu")
    check_tensor(grad_chol, (3, 3), name="grad_L")
    # The per-sample integrand log q(x) - log p(x) with q's own parameters frozen: only x = mu + L eps moves.
    frozen_q = MultivariateNormal(mean_q, chol_q @ chol_q.T)
    p = MultivariateNormal(mean_p, cov_p)
    mu = mean_q.clone().requires_grad_(True)
    chol = chol_q.clone().requires_grad_(True)
    x = mu + eps @ chol.T
    surrogate = (frozen_q.log_prob(x) - p.log_prob(x)).mean()
    ref_mean, ref_chol = torch.autograd.grad(surrogate, (mu, chol))
    check_close(
        torch.cat([grad_mean, grad_chol.flatten()]),
        torch.cat([ref_mean, ref_chol.flatten()]),
        prop="on any noise, the estimate is the autograd gradient of (1/N) sum_i [log q(x_i) - log p(x_i)] through "
        "x_i = mu + L eps_i with q's own parameters held fixed (the term E_q[d log q_theta / dtheta] dropped)",
        rtol=1e-8,
        atol=1e-10,
        hint="average over the N samples (divide by N), and build grad_L as g^T eps, not eps^T g",
    )


@exercise("1.5", "kl_gradient_pathwise")
def test_ex1_5_zero_when_q_is_p(ex):
    gen = generator(53)
    mean_p, cov_p = _gaussian(gen, 3)
    eps = randn(gen, 30, 3)
    grad_mean, grad_chol = ex.kl_gradient_pathwise(eps, mean_p, torch.linalg.cholesky(cov_p), mean_p, cov_p)
    check_tensor(grad_mean, (3,), name="grad_mu")
    check_close(
        torch.cat([grad_mean, grad_chol.flatten()]),
        torch.zeros(12, dtype=F64),
        prop="when the generator already produces p, every sample's gradient s_q - s_p is zero, whatever the noise",
        atol=1e-10,
        hint="each sample's gradient is s_q(x_i) - s_p(x_i), which is zero when q = p; a nonzero result "
        "means one of the two scores is missing or scaled",
    )


# ---------------------------------------------------------------------------------------------- 1.6


def _drift_reference(x0, mean_p, cov_p, step, n_steps):
    """Float64 reference of the particle drift, with every closed form written out here."""
    x, trajectory, kls = x0, [x0], []
    prec_p = torch.linalg.inv(cov_p)
    for t in range(n_steps + 1):
        mean_t, cov_t = _fitted(x)
        kls.append(_kl_reference(mean_t, cov_t, mean_p, cov_p))
        if t == n_steps:
            break
        v = -(x - mean_p) @ prec_p + (x - mean_t) @ torch.linalg.inv(cov_t)
        x = x + step * v
        trajectory.append(x)
    return torch.stack(trajectory), torch.stack(kls)


def _target_2d():
    return torch.tensor([1.0, 0.5], dtype=F64), torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=F64)


def _start(seed: int, n: int) -> torch.Tensor:
    gen = generator(seed)
    return torch.tensor([-3.0, 2.0], dtype=F64) + randn(gen, n, 2) @ torch.tensor([[0.3, 0.0], [0.1, 0.2]], dtype=F64)


def _check_drift_output(got, n_steps: int, n: int):
    check_true(isinstance(got, tuple) and len(got) == 2, "drift_particles returns a pair (trajectory, kl)",
               f"got {type(got).__name__}")
    trajectory, kl = got
    check_tensor(trajectory, (n_steps + 1, n, 2), name="trajectory", hint="include the starting particles: n_steps + 1",
                 finite_hint="the particles must stay finite: with a step of 0.05 the exact drift converges, so a "
                 "blow-up means the field is not s_p - s_q of q refitted at every step (check its sign and the "
                 "covariance, divided by N)")
    check_tensor(kl, (n_steps + 1,), name="kl", hint="one KL per set of particles, the start included")
    return trajectory, kl


@exercise("1.6", "drift_particles")
def test_ex1_6_matches_reference(ex):
    mean_p, cov_p = _target_2d()
    x0 = _start(61, 40)
    trajectory, kl = _check_drift_output(call_unchanged(ex.drift_particles, x0, mean_p, cov_p, 0.05, 30), 30, 40)
    ref_trajectory, ref_kl = _drift_reference(x0, mean_p, cov_p, 0.05, 30)
    check_close(trajectory, ref_trajectory, prop="the trajectory matches x <- x + step * (s_p - s_q), q refitted "
                "to the particles (mean, covariance divided by N) before every move", rtol=1e-7, atol=1e-9,
                hint="each move is x + step * (s_p - s_q) with q refitted to the current particles, and "
                "trajectory[0] = x0; compare the first entries to see which step goes wrong first")
    check_close(kl, ref_kl, prop="kl[t] is KL(N(mu_t, Sigma_t) || p) for the Gaussian fitted to trajectory[t]",
                rtol=1e-7, atol=1e-9, hint="KL of the fitted Gaussian (first) against p (second), start included")


@exercise("1.6", "drift_particles")
def test_ex1_6_kl_decreases_to_zero(ex):
    mean_p, cov_p = _target_2d()
    _, kl = _check_drift_output(ex.drift_particles(_start(62, 200), mean_p, cov_p, 0.05, 200), 200, 200)
    increases = int((kl[1:] > kl[:-1] + 1e-12).sum())
    check_true(increases == 0, "the KL never increases along the drift (small steps)",
               f"the KL went up at {increases} of 200 steps; kl[0] = {float(kl[0]):.4g}, kl[-1] = {float(kl[-1]):.4g}",
               hint="with a small step along s_p - s_q the KL of the fitted Gaussian decreases at every step; an "
               "increase means the particles move against that field or along a stale q")
    check_true(float(kl[-1]) < 1e-3 and float(kl[0]) > 10, "the KL goes from large to near 0",
               f"kl[0] = {float(kl[0]):.4g}, kl[-1] = {float(kl[-1]):.4g} after 200 steps of 0.05",
               hint="the fitted q must become p: a KL that stalls above 0 means the mean or the spread is not "
               "corrected (the repulsion -s_q of the refitted q sets the spread)")


@exercise("1.6", "drift_particles")
def test_ex1_6_particles_reach_the_target_moments(ex):
    mean_p, cov_p = _target_2d()
    trajectory, _ = _check_drift_output(ex.drift_particles(_start(63, 200), mean_p, cov_p, 0.05, 200), 200, 200)
    mean_end, cov_end = _fitted(trajectory[-1].double())
    check_close(mean_end, mean_p, prop="the particles' mean converges to p's mean", atol=1e-2,
                hint="the attraction -Sigma_p^{-1} (x - mu_p) moves the mean")
    check_close(cov_end, cov_p, prop="the particles' covariance (divide by N) converges to p's covariance",
                atol=1e-2, hint="the repulsion Sigma_q^{-1} (x - mu_q) spreads the particles; it must use the "
                "covariance refitted at every step")


# ---------------------------------------------------------------------------------------------- every exercise:
# devices, inputs that require grad, no side effects, fresh results, a batch of one, arguments varied


@exercise("1.1", "gaussian_score")
def test_ex1_1_devices_side_effects_one_point(ex):
    gen = generator(70)
    mean, cov = _gaussian(gen, 3)
    x = randn(gen, 1, 3)  # a batch of one point
    got = check_portable(ex.gaussian_score, x, mean, cov, name="gaussian_score")
    check_close(got, _autograd_score(x, mean, cov), rtol=1e-8,
                prop="one point whose inputs require grad: the score still matches autograd",
                hint="keep x's N x D shape for N = 1 (no squeeze)")


@exercise("1.2", "gaussian_kl")
def test_ex1_2_devices_side_effects(ex):
    gen = generator(71)
    (mean_q, cov_q), (mean_p, cov_p) = _gaussian(gen, 3), _gaussian(gen, 3)
    got = check_portable(ex.gaussian_kl, mean_q, cov_q, mean_p, cov_p, name="gaussian_kl")
    check_close(got, _kl_reference(mean_q, cov_q, mean_p, cov_p), rtol=1e-8,
                prop="inputs that require grad give the same KL")


@exercise("1.3", "kl_monte_carlo")
def test_ex1_3_devices_side_effects(ex):
    x = randn(72, 50, 2)

    def log_q(points):
        return -0.5 * points.square().sum(1)

    def log_p(points):
        return -0.5 * (points - 1.0).square().sum(1)

    estimate, error = check_portable(ex.kl_monte_carlo, x, log_q, log_p, name="kl_monte_carlo")
    terms = log_q(x) - log_p(x)
    check_close(estimate, terms.mean(), rtol=1e-10, prop="inputs that require grad: the same estimate")
    check_close(error, terms.std() / math.sqrt(50), rtol=1e-10,
                prop="inputs that require grad: the same standard error")


@exercise("1.4", "score_difference")
def test_ex1_4_devices_side_effects_one_point(ex):
    gen = generator(73)
    (mean_q, cov_q), (mean_p, cov_p) = _gaussian(gen, 2), _gaussian(gen, 2)
    x = randn(gen, 1, 2)
    got = check_portable(ex.score_difference, x, mean_q, cov_q, mean_p, cov_p, name="score_difference")
    expected = _autograd_score(x, mean_p, cov_p) - _autograd_score(x, mean_q, cov_q)
    check_close(got, expected, rtol=1e-8, prop="one point whose inputs require grad: V = s_p - s_q")


@exercise("1.5", "kl_gradient_pathwise")
def test_ex1_5_devices_side_effects(ex):
    gen, mean_q, chol_q, mean_p, cov_p = _generator_problem(74)
    eps = _whitened_noise(gen, 16, 3)
    check_portable(ex.kl_gradient_pathwise, eps, mean_q, chol_q, mean_p, cov_p, name="kl_gradient_pathwise")


@exercise("1.6", "drift_particles")
def test_ex1_6_step_and_steps_are_used_devices(ex):
    mean_p, cov_p = _target_2d()
    x0 = _start(75, 12)
    for step, n_steps in ((0.02, 4), (0.1, 3)):
        trajectory, kl = _check_drift_output(ex.drift_particles(x0, mean_p, cov_p, step, n_steps), n_steps, 12)
        ref_trajectory, ref_kl = _drift_reference(x0, mean_p, cov_p, step, n_steps)
        check_close(trajectory, ref_trajectory, rtol=1e-7, atol=1e-9,
                    prop=f"the step size is the argument: step {step}, {n_steps} moves",
                    hint="multiply the field by the step argument (no fixed step size)")
    check_portable(ex.drift_particles, x0, mean_p, cov_p, 0.05, 2, name="drift_particles")
