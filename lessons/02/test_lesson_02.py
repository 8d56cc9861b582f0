"""Graded checks of lesson 02: KDE makes scores sample-based.

`pytest lessons/02` grades your `exercises.py`; `pytest lessons/02 -k ex2_3` runs one exercise's checks.
Every value check uses float64 inputs drawn from a seeded generator and compares with drifting_min or with a
closed form / autograd computed here in float64.
"""

from __future__ import annotations

import functools
import math

import torch

import drifting_min as dm
from course import call_unchanged, check_close, check_portable, check_tensor, check_true, checks, draw, exercise

# Float32 checks compare with drifting_min in float64 on the same float32 inputs: float32 keeps about seven
# digits, so these tolerances are looser than float64's (1e-5 relative) by a factor of ten.
F32_RTOL, F32_ATOL = 1e-4, 1e-4


def float32_case(seed: int, *shapes):
    """Float32 inputs (seeded normal draws)."""
    return [t.float() for t in draw(seed, *shapes)]


check_float32 = functools.partial(checks.check_float32, rtol=F32_RTOL, atol=F32_ATOL)

def random_rotation(dim: int, seed: int) -> torch.Tensor:
    """A random orthogonal D x D matrix (the Q of a QR decomposition of a Gaussian matrix)."""
    (a,) = draw(seed, (dim, dim))
    q, r = torch.linalg.qr(a)
    return q * torch.sign(torch.diagonal(r))


# ----------------------------------------------------------------------------------------------- 2.1 distances


@exercise("2.1", "pairwise_distances")
def test_ex2_1_matches_reference(ex):
    x, y = draw(0, (7, 3), (5, 3))
    got = ex.pairwise_distances(x, y)
    check_tensor(got, (7, 5), name="pairwise_distances(x, y)", hint="one row per query x_i, one column per target y_j")
    check_close(got, dm.pairwise_distances(x, y), prop="d[i, j] = |x_i - y_j| (plain Euclidean distance)",
                hint="sum the squared differences over the D coordinates (the last axis), then take the square root")
    got_sq = ex.pairwise_distances(x, y, squared=True)
    check_tensor(got_sq, (7, 5), name="pairwise_distances(x, y, squared=True)")
    check_close(got_sq, dm.pairwise_distances(x, y, squared=True),
                prop="with squared=True, d[i, j] = |x_i - y_j|^2",
                hint="squared=True returns the sum of squared differences, with no square root")


@exercise("2.1", "pairwise_distances")
def test_ex2_1_squared_is_plain_squared(ex):
    x, y = draw(1, (6, 4), (9, 4), scale=2.0)
    plain = ex.pairwise_distances(x, y)
    squared = ex.pairwise_distances(x, y, squared=True)
    check_close(squared, plain**2, prop="squared=True gives the square of squared=False",
                hint="the `squared` flag must change the result: square root only when squared is False")


@exercise("2.1", "pairwise_distances")
def test_ex2_1_symmetric_with_zero_diagonal(ex):
    x, y = draw(2, (6, 3), (8, 3))
    d_xy = ex.pairwise_distances(x, y)
    d_yx = ex.pairwise_distances(y, x)
    check_tensor(d_yx, (8, 6), name="pairwise_distances(y, x)")
    check_close(d_yx, d_xy.T, prop="symmetry: d(y, x) is the transpose of d(x, y)",
                hint="the distance does not depend on which set is called the queries")
    d_xx = ex.pairwise_distances(x, x)
    check_close(torch.diagonal(d_xx), torch.zeros(6, dtype=torch.float64), atol=1e-6,
                prop="zero diagonal: |x_i - x_i| = 0", hint="each point is at distance zero from itself")


@exercise("2.1", "pairwise_distances")
def test_ex2_1_translation_and_rotation_invariant(ex):
    x, y = draw(3, (5, 3), (4, 3))
    rotation = random_rotation(3, seed=4)
    (shift,) = draw(5, (1, 3), scale=3.0)
    got = ex.pairwise_distances(x, y)
    moved = ex.pairwise_distances(x @ rotation.T + shift, y @ rotation.T + shift)
    check_close(moved, got, prop="invariance: rotating and translating both sets leaves the distances unchanged",
                hint="use a Euclidean norm of x_i - y_j: an L1 norm or per-coordinate terms are not rotation invariant")


@exercise("2.1", "pairwise_distances")
def test_ex2_1_float32_inputs_keep_dtype_and_are_unchanged(ex):
    x, y = float32_case(6, (6, 3), (5, 3))
    for squared in (False, True):
        got = call_unchanged(ex.pairwise_distances, x, y, squared)
        check_float32(got, dm.pairwise_distances(x.double(), y.double(), squared), (6, 5),
                      name=f"pairwise_distances of float32 inputs (squared={squared})",
                      prop=f"float32 inputs give float32 distances, equal to the float64 ones to float32 accuracy "
                      f"(squared={squared})")


# ---------------------------------------------------------------------------------------------- 2.2 log-density


@exercise("2.2", "kde_log_density")
def test_ex2_2_matches_reference(ex):
    x, data = draw(10, (8, 2), (13, 2))
    for tau in (0.3, 1.7):
        got = ex.kde_log_density(x, data, tau)
        check_tensor(got, (8,), name=f"kde_log_density(x, data, tau={tau})", hint="one log-density per query")
        check_close(got, dm.kde_log_density(x, data, tau),
                    prop=f"log p_tau(x) of the normalised Gaussian KDE (tau={tau})",
                    hint="logsumexp of -|x - y|^2 / (2 tau^2) over the data, minus log M, minus (D/2) log(2 pi tau^2)")


@exercise("2.2", "kde_log_density")
def test_ex2_2_finite_at_small_bandwidth(ex):
    # Queries far (in units of tau = 0.02) from every data point: exp(-d^2 / (2 tau^2)) is 0.0 in float64.
    (data,) = draw(11, (6, 2))
    x = torch.tensor([[3.0, 3.0], [-4.0, 1.0], [0.5, -5.0]], dtype=torch.float64)
    tau = 0.02
    got = ex.kde_log_density(x, data, tau)
    check_tensor(got, (3,), name="kde_log_density at tau = 0.02",
                 finite_hint="the log-density must be finite far from the data at a small bandwidth; -inf "
                 "usually means log(sum(exp(logits))) underflowed to log(0): torch.logsumexp subtracts the "
                 "largest logit first")
    check_close(got, dm.kde_log_density(x, data, tau), prop="log p_tau is right at tau = 0.02, far from the data",
                hint="the value is finite but differs from the reference: the same formula as at larger tau must "
                "hold here (logsumexp of -d^2 / (2 tau^2), minus log M, minus (D/2) log(2 pi tau^2))")


@exercise("2.2", "kde_log_density")
def test_ex2_2_integrates_to_one_in_1d(ex):
    data = torch.tensor([[-1.3], [-0.2], [0.1], [0.9], [2.4]], dtype=torch.float64)
    tau = 0.35
    grid = torch.linspace(-1.3 - 12 * tau, 2.4 + 12 * tau, 6001, dtype=torch.float64)[:, None]
    density = ex.kde_log_density(grid, data, tau).exp()
    total = torch.trapezoid(density, grid[:, 0])
    check_close(total, torch.tensor(1.0, dtype=torch.float64), rtol=1e-6,
                prop="normalisation: the KDE is a density, its integral over the line is 1",
                hint="subtract log M (a mean, not a sum, of kernels) and (D/2) log(2 pi tau^2) with tau squared")


@exercise("2.2", "kde_log_density")
def test_ex2_2_translation_invariant(ex):
    x, data = draw(12, (5, 3), (9, 3))
    (shift,) = draw(13, (1, 3), scale=4.0)
    tau = 0.8
    got = ex.kde_log_density(x, data, tau)
    moved = ex.kde_log_density(x + shift, data + shift, tau)
    check_close(moved, got, prop="invariance: translating the queries and the data together leaves log p_tau unchanged",
                hint="the KDE depends on x and y only through the differences x - y_j")


@exercise("2.2", "kde_log_density")
def test_ex2_2_float32_inputs_keep_dtype_and_are_unchanged(ex):
    x, data = float32_case(14, (5, 2), (9, 2))
    got = call_unchanged(ex.kde_log_density, x, data, 0.5)
    check_float32(got, dm.kde_log_density(x.double(), data.double(), 0.5), (5,),
                  name="kde_log_density of float32 inputs",
                  prop="float32 inputs give float32 log-densities, equal to the float64 ones to float32 accuracy")


# ------------------------------------------------------------------------------------------------- 2.3 score


@exercise("2.3", "kde_score")
def test_ex2_3_matches_reference(ex):
    x, data = draw(20, (9, 3), (12, 3))
    for tau in (0.4, 1.5):
        got = ex.kde_score(x, data, tau)
        check_tensor(got, (9, 3), name=f"kde_score(x, data, tau={tau})", hint="one score vector per query")
        check_close(got, dm.kde_score(x, data, tau), prop=f"score = sum_j k~(x, y_j) (y_j - x) / tau^2 (tau={tau})",
                    hint="softmax over the data (dim=1), displacements y_j - x (towards the data), divided by tau^2")


@exercise("2.3", "kde_score")
def test_ex2_3_agrees_with_autograd(ex):
    x, data = draw(21, (6, 2), (10, 2), scale=1.5)
    tau = 0.7
    got = ex.kde_score(x, data, tau)
    xg = x.clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(dm.kde_log_density(xg, data, tau).sum(), xg)
    check_close(got, expected, prop="the score is the gradient of log p_tau: it agrees with autograd",
                hint="a ratio near tau^2 means a missing 1 / tau^2; a ratio of -1 means the displacement is x - y_j")


@exercise("2.3", "kde_score")
def test_ex2_3_single_point_and_weights_sum_to_one(ex):
    # One data point: p_tau is one Gaussian, whose score is (y - x) / tau^2 exactly.
    x, y = draw(22, (7, 2), (1, 2))
    tau = 0.5
    got = ex.kde_score(x, y, tau)
    check_close(got, (y - x) / tau**2, prop="one data point: the score is (y - x) / tau^2",
                hint="the softmax over a single data point is 1; normalise over the data (dim=1), not the queries")
    # Translating the query and the data by c: sum_j w_j (y_j + c) - (x + c) equals sum_j w_j y_j - x only because
    # the weights of each query sum to one.
    x1, data = draw(23, (1, 2), (8, 2))
    (shift,) = draw(24, (1, 2), scale=3.0)
    s = ex.kde_score(x1, data, tau)
    s_moved = ex.kde_score(x1 + shift, data + shift, tau)
    check_close(s_moved, s,
                prop="translating x and the data together keeps the score (the weights of a query sum to one)",
                hint="normalise the kernel weights over the data points for each query (softmax over dim=1)")


@exercise("2.3", "kde_score")
def test_ex2_3_finite_at_small_bandwidth(ex):
    (data,) = draw(25, (6, 2))
    x = torch.tensor([[3.0, 3.0], [-4.0, 1.0], [0.5, -5.0]], dtype=torch.float64)
    tau = 0.02
    got = ex.kde_score(x, data, tau)
    check_tensor(got, (3, 2), name="kde_score at tau = 0.02",
                 finite_hint="the score must be finite far from the data at a small bandwidth; NaN usually means "
                 "exp(logits) / sum(exp(logits)) became 0 / 0: torch.softmax subtracts the largest logit first")
    check_close(got, dm.kde_score(x, data, tau), prop="the score is right at tau = 0.02, far from the data",
                hint="the value is finite but differs from the reference: the same formula as at larger tau must "
                "hold here (softmax over the data, displacements y_j - x, divided by tau^2)")


@exercise("2.3", "kde_score")
def test_ex2_3_float32_inputs_keep_dtype_and_are_unchanged(ex):
    x, data = float32_case(26, (6, 2), (8, 2))
    for tau in (0.5, 0.05):
        got = call_unchanged(ex.kde_score, x, data, tau)
        check_float32(got, dm.kde_score(x.double(), data.double(), tau), (6, 2),
                      name=f"kde_score of float32 inputs (tau = {tau})",
                      prop=f"float32 inputs give float32 scores, equal to the float64 ones to float32 accuracy "
                      f"(tau = {tau})", hint="a NaN at the smaller tau usually means an exp / sum that underflowed")


# ---------------------------------------------------------------------------------------------- 2.4 Tweedie


def explicit_posterior_mean(x: torch.Tensor, data: torch.Tensor, tau: float) -> torch.Tensor:
    """E[y | x] from Bayes' rule written out in float64: P(j | x) = N(x; y_j, tau^2 I) / sum_l N(x; y_l, tau^2 I)."""
    out = torch.empty_like(x)
    for i in range(x.shape[0]):
        log_lik = torch.tensor([-float(((x[i] - y) ** 2).sum()) / (2 * tau**2) for y in data], dtype=torch.float64)
        post = torch.exp(log_lik - log_lik.max())
        post = post / post.sum()
        out[i] = (post[:, None] * data).sum(0)
    return out


@exercise("2.4", "tweedie_denoise")
def test_ex2_4_matches_reference_and_posterior(ex):
    x, data = draw(30, (8, 2), (11, 2), scale=1.2)
    for tau in (0.3, 1.1):
        got = ex.tweedie_denoise(x, data, tau)
        check_tensor(got, (8, 2), name=f"tweedie_denoise(x, data, tau={tau})", hint="one denoised point per query")
        check_close(got, dm.tweedie_denoise(x, data, tau), prop=f"E[y | x] = x + tau^2 * score (tau={tau})",
                    hint="x + tau^2 * score, with tau squared; or the posterior-weighted mean of the data")
        check_close(got, explicit_posterior_mean(x, data, tau),
                    prop=f"E[y | x] is the mean of the data under the posterior P(j | x) (tau={tau})",
                    hint="P(j | x) is the softmax over the data (dim=1) of -|x - y_j|^2 / (2 tau^2)")


@exercise("2.4", "tweedie_denoise")
def test_ex2_4_tweedie_formula_with_autograd(ex):
    x, data = draw(31, (6, 3), (9, 3))
    tau = 0.6
    got = ex.tweedie_denoise(x, data, tau)
    xg = x.clone().requires_grad_(True)
    (score,) = torch.autograd.grad(dm.kde_log_density(xg, data, tau).sum(), xg)
    check_close(got, x + tau**2 * score, prop="Tweedie's formula: E[y | x] = x + tau^2 grad log p_tau(x)",
                hint="the step from x is tau^2 (not tau) times the score, and it is added to x")


@exercise("2.4", "tweedie_denoise")
def test_ex2_4_between_min_and_max_in_1d(ex):
    data = torch.tensor([[-2.0], [-0.5], [0.3], [1.0], [2.5]], dtype=torch.float64)
    x = torch.linspace(-6.0, 6.0, 41, dtype=torch.float64)[:, None]
    for tau in (0.2, 1.0, 3.0):
        got = ex.tweedie_denoise(x, data, tau)
        check_tensor(got, (41, 1), name=f"tweedie_denoise on a 1-D grid (tau={tau})")
        inside = bool(((got >= data.min() - 1e-9) & (got <= data.max() + 1e-9)).all())
        check_true(inside,
                   prop=f"convex hull: every E[y | x] lies between the smallest and largest data point (tau={tau})",
                   detail=f"data in [{float(data.min())}, {float(data.max())}], got values in "
                          f"[{float(got.min()):.4g}, {float(got.max()):.4g}]",
                   hint="the posterior mean is a weighted mean of the data with weights that are >= 0 and sum to one")


@exercise("2.4", "tweedie_denoise")
def test_ex2_4_limits_nearest_point_and_mean(ex):
    data = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0], [-1.5, -2.0]], dtype=torch.float64)
    x = torch.tensor([[0.3, 0.4], [1.6, -0.2], [-0.4, 2.1], [-1.0, -1.2]], dtype=torch.float64)
    small = ex.tweedie_denoise(x, data, 0.01)
    nearest = data[dm.pairwise_distances(x, data).argmin(dim=1)]
    check_close(small, nearest, atol=1e-9, prop="limit tau -> 0: E[y | x] is the nearest data point",
                hint="as tau shrinks the posterior puts all its weight on the closest y_j; check the scale tau^2")
    large = ex.tweedie_denoise(x, data, 1e4)
    check_close(large, data.mean(0).expand_as(x), atol=1e-5,
                prop="limit tau -> infinity: E[y | x] is the mean of the data",
                hint="when tau is large the posterior is uniform over the data, so E[y | x] is their average")
    check_true(math.isfinite(float(small.sum())) and math.isfinite(float(large.sum())), prop="finite in both limits")


@exercise("2.4", "tweedie_denoise")
def test_ex2_4_float32_inputs_keep_dtype_and_are_unchanged(ex):
    x, data = float32_case(32, (6, 2), (8, 2))
    for tau in (0.5, 0.05):
        got = call_unchanged(ex.tweedie_denoise, x, data, tau)
        check_float32(got, dm.tweedie_denoise(x.double(), data.double(), tau), (6, 2),
                      name=f"tweedie_denoise of float32 inputs (tau = {tau})",
                      prop=f"float32 inputs give float32 denoised points, equal to the float64 ones to float32 "
                      f"accuracy (tau = {tau})",
                      hint="a NaN at the smaller tau usually means an exp / sum that underflowed")


# ---------------------------------------------------------------------------------------------- every exercise:
# devices, inputs that require grad, no side effects, fresh results, far from the origin, a batch of one, tau varied


def _far_case(seed: int):
    """Queries and data with unit spread, and the same shifted by 1e6 (float64 keeps about 1e-10 of them)."""
    x, data = draw(seed, (4, 3), (6, 3))
    return x, data, x + 1e6, data + 1e6


FAR_HINT = ("work with the differences x_i - y_j: |x|^2 + |y|^2 - 2 x.y subtracts numbers near 1e12 and keeps no digit "
            "of a distance near 1 (a float32 step does the same)")


@exercise("2.1", "pairwise_distances")
def test_ex2_1_devices_far_from_origin_extreme_scales(ex):
    x, y, x_far, y_far = _far_case(80)
    for squared in (False, True):
        check_portable(ex.pairwise_distances, x, y, squared, name=f"pairwise_distances(squared={squared})")
        expected = dm.pairwise_distances(x, y, squared=squared)
        check_close(ex.pairwise_distances(x_far, y_far, squared), expected, rtol=1e-7,
                    prop=f"float64 points far from the origin (offset 1e6), squared={squared}: float64 accuracy",
                    hint=FAR_HINT)
    for c in (1e-8, 1e8):
        got = ex.pairwise_distances((c * x).float(), (c * y).float())
        # float32: rtol 1e-5 covers float32 rounding of a 3-term sum and its root
        check_close(got, c * dm.pairwise_distances(x, y), rtol=1e-5,
                    prop=f"float32 points scaled by {c:g}: distances scale with them",
                    hint="nothing added to the squares before the root (an epsilon is large next to 1e-16)")
    one = ex.pairwise_distances(x[:1], y[:1])
    check_tensor(one, (1, 1), name="pairwise_distances of one query and one target", hint="keep the N x M shape")


@exercise("2.2", "kde_log_density")
def test_ex2_2_devices_far_from_origin_tau_varied(ex):
    x, data, x_far, data_far = _far_case(81)
    check_portable(ex.kde_log_density, x, data, 0.7, name="kde_log_density", grad_args=(0, 1))
    for tau in (0.3, 2.0):
        expected = dm.kde_log_density(x, data, tau)
        check_close(ex.kde_log_density(x_far, data_far, tau), expected, rtol=1e-7,
                    prop=f"float64 points far from the origin (offset 1e6), tau {tau}: float64 accuracy", hint=FAR_HINT)
    one = ex.kde_log_density(x[:1], data[:1], 0.5)
    check_close(one, dm.kde_log_density(x[:1], data[:1], 0.5), rtol=1e-10,
                prop="one query, one data point: log N(x; y, tau^2 I)", hint="log M = 0 for M = 1; keep the (N,) shape")


@exercise("2.3", "kde_score")
def test_ex2_3_devices_far_from_origin_tau_varied(ex):
    x, data, x_far, data_far = _far_case(82)
    check_portable(ex.kde_score, x, data, 0.7, name="kde_score", grad_args=(0, 1))
    for tau in (0.3, 2.0):
        check_close(ex.kde_score(x_far, data_far, tau), dm.kde_score(x, data, tau), rtol=1e-6, atol=1e-8,
                    prop=f"float64 points far from the origin (offset 1e6), tau {tau}: the score keeps its digits",
                    hint=FAR_HINT + "; the weighted mean minus x: sum_j w_j (y_j - x)")
    one = ex.kde_score(x[:1], data[:1], 0.5)
    check_close(one, (data[:1] - x[:1]) / 0.25, rtol=1e-10, prop="one data point: the score is (y - x) / tau^2",
                hint="keep the N x D shape")


@exercise("2.4", "tweedie_denoise")
def test_ex2_4_devices_far_from_origin_tau_varied(ex):
    x, data, x_far, data_far = _far_case(83)
    check_portable(ex.tweedie_denoise, x, data, 0.7, name="tweedie_denoise", grad_args=(0, 1))
    for tau in (0.3, 2.0):
        check_close(ex.tweedie_denoise(x_far, data_far, tau) - 1e6, dm.tweedie_denoise(x, data, tau), rtol=1e-6,
                    atol=1e-8, prop=f"float64 points far from the origin (offset 1e6), tau {tau}: the posterior mean "
                    "moves with them", hint=FAR_HINT)
    one = ex.tweedie_denoise(x[:1], data[:1], 0.5)
    check_close(one, data[:1], rtol=1e-12, prop="one data point: the posterior mean is that point",
                hint="keep the N x D shape")
