"""Graded checks of lesson 03: mean shift and the drift field.

Run them with `pytest lessons/03` (your exercises) or `pytest lessons/03 --solutions` (the worked answers);
one exercise alone with `pytest lessons/03 -k ex3_1`. Every random draw is seeded; values are compared in
float64 with drifting_min, with autograd, or with a closed form.
"""

from __future__ import annotations

import functools
import math

import torch

import drifting_min as dm
from course import (
    call_unchanged,
    check_close,
    check_no_graph,
    check_portable,
    check_tensor,
    check_true,
    checks,
    draw,
    exercise,
    generator,
    randn,
)

KERNELS = ("gaussian", "laplace")

# Float32 checks compare with drifting_min in float64 on the same (float32) inputs. Float32 keeps about seven
# digits; at tau = 0.02 a logit of about -1e4 carries an absolute error near 1e-3, so the weights, and the
# fields, agree to about 1e-3 relative: the tolerance below is looser than float64's by that much.
F32_RTOL, F32_ATOL = 2e-3, 2e-3
SMALL_TAU = 0.02


def far_float32(seed: int, *shapes, offset: float = 3.0):
    """Float32 point sets of the given shapes: the first near the origin, the others about ``offset`` away
    (each centred at a different angle). At tau = 0.02 every exp(logit) between the first set and the others
    is 0 in float32 (Gaussian logits near -1e4, Laplace near -150): exp / sum gives 0 / 0 there."""
    sets = draw(seed, *shapes, scale=0.3)
    out = [sets[0]]
    for k, points in enumerate(sets[1:]):
        angle = torch.tensor(2.0 * math.pi * k / max(1, len(sets) - 1) + 0.3, dtype=torch.float64)
        out.append(points + offset * torch.stack([angle.cos(), angle.sin()]))
    return [p.float() for p in out]


check_float32 = functools.partial(checks.check_float32, rtol=F32_RTOL, atol=F32_ATOL)

SOFTMAX_HINT = ("the property that broke is stability in float32 at a small temperature; a NaN here usually "
                "means exp(logits) / sum(exp(logits)) underflowed to 0 / 0: torch.softmax (or log_softmax) "
                "subtracts each row's largest logit first")


def gaussian_kde_score_autograd(x: torch.Tensor, data: torch.Tensor, tau: float) -> torch.Tensor:
    """grad_x log p_tau(x) for the Gaussian KDE, by autograd on an explicit log-density (float64)."""
    x = x.detach().clone().requires_grad_(True)
    sq = (x[:, None, :] - data[None, :, :]).square().sum(-1)
    log_p = torch.logsumexp(-sq / (2 * tau**2), dim=1) - math.log(data.shape[0])
    (grad,) = torch.autograd.grad(log_p.sum(), x)
    return grad


def check_field_float32(field, seed: int, n: int, m: int, k: int) -> None:
    """``field(x, y_pos, y_neg, tau, kernel)`` on float32 sets 3 apart, at tau = 0.5 and 0.02, both kernels:
    float32 kept, finite, equal to drifting_min's float64 V, and the inputs left unchanged."""
    x, y_pos, y_neg = far_float32(seed, (n, 2), (m, 2), (k, 2))
    for kernel in KERNELS:
        for tau in (0.5, SMALL_TAU):
            got = call_unchanged(field, x, y_pos, y_neg, tau, kernel)
            check_float32(got, dm.drift_field(x.double(), y_pos.double(), y_neg.double(), tau, kernel), (n, 2),
                          name=f"{field.__name__} of float32 inputs ({kernel}, tau = {tau})",
                          prop=f"float32 inputs: dtype kept, finite, and the float64 value to float32 accuracy "
                          f"({kernel}, tau = {tau}, both sets 3 away)", hint=SOFTMAX_HINT)


# ------------------------------------------------------------------------------------------------ 3.1 mean_shift


@exercise("3.1", "mean_shift")
def test_ex3_1_matches_reference(ex):
    x, y = draw(0, (7, 3), (11, 3))
    for kernel, tau in (("gaussian", 0.8), ("laplace", 0.5)):
        got = ex.mean_shift(x, y, tau, kernel)
        check_tensor(got, (7, 3), name=f"mean_shift(x, targets, tau, {kernel!r})")
        check_close(
            got,
            dm.mean_shift(x, y, tau, kernel),
            prop=f"V+ is the kernel-weighted mean of (y_j - x) ({kernel} kernel)",
            hint="weights = softmax over the targets (dim=1) of the logits: -d^2 / (2 tau^2) (Gaussian), "
            "-d / tau with the plain distance d (Laplace); then subtract x",
        )


@exercise("3.1", "mean_shift")
def test_ex3_1_gaussian_is_tau_squared_times_kde_score(ex):
    x, y = draw(1, (6, 2), (9, 2))
    tau = 0.6
    got = ex.mean_shift(x, y, tau, "gaussian")
    check_tensor(got, (6, 2), name="mean_shift(x, targets, tau)")
    check_close(
        got,
        tau**2 * gaussian_kde_score_autograd(x, y, tau),
        prop="for the Gaussian kernel V+ = tau^2 grad log p_tau (the KDE score, by autograd)",
        hint="the logits are -|x - y|^2 / (2 tau^2): tau squared, and the factor 2",
    )


@exercise("3.1", "mean_shift")
def test_ex3_1_translation_equivariance_and_one_target(ex):
    x, y, c = draw(2, (5, 3), (8, 3), (1, 3))
    for kernel in KERNELS:
        moved = ex.mean_shift(x + 3 * c, y + 3 * c, 0.7, kernel)
        check_tensor(moved, (5, 3), name="mean_shift(x + c, targets + c, tau)")
        check_close(
            moved,
            ex.mean_shift(x, y, 0.7, kernel),
            prop=f"translation equivariance: shifting queries and targets together leaves V+ unchanged ({kernel})",
            hint="V+ is a displacement, sum_j k~_j (y_j - x), so a common shift must cancel; a result that "
            "moves with the shift is a position (the weighted mean without '- x')",
        )
    single = ex.mean_shift(x, y[:1], 0.7, "laplace")
    check_close(single, (y[:1] - x).expand_as(x), prop="with a single target, V+(x) = y - x for every query",
                hint="the weights must be normalised over the targets, one softmax per query (dim=1)")


@exercise("3.1", "mean_shift")
def test_ex3_1_float32_small_tau_and_inputs_unchanged(ex):
    x, y = far_float32(30, (6, 2), (9, 2))
    for kernel in KERNELS:
        got = call_unchanged(ex.mean_shift, x, y, 0.5, kernel)
        check_float32(got, dm.mean_shift(x.double(), y.double(), 0.5, kernel), (6, 2),
                      name=f"mean_shift of float32 inputs ({kernel}, tau = 0.5)",
                      prop=f"float32 inputs give the float64 result, to float32 accuracy ({kernel}, tau = 0.5)")
        got = call_unchanged(ex.mean_shift, x, y, SMALL_TAU, kernel)
        check_float32(got, dm.mean_shift(x.double(), y.double(), SMALL_TAU, kernel), (6, 2),
                      name=f"mean_shift in float32 at tau = {SMALL_TAU} ({kernel})",
                      prop=f"stability: finite and right in float32 at tau = {SMALL_TAU}, targets 3 away ({kernel})",
                      hint=SOFTMAX_HINT)


# ------------------------------------------------------------------------------------------------ 3.2 find_modes


def _two_clusters(seed: int = 3):
    gen = generator(seed)
    centres = torch.tensor([[-2.0, 0.0], [2.0, 0.5]], dtype=torch.float64)
    data = torch.cat([c + randn(gen, 40, 2, scale=0.3) for c in centres])
    x0 = torch.cat([c + randn(gen, 10, 2, scale=0.8) for c in centres])
    return data, x0, centres


@exercise("3.2", "find_modes")
def test_ex3_2_matches_reference_iterations(ex):
    x0, data = draw(4, (6, 2), (15, 2))
    tau, n_steps = 0.5, 7
    got = call_unchanged(ex.find_modes, x0, data, tau, n_steps)
    check_tensor(got, (n_steps + 1, 6, 2), name="find_modes(x0, data, tau, n_steps)",
                 hint="return the whole path, (n_steps + 1) x N x D, starting with x0")
    expected = [x0]
    for _ in range(n_steps):
        expected.append(expected[-1] + dm.mean_shift(expected[-1], data, tau, "gaussian"))
    check_close(got[0], x0, prop="the path starts at x0", hint="path[0] is x0 itself, before any step")
    check_close(got, torch.stack(expected), prop="each step is x <- x + V+(x) with the Gaussian kernel",
                hint="recompute V+ at the new points every step; a full step, not a fraction, not the score")


@exercise("3.2", "find_modes")
def test_ex3_2_density_never_decreases(ex):
    data, x0, _ = _two_clusters()
    tau = 0.4
    path = ex.find_modes(x0, data, tau, 15)
    check_tensor(path, (16, 20, 2), name="find_modes(x0, data, tau, 15)")
    log_p = torch.stack([dm.kde_log_density(p, data, tau) for p in path])  # steps x N
    drop = (log_p[:-1] - log_p[1:]).max().item()
    check_true(drop <= 1e-9, "the KDE log-density never decreases along mean-shift iterations",
               f"largest decrease of log p_tau in one step: {drop:.3g}",
               hint="each step x + V+(x) jumps to a kernel-weighted mean of the data, which cannot lower the "
               "KDE; a decrease means the step goes against V+ or uses another kernel or temperature")
    gain = (log_p[-1] - log_p[0]).min().item()
    check_true(gain > 0, "every starting point climbs the density", f"smallest gain in log p_tau: {gain:.3g}")


@exercise("3.2", "find_modes")
def test_ex3_2_end_points_are_two_modes(ex):
    data, x0, centres = _two_clusters()
    tau = 0.4
    path = ex.find_modes(x0, data, tau, 60)
    check_tensor(path, (61, 20, 2), name="find_modes(x0, data, tau, 60)")
    ends = path[-1]
    residual = dm.mean_shift(ends, data, tau, "gaussian").norm(dim=1).max().item()
    check_true(residual < 1e-4, "the end points are fixed points of mean shift: |V+(x)| is about 0",
               f"largest |V+| at the end points: {residual:.3g}",
               hint="after 60 full steps x <- x + V+(x) the points sit where V+ vanishes; a residual means the "
               "steps are partial, reversed or use another kernel")
    nearest = torch.cdist(ends, centres).argmin(dim=1)
    spread = max(ends[nearest == c].std(dim=0).max().item() if (nearest == c).sum() > 1 else 0.0 for c in (0, 1))
    check_true(bool((nearest[:10] == 0).all() and (nearest[10:] == 1).all()) and spread < 1e-4,
               "two well-separated clusters give two modes, each start ending at the mode of its own cluster",
               f"clusters reached: {nearest.tolist()}, spread of the end points within a mode: {spread:.3g}")


# ------------------------------------------------------------------------------------------------ 3.3 drift_field


@exercise("3.3", "drift_field")
def test_ex3_3_matches_reference(ex):
    x, y_pos, y_neg = draw(5, (7, 3), (9, 3), (6, 3))
    for kernel, tau in (("gaussian", 0.9), ("laplace", 0.4)):
        got = ex.drift_field(x, y_pos, y_neg, tau, kernel)
        check_tensor(got, (7, 3), name=f"drift_field(x, y_pos, y_neg, tau, {kernel!r})")
        check_close(got, dm.drift_field(x, y_pos, y_neg, tau, kernel),
                    prop=f"V = V+ - V-, each mean shift normalised over its own set ({kernel})",
                    hint="two separate softmaxes, one over y_pos and one over y_neg; attraction minus repulsion")


@exercise("3.3", "drift_field")
def test_ex3_3_antisymmetric_and_zero_at_equal_sets(ex):
    x, y_pos, y_neg = draw(6, (8, 2), (10, 2), (7, 2))
    for kernel in KERNELS:
        v = ex.drift_field(x, y_pos, y_neg, 0.7, kernel)
        check_tensor(v, (8, 2), name="drift_field(x, y_pos, y_neg, tau)")
        check_close(ex.drift_field(x, y_neg, y_pos, 0.7, kernel), -v,
                    prop=f"anti-symmetry: swapping positives and negatives negates V ({kernel})",
                    hint="V+ and V- must be treated alike: same kernel, same normalisation, opposite signs")
        same = ex.drift_field(x, y_pos, y_pos.flip(0), 0.7, kernel)
        check_close(same, torch.zeros_like(same), atol=1e-12,
                    prop=f"V = 0 when the positives and negatives are the same set ({kernel})",
                    hint="attraction and repulsion must balance exactly: no extra factor on either")


@exercise("3.3", "drift_field")
def test_ex3_3_gaussian_is_a_score_difference(ex):
    x, y_pos, y_neg = draw(7, (6, 2), (9, 2), (8, 2))
    tau = 0.5
    got = ex.drift_field(x, y_pos, y_neg, tau, "gaussian")
    check_tensor(got, (6, 2), name="drift_field(x, y_pos, y_neg, tau)")
    expected = tau**2 * (gaussian_kde_score_autograd(x, y_pos, tau) - gaussian_kde_score_autograd(x, y_neg, tau))
    check_close(got, expected, prop="Gaussian kernel: V = tau^2 (grad log p_tau - grad log q_tau), scores by autograd",
                hint="tau^2 times a score difference: check tau versus tau^2 in the logits")
    moved = ex.drift_field(x + 2.0, y_pos + 2.0, y_neg + 2.0, tau, "gaussian")
    check_close(moved, got, prop="translation equivariance: the '- x' terms of V+ and V- cancel",
                hint="V is a displacement: shifting everything together must not change it")


@exercise("3.3", "drift_field")
def test_ex3_3_float32_small_tau_and_inputs_unchanged(ex):
    check_field_float32(ex.drift_field, 31, 6, 8, 7)


# ------------------------------------------------------------------------------------------------ 3.4 drift_field_joint


@exercise("3.4", "drift_field_joint")
def test_ex3_4_equals_the_two_mean_shifts(ex):
    x, y_pos, y_neg = draw(8, (6, 3), (8, 3), (5, 3))
    for kernel, tau in (("gaussian", 1.1), ("laplace", 0.6)):
        got = ex.drift_field_joint(x, y_pos, y_neg, tau, kernel)
        check_tensor(got, (6, 3), name=f"drift_field_joint(x, y_pos, y_neg, tau, {kernel!r})")
        check_close(got, dm.drift_field(x, y_pos, y_neg, tau, kernel),
                    prop=f"the joint form sum_jk k~+_j k~-_k (y+_j - y-_k) equals V+ - V- ({kernel})",
                    hint="normalise each kernel over its own set (two softmaxes over dim=1); the pair weight is "
                    "their product; the difference is y+_j - y-_k")


@exercise("3.4", "drift_field_joint")
def test_ex3_4_pairs_properties(ex):
    x, y_pos, y_neg = draw(9, (5, 2), (1, 2), (1, 2))
    got = ex.drift_field_joint(x, y_pos, y_neg, 0.3, "laplace")
    check_tensor(got, (5, 2), name="drift_field_joint(x, y_pos, y_neg, tau)")
    check_close(got, (y_pos - y_neg).expand_as(x),
                prop="one positive and one negative: V(x) = y+ - y- at every query, whatever the temperature",
                hint="the pair weights k~+ k~- sum to one for each query: normalise both kernels")
    x, y_pos, y_neg = draw(10, (6, 2), (7, 2), (4, 2))
    for kernel in KERNELS:
        v = ex.drift_field_joint(x, y_pos, y_neg, 0.5, kernel)
        check_close(ex.drift_field_joint(x, y_neg, y_pos, 0.5, kernel), -v,
                    prop=f"anti-symmetry of the joint form ({kernel})", hint="the difference is y+_j - y-_k")


@exercise("3.4", "drift_field_joint")
def test_ex3_4_float32_small_tau_and_inputs_unchanged(ex):
    check_field_float32(ex.drift_field_joint, 32, 5, 6, 4)


# ------------------------------------------------------------------------------------------------ 3.5 Laplace


def laplace_potential_score(x: torch.Tensor, data: torch.Tensor, tau: float) -> torch.Tensor:
    """grad log (p * K)(x) with K(r) = tau (r + tau) exp(-r / tau), by autograd on an explicit formula (float64)."""
    x = x.detach().clone().requires_grad_(True)
    r = (x[:, None, :] - data[None, :, :]).square().sum(-1).sqrt()
    log_pk = torch.logsumexp(torch.log(tau * (r + tau)) - r / tau, dim=1)
    (grad,) = torch.autograd.grad(log_pk.sum(), x)
    return grad


@exercise("3.5", "laplace_preconditioner")
def test_ex3_5_matches_reference(ex):
    x, data = draw(11, (7, 3), (12, 3))
    for tau in (0.3, 1.5):
        got = ex.laplace_preconditioner(x, data, tau)
        check_tensor(got, (7, 1), name="laplace_preconditioner(x, data, tau)", hint="shape N x 1 (keepdim=True)")
        check_close(got, dm.laplace_preconditioner(x, data, tau),
                    prop=f"rho(x) = tau (tau + r_bar(x)) at tau = {tau}",
                    hint="r_bar = sum_j softmax_j(-r_j / tau) r_j on plain distances, then tau * (tau + r_bar)")


@exercise("3.5", "laplace_preconditioner")
def test_ex3_5_mean_shift_is_a_preconditioned_score(ex):
    x, data = draw(12, (6, 2), (10, 2))
    tau = 0.4
    rho = ex.laplace_preconditioner(x, data, tau)
    check_tensor(rho, (6, 1), name="laplace_preconditioner(x, data, tau)", hint="shape N x 1 (keepdim=True)")
    check_close(rho * laplace_potential_score(x, data, tau), dm.mean_shift(x, data, tau, "laplace"),
                prop="V+(x) = rho(x) grad log (p * K)(x) for the Laplace kernel (score by autograd)",
                hint="rho = (p * K) / (p * kappa): the Laplace-weighted mean of tau (r + tau)")


@exercise("3.5", "laplace_preconditioner")
def test_ex3_5_limits(ex):
    x, data = draw(13, (4, 3), (1, 3))
    tau = 0.7
    rho = ex.laplace_preconditioner(x, data, tau)
    check_tensor(rho, (4, 1), name="laplace_preconditioner(x, data, tau)")
    r = (x - data).norm(dim=1, keepdim=True)
    check_close(rho, tau * (tau + r), prop="one data point at distance r: rho = tau (tau + r), growing with r",
                hint="r is the plain distance |x - y|, and rho multiplies tau by (tau + r)")
    on_data = ex.laplace_preconditioner(data.expand(3, 3).clone(), torch.cat([data, data + 50.0]), tau)
    check_close(on_data, torch.full_like(on_data, tau**2), atol=1e-9,
                prop="at a data point far from all others, rho = tau^2, the Gaussian kernel's constant",
                hint="r_bar is the Laplace-weighted mean distance, which ignores data 50 away; tau^2 + more "
                "means the far points still count (a plain mean, or weights from another kernel)")


@exercise("3.5", "laplace_preconditioner")
def test_ex3_5_float32_small_tau_and_inputs_unchanged(ex):
    x, data = far_float32(33, (6, 2), (9, 2))
    for tau in (0.5, SMALL_TAU):
        got = call_unchanged(ex.laplace_preconditioner, x, data, tau)
        check_float32(got, dm.laplace_preconditioner(x.double(), data.double(), tau), (6, 1),
                      name=f"laplace_preconditioner of float32 inputs (tau = {tau})",
                      prop=f"float32 inputs: dtype kept, finite, and the float64 value to float32 accuracy "
                      f"(tau = {tau}, data 3 away)", hint=SOFTMAX_HINT)


# ------------------------------------------------------------------------------------------------ 3.6 batch form


def _batch_inputs(seed: int):
    x, y_pos = draw(seed, (9, 2), (12, 2))
    return x, y_pos + 0.5


@exercise("3.6", "batch_drift_field")
def test_ex3_6_matches_reference_self_negatives(ex):
    x, y_pos = _batch_inputs(14)
    for kernel, tau in (("laplace", 0.5), ("gaussian", 0.8), ("laplace", 0.05)):
        got = ex.batch_drift_field(x, y_pos, None, tau, kernel)
        check_tensor(got, (9, 2), name=f"batch_drift_field(x, y_pos, None, {tau}, {kernel!r})")
        check_close(got, dm.batch_drift_field(x, y_pos, None, tau, kernel),
                    prop=f"double softmax with cross-weighting, queries as their own masked negatives "
                    f"({kernel}, tau = {tau})",
                    hint="logits over [x | y_pos]; l_ii = -inf; A = sqrt(softmax over dim=1 * softmax over dim=0); "
                    "W+ = A+ * rowsum(A-), W- = A- * rowsum(A+)")


@exercise("3.6", "batch_drift_field")
def test_ex3_6_matches_reference_explicit_negatives(ex):
    x, y_pos = _batch_inputs(15)
    (y_neg,) = draw(16, (6, 2))
    got = ex.batch_drift_field(x, y_pos, y_neg, 0.6, "laplace")
    check_tensor(got, (9, 2), name="batch_drift_field(x, y_pos, y_neg, tau)")
    check_close(got, dm.batch_drift_field(x, y_pos, y_neg, 0.6, "laplace"),
                prop="with explicit negatives: the same double softmax, and no mask",
                hint="mask only when y_neg is None (the queries are then their own negatives)")


@exercise("3.6", "batch_drift_field")
def test_ex3_6_minus_x_terms_cancel(ex):
    x, y_pos = _batch_inputs(17)
    shift = torch.tensor([[3.0, -2.0]], dtype=torch.float64)
    got = ex.batch_drift_field(x, y_pos, None, 0.5, "laplace")
    check_tensor(got, (9, 2), name="batch_drift_field(x, y_pos, None, tau)")
    check_close(ex.batch_drift_field(x + shift, y_pos + shift, None, 0.5, "laplace"), got,
                prop="translation equivariance: rows of W+ and W- have equal sums, so the '- x' terms cancel",
                hint="cross-weight: W+ = A+ * rowsum(A-) and W- = A- * rowsum(A+)")


@exercise("3.6", "batch_drift_field")
def test_ex3_6_antisymmetric_and_zero_outside_the_negatives(ex):
    x, y_pos = _batch_inputs(18)
    (y_neg,) = draw(19, (7, 2))
    v = ex.batch_drift_field(x, y_pos, y_neg, 0.5, "laplace")
    check_tensor(v, (9, 2), name="batch_drift_field(x, y_pos, y_neg, tau)")
    check_close(ex.batch_drift_field(x, y_neg, y_pos, 0.5, "laplace"), -v,
                prop="anti-symmetry: swapping explicit positives and negatives negates V",
                hint="treat the two blocks alike: one softmax over all targets, one over the queries")
    same = ex.batch_drift_field(x, y_pos, y_pos.clone(), 0.5, "laplace")
    check_close(same, torch.zeros_like(same), atol=1e-12,
                prop="V = 0 when the negatives are the positives (queries not among the negatives)",
                hint="the geometric mean of the softmaxes and the cross-weighting keep the two blocks balanced")


@exercise("3.6", "batch_drift_field")
def test_ex3_6_self_mask_is_exact(ex):
    # Points near the corners of a huge regular simplex: all pairwise distances are about 3e4, within a few units
    # of each other. At tau = 1 every logit is about -3e4, yet the weights stay far from 0 or 1. An exact -inf
    # removes each query from its own negatives; a "large" finite logit such as -1e4 would be the biggest of its
    # row and of its column.
    n, m, edge = 6, 8, 3.0e4
    points = edge / math.sqrt(2.0) * torch.eye(n + m, dtype=torch.float64)
    points = points + randn(20, n + m, n + m)
    x, y_pos = points[:n], points[n:]
    got = ex.batch_drift_field(x, y_pos, None, 1.0, "laplace")
    check_tensor(got, (n, n + m), name="batch_drift_field(x, y_pos, None, 1.0)")
    check_close(got, dm.batch_drift_field(x, y_pos, None, 1.0, "laplace"),
                prop="the self-mask is exact at any scale (a logit of -inf, not a large finite number)",
                hint="masked_fill(mask, float('-inf')) on the diagonal of the negative block")
    x, y_pos = draw(21, (2, 2), (3, 2))
    pair = ex.batch_drift_field(x, y_pos, None, 0.5, "laplace")
    check_close(pair, dm.batch_drift_field(x, y_pos, None, 0.5, "laplace"),
                prop="two queries: each one's only negative is the other",
                hint="mask the diagonal of the negative block")


@exercise("3.6", "batch_drift_field")
def test_ex3_6_float32_small_tau_and_inputs_unchanged(ex):
    x, y_pos, y_neg = far_float32(34, (8, 2), (10, 2), (6, 2))
    for y in (None, y_neg):
        for kernel, tau in (("laplace", 0.5), ("laplace", SMALL_TAU), ("gaussian", SMALL_TAU)):
            got = call_unchanged(ex.batch_drift_field, x, y_pos, y, tau, kernel)
            negatives = "the queries" if y is None else "explicit negatives"
            ref = dm.batch_drift_field(x.double(), y_pos.double(), None if y is None else y.double(), tau, kernel)
            check_float32(got, ref, (8, 2), name=f"batch_drift_field of float32 inputs ({kernel}, tau = {tau})",
                          prop=f"float32 inputs: dtype kept, finite, and the float64 value to float32 accuracy "
                          f"({kernel}, tau = {tau}, negatives: {negatives}, positives 3 away)",
                          hint=SOFTMAX_HINT + "; the softmax over the queries (dim=0) needs it as much as dim=1")


@exercise("3.6", "batch_drift_field")
def test_ex3_6_field_is_a_constant_for_autograd(ex):
    x, y_pos = _batch_inputs(22)
    (y_neg,) = draw(23, (5, 2))
    x, y_pos, y_neg = (t.clone().requires_grad_(True) for t in (x, y_pos, y_neg))
    for y in (None, y_neg):
        got = ex.batch_drift_field(x, y_pos, y, 0.5, "laplace")
        check_tensor(got, (9, 2), name="batch_drift_field of inputs that require grad")
        check_no_graph(got, name="the batch drift field of x that requires grad",
                       hint="the field is a regression target: compute it from x.detach() (and detached "
                       "y_pos, y_neg), or under torch.no_grad()")
        check_close(got, dm.batch_drift_field(x.detach(), y_pos.detach(), None if y is None else y.detach(), 0.5),
                    prop="the same value as with detached inputs")


# ---------------------------------------------------------------------------------------------- every exercise:
# devices, inputs that require grad, no side effects, fresh results, kernel names compared by value, far from the
# origin, arguments varied


def _runtime_name(kernel: str) -> str:
    """The same kernel name as a string built at run time: equal by value, another object than the literal."""
    return "".join(list(kernel))


# No meta-device check in this lesson: the answers may use drifting_min's pairwise_distances and kernel_logits,
# which validate their inputs' values (finite, non-empty), and the meta device holds no values.
KERNEL_NAME_HINT = "compare the kernel name with == (a name built at run time is equal, not the same object)"
FAR_HINT = ("distances from the differences x_i - y_j (dm.pairwise_distances): no float32 step, no "
            "|x|^2 + |y|^2 - 2 x.y, which keeps no digit of a distance near 1 at an offset of 1e6")


def _far_sets(seed: int):
    x, y_pos, y_neg = draw(seed, (5, 2), (6, 2), (4, 2))
    return x, y_pos + 0.5, y_neg - 0.5


@exercise("3.1", "mean_shift")
def test_ex3_1_devices_kernel_by_value_far_from_origin(ex):
    x, y, _ = _far_sets(90)
    for kernel in KERNELS:
        check_portable(ex.mean_shift, x, y, 0.7, kernel, name=f"mean_shift ({kernel})", grad_args=(0, 1),
                       meta=False)
        for tau in (0.3, 1.5):
            expected = dm.mean_shift(x, y, tau, kernel)
            check_close(ex.mean_shift(x, y, tau, _runtime_name(kernel)), expected, rtol=1e-10, atol=1e-12,
                        prop=f"a kernel name built at run time ({kernel!r}) gives that kernel's field",
                        hint=KERNEL_NAME_HINT)
            check_close(ex.mean_shift(x + 1e6, y + 1e6, tau, kernel), expected, rtol=1e-6, atol=1e-8,
                        prop=f"float64 points far from the origin (offset 1e6; {kernel}, tau {tau}): float64 accuracy",
                        hint=FAR_HINT)


@exercise("3.2", "find_modes")
def test_ex3_2_devices_steps_and_tau_varied(ex):
    x0, data, _ = _far_sets(91)
    check_portable(ex.find_modes, x0, data, 0.8, 2, name="find_modes", grad_args=(0, 1), meta=False)
    for tau, n_steps in ((0.4, 3), (1.2, 1)):
        path = ex.find_modes(x0, data, tau, n_steps)
        check_tensor(path, (n_steps + 1, 5, 2), name=f"find_modes(..., tau={tau}, n_steps={n_steps})",
                     hint="the path holds x0 and one entry per step: n_steps + 1")
        x, expected = x0, [x0]
        for _ in range(n_steps):
            x = x + dm.mean_shift(x, data, tau, "gaussian")
            expected.append(x)
        check_close(path, torch.stack(expected), rtol=1e-10, atol=1e-12,
                    prop=f"tau and n_steps are the arguments (tau {tau}, {n_steps} steps)",
                    hint="use the tau and n_steps given, the Gaussian kernel at every step")


@exercise("3.3", "drift_field")
def test_ex3_3_devices_kernel_by_value_far_from_origin(ex):
    x, y_pos, y_neg = _far_sets(92)
    for kernel in KERNELS:
        check_portable(ex.drift_field, x, y_pos, y_neg, 0.7, kernel, name=f"drift_field ({kernel})", meta=False)
        expected = dm.drift_field(x, y_pos, y_neg, 0.7, kernel)
        check_close(ex.drift_field(x, y_pos, y_neg, 0.7, _runtime_name(kernel)), expected, rtol=1e-10, atol=1e-12,
                    prop=f"a kernel name built at run time ({kernel!r}) gives that kernel's field",
                        hint=KERNEL_NAME_HINT)
        check_close(ex.drift_field(x + 1e6, y_pos + 1e6, y_neg + 1e6, 0.7, kernel), expected, rtol=1e-6, atol=1e-8,
                    prop=f"float64 points far from the origin (offset 1e6; {kernel}): float64 accuracy", hint=FAR_HINT)


@exercise("3.4", "drift_field_joint")
def test_ex3_4_devices_kernel_by_value(ex):
    x, y_pos, y_neg = _far_sets(93)
    for kernel in KERNELS:
        check_portable(ex.drift_field_joint, x, y_pos, y_neg, 0.7, kernel, name=f"drift_field_joint ({kernel})",
                       meta=False)
        check_close(ex.drift_field_joint(x, y_pos, y_neg, 0.7, _runtime_name(kernel)),
                    dm.drift_field(x, y_pos, y_neg, 0.7, kernel), rtol=1e-10, atol=1e-12,
                    prop=f"a kernel name built at run time ({kernel!r}) gives that kernel's field",
                        hint=KERNEL_NAME_HINT)


@exercise("3.5", "laplace_preconditioner")
def test_ex3_5_devices_far_from_origin_tau_varied(ex):
    x, data, _ = _far_sets(94)
    check_portable(ex.laplace_preconditioner, x, data, 0.7, name="laplace_preconditioner", grad_args=(0, 1),
                   meta=False)
    for tau in (0.3, 1.5):
        check_close(ex.laplace_preconditioner(x + 1e6, data + 1e6, tau), dm.laplace_preconditioner(x, data, tau),
                    rtol=1e-6, prop=f"float64 points far from the origin (offset 1e6; tau {tau}): float64 accuracy",
                    hint=FAR_HINT)


@exercise("3.6", "batch_drift_field")
def test_ex3_6_devices_kernel_by_value_far_from_origin(ex):
    x, y_pos, y_neg = _far_sets(95)
    for kernel in KERNELS:
        for negatives in (None, y_neg):
            check_portable(ex.batch_drift_field, x, y_pos, negatives, 0.7, kernel,
                           name=f"batch_drift_field ({kernel}, y_neg {'None' if negatives is None else 'given'})",
                           meta=False)
            expected = dm.batch_drift_field(x, y_pos, negatives, 0.7, kernel)
            check_close(ex.batch_drift_field(x, y_pos, negatives, 0.7, _runtime_name(kernel)), expected, rtol=1e-10,
                        atol=1e-12, prop=f"a kernel name built at run time ({kernel!r}) gives that kernel's field",
                        hint=KERNEL_NAME_HINT)
            far_neg = None if negatives is None else negatives + 1e6
            check_close(ex.batch_drift_field(x + 1e6, y_pos + 1e6, far_neg, 0.7, kernel), expected, rtol=1e-6,
                        atol=1e-8, prop=f"float64 points far from the origin (offset 1e6; {kernel}): float64 accuracy",
                        hint=FAR_HINT)
