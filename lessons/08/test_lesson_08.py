"""Graded checks of lesson 08: when the field lies.

Run them with `pytest lessons/08` (your exercises) or `pytest lessons/08 --solutions` (the worked answers);
one exercise alone with `pytest lessons/08 -k ex8_1`. Every random draw is seeded; values are compared in
float64 with drifting_min or with a closed form written here.
"""

from __future__ import annotations

import math

import torch

import drifting_min as dm
from course import (
    call_unchanged,
    check_close,
    check_dtype,
    check_no_graph,
    check_tensor,
    check_true,
    draw,
    exercise,
)
from drifting_min import toys
from drifting_min.drift import sinkhorn_coupling as reference_coupling


def _far_apart(seed: int, n: int, m: int, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Queries and targets about 3 apart (two clusters): at tau = 0.02 every exp(-|x - y| / tau) underflows."""
    x, y = draw(seed, (n, 2), (m, 2), scale=0.3)
    return x.to(dtype), (y + torch.tensor([3.0, 0.0], dtype=torch.float64)).to(dtype)


# ------------------------------------------------------------------------------------------------ 8.1 sinkhorn_coupling


@exercise("8.1", "sinkhorn_coupling")
def test_ex8_1_matches_reference(ex):
    x, y = draw(0, (7, 2), (11, 2))
    logits = -torch.cdist(x, y) / 0.4
    got = call_unchanged(ex.sinkhorn_coupling, logits, 6)
    check_tensor(got, (7, 11), name="sinkhorn_coupling(logits, 6)")
    check_close(got, reference_coupling(logits, 6), rtol=1e-9, atol=1e-15,
                prop="P = exp(l + a_i + b_j) after 6 rounds of (a, then b) from b = 0",
                hint="each round updates the row potentials a first, then the column potentials b; start from "
                "b = 0, with marginals 1/N for rows and 1/M for columns")


@exercise("8.1", "sinkhorn_coupling")
def test_ex8_1_marginals(ex):
    x, y = draw(1, (9, 2), (6, 2))
    logits = -torch.cdist(x, y) / 1.0
    got = ex.sinkhorn_coupling(logits, 3)
    check_close(got.sum(0), torch.full((6,), 1 / 6, dtype=torch.float64), rtol=1e-10,
                prop="the columns sum to exactly 1/M after any number of rounds (the last update is b's)",
                hint="end each round with the column update b_j = -log M - logsumexp_i(l_ij + a_i)")
    converged = ex.sinkhorn_coupling(logits, 300)
    check_close(converged.sum(1), torch.full((9,), 1 / 9, dtype=torch.float64), rtol=1e-8,
                prop="after many rounds the rows sum to 1/N as well (a coupling of two uniform marginals)",
                hint="the row update is a_i = -log N - logsumexp_j(l_ij + b_j): the total mass is 1, not N or M")


@exercise("8.1", "sinkhorn_coupling")
def test_ex8_1_ignores_row_and_column_constants(ex):
    x, y = draw(2, (6, 3), (8, 3))
    logits = -torch.cdist(x, y) / 0.5
    r, c = draw(3, (6,), (8,))
    got = ex.sinkhorn_coupling(logits + 4 * r[:, None] + 4 * c, 40)
    check_close(got, ex.sinkhorn_coupling(logits, 40), rtol=1e-8, atol=1e-14,
                prop="adding a constant to a row or a column of the logits leaves the coupling unchanged",
                hint="the potentials a and b absorb any row or column factor; a one-sided softmax would not "
                "absorb the column constants")


@exercise("8.1", "sinkhorn_coupling")
def test_ex8_1_float32_at_low_temperature(ex):
    x, y = _far_apart(4, 6, 5)
    logits = -torch.cdist(x, y) / 0.02  # about -150: every exp underflows in float32
    got = ex.sinkhorn_coupling(logits, 10)
    check_dtype(got, torch.float32, name="sinkhorn_coupling(float32 logits)",
                hint="build every intermediate from the logits' dtype (torch.zeros(m, dtype=logits.dtype))")
    check_tensor(got, (6, 5), name="sinkhorn_coupling at tau = 0.02",
                 finite_hint="at tau = 0.02 every exp(l) underflows to 0: scale in log space (logsumexp), never "
                 "exp(l) / sum exp(l)")
    expected = reference_coupling(logits.double(), 10)
    check_close(got, expected, rtol=1e-3, atol=1e-6,
                prop="float32 at tau = 0.02 matches float64 (float32 precision: logits near -150 lose about "
                "1e-5 of relative accuracy, amplified by the exponent)",
                hint="keep the scaling in log space; the columns must still sum to 1/M")


# ------------------------------------------------------------------------------------------------ 8.2 sinkhorn_field


@exercise("8.2", "sinkhorn_field")
def test_ex8_2_matches_reference(ex):
    x, y = draw(10, (9, 2), (12, 2))
    for kernel in ("laplace", "gaussian"):
        got = call_unchanged(ex.sinkhorn_field, x, y, 0.6, kernel)
        check_tensor(got, (9, 2), name=f"sinkhorn_field(x, y+, 0.6, {kernel!r})")
        check_close(got, dm.batch_drift_field(x, y, None, 0.6, kernel, "sinkhorn"), rtol=1e-7, atol=1e-12,
                    prop=f"V = P+ y+ / rowsum(P+) - P- x / rowsum(P-) ({kernel} kernel)",
                    hint="two couplings, one with the data and one of x with itself (diagonal kept), each row "
                    "divided by its sum; the kernel option goes to dm.kernel_logits")


@exercise("8.2", "sinkhorn_field")
def test_ex8_2_zero_when_the_data_is_the_generated_set(ex):
    (x,) = draw(11, (12, 2))
    perm = torch.tensor([3, 0, 7, 1, 11, 5, 2, 9, 4, 10, 6, 8])
    got = ex.sinkhorn_field(x, x[perm], 0.3)
    check_close(got, torch.zeros_like(x), atol=1e-10,
                prop="V = 0 when y+ is the generated set itself, in any order (zero drift at q = p)",
                hint="the self coupling keeps its diagonal (no self-mask): then P+ is P- with its columns "
                "permuted and the two barycentres coincide")


@exercise("8.2", "sinkhorn_field")
def test_ex8_2_collapsed_pair_is_pulled_to_the_missing_mode(ex):
    x = torch.tensor([[-1.0], [-1.0]], dtype=torch.float64)
    y = torch.tensor([[-1.0], [1.0]], dtype=torch.float64)
    got = ex.sinkhorn_field(x, y, 0.05)
    check_close(got, torch.ones_like(x), rtol=1e-9,
                prop="both samples on the data point -1, none on +1: each column of P+ carries 1/2, so V = +1",
                hint="the column constraint forces +1 to receive half of the mass; a softmax over the targets "
                "(one-sided) gives about 0 here, the trap this lesson is about")


@exercise("8.2", "sinkhorn_field")
def test_ex8_2_equivariant_constant_float32(ex):
    x, y = draw(12, (8, 2), (10, 2))
    shift = torch.tensor([5.0, -2.0], dtype=torch.float64)
    check_close(ex.sinkhorn_field(x + shift, y + shift, 0.5), ex.sinkhorn_field(x, y, 0.5), rtol=1e-7, atol=1e-10,
                prop="moving x and y+ by the same vector leaves V unchanged",
                hint="a field of displacements depends on differences only")
    xg = x.clone().requires_grad_(True)
    check_no_graph(ex.sinkhorn_field(xg, y, 0.5), name="sinkhorn_field(x requiring grad, ...)",
                   hint="the field is a target: detach x before building the couplings")
    x32, y32 = _far_apart(13, 6, 6)
    got = ex.sinkhorn_field(x32, y32, 0.02)
    check_dtype(got, torch.float32, name="sinkhorn_field(float32 x)", hint="return V in the dtype of x")
    check_tensor(got, (6, 2), name="sinkhorn_field at tau = 0.02, points 3 apart",
                 finite_hint="every exp(l) underflows here: the couplings must be scaled in log space")


# ------------------------------------------------------------------------------------------------ 8.3 kernel_overlap


def _overlap(x, y, tau, kernel):
    return dm.kernel_matrix(x, y, tau, kernel).mean() / dm.kernel_matrix(y, y, tau, kernel).mean()


@exercise("8.3", "kernel_overlap")
def test_ex8_3_matches_closed_form(ex):
    x, y = draw(20, (15, 2), (11, 2))
    for kernel in ("laplace", "gaussian"):
        got = call_unchanged(ex.kernel_overlap, x, y, 0.7, kernel)
        check_tensor(got, (), name=f"kernel_overlap(x, y, 0.7, {kernel!r})", hint="return a 0-dimensional tensor")
        check_close(got, _overlap(x, y, 0.7, kernel), rtol=1e-9,
                    prop=f"overlap = mean_ij k(x_i, y_j) / mean_jj' k(y_j, y_j') ({kernel} kernel)",
                    hint="both means over all pairs, the diagonal k(y_j, y_j) = 1 included; the kernel option "
                    "goes to dm.kernel_logits")


@exercise("8.3", "kernel_overlap")
def test_ex8_3_one_at_equality_and_share_left_when_mass_escapes(ex):
    (y,) = draw(21, (12, 2))
    got = ex.kernel_overlap(y.clone(), y, 0.5)
    check_close(got, torch.tensor(1.0, dtype=torch.float64), rtol=1e-12,
                prop="the same set on both sides gives exactly 1",
                hint="the within-data mean includes the diagonal, as the cross mean does when x = y")
    far = y[:4] + torch.tensor([1000.0, 0.0], dtype=torch.float64)
    x = torch.cat([y, far])  # 4 of 16 generated samples escaped: 3/4 of them still see the data
    got = ex.kernel_overlap(x, y, 0.5)
    check_close(got, torch.tensor(0.75, dtype=torch.float64), rtol=1e-9,
                prop="a quarter of the samples far away (kernel 0) lowers the overlap to 3/4",
                hint="the cross mean runs over all N generated samples, the escaped ones included")


@exercise("8.3", "kernel_overlap")
def test_ex8_3_invariant_and_float32(ex):
    x, y = draw(22, (10, 2), (9, 2))
    rot = torch.tensor([[0.6, -0.8], [0.8, 0.6]], dtype=torch.float64)
    shift = torch.tensor([2.0, 1.0], dtype=torch.float64)
    check_close(ex.kernel_overlap(x @ rot.T + shift, y @ rot.T + shift, 0.4), ex.kernel_overlap(x, y, 0.4),
                rtol=1e-9, prop="a shared rotation and shift leaves the overlap unchanged")
    x32, y32 = _far_apart(23, 6, 7)
    got = ex.kernel_overlap(x32, y32, 0.02)
    check_dtype(got, torch.float32, name="kernel_overlap(float32 x, ...)", hint="return the dtype of x")
    check_tensor(got, (), name="kernel_overlap at tau = 0.02, points 3 apart",
                 finite_hint="the within-data mean keeps its diagonal of ones, so it is never 0")
    check_close(got, _overlap(x32.double(), y32.double(), 0.02, "laplace"), atol=1e-6,
                prop="far apart at tau = 0.02 the overlap is about 0 (float32 tolerance)")


# ------------------------------------------------------------------------------------------------ 8.4 annealed_taus


@exercise("8.4", "annealed_taus")
def test_ex8_4_matches_the_toy_schedule(ex):
    cfg = toys.ToyConfig(steps=7, taus=(0.02, 0.2, 1.0), tau_anneal=3.0)
    for step in range(cfg.steps):
        got = ex.annealed_taus(step, cfg.steps, cfg.taus, cfg.tau_anneal)
        check_true(isinstance(got, tuple) and len(got) == 3, "annealed_taus returns a tuple, one float per tau",
                   f"got {got!r}")
        check_close(torch.tensor(got), torch.tensor(toys.annealed_taus(step, cfg)), rtol=1e-12,
                    prop=f"tau(t) = tau * factor^(1 - t), t = step / (steps - 1), at step {step}",
                    hint="t runs from 0 at the first step to 1 at the last, steps - 1")


@exercise("8.4", "annealed_taus")
def test_ex8_4_endpoints_and_constant_ratio(ex):
    taus, steps = (0.05, 0.5), 21
    first, last = ex.annealed_taus(0, steps, taus, 4.0), ex.annealed_taus(steps - 1, steps, taus, 4.0)
    check_close(torch.tensor(first), torch.tensor([0.2, 2.0]), rtol=1e-12,
                prop="step 0 uses factor * tau", hint="the schedule starts wide and shrinks")
    check_close(torch.tensor(last), torch.tensor(taus), rtol=1e-12,
                prop="the last step (steps - 1) uses tau itself", hint="t = step / (steps - 1), not step / steps")
    values = torch.tensor([ex.annealed_taus(s, steps, taus, 4.0)[0] for s in range(steps)], dtype=torch.float64)
    ratios = values[1:] / values[:-1]
    check_close(ratios, torch.full((steps - 1,), 4.0 ** (-1 / (steps - 1)), dtype=torch.float64), rtol=1e-10,
                prop="an exponential decay: the same ratio from each step to the next",
                hint="tau(t) = tau_0 exp(-r t) with r = log(factor); a straight line between the ends is not it")


@exercise("8.4", "annealed_taus")
def test_ex8_4_degenerate_cases(ex):
    got = ex.annealed_taus(5, 11, (0.1, 0.3), 1.0)
    check_close(torch.tensor(got), torch.tensor([0.1, 0.3]), rtol=1e-12,
                prop="factor 1 keeps the temperatures constant")
    got = ex.annealed_taus(0, 1, (0.1,), 2.0)
    check_true(all(math.isfinite(v) for v in got), "a one-step run gives finite temperatures",
               f"got {got!r}", hint="with steps = 1 there is no last step to reach: use t = 0 (max(steps - 1, 1))")


# ------------------------------------------------------------------------------------------------ 8.5 pulled_back_field


def _linear(a: torch.Tensor):
    return lambda x: x @ a.T


@exercise("8.5", "pulled_back_field")
def test_ex8_5_linear_map_gives_a_transpose_v(ex):
    x, y, a = draw(30, (10, 2), (12, 2), (2, 2))
    got = call_unchanged(ex.pulled_back_field, x, y, _linear(a), 0.5)
    check_tensor(got, (10, 2), name="pulled_back_field(x, y+, phi, 0.5)")
    v = dm.batch_drift_field(x @ a.T, y @ a.T, None, 0.5)
    check_close(got, v @ a, rtol=1e-9, atol=1e-12,
                prop="for phi(x) = A x the result is J^T V = A^T V (row i: V_i A)",
                hint="the field is computed on the features phi(x), phi(y+), and pulled back with the transpose of "
                "the Jacobian; A V (no transpose) differs unless A is symmetric")


@exercise("8.5", "pulled_back_field")
def test_ex8_5_is_the_loss_gradient(ex):
    x, y = draw(31, (9, 2), (9, 2))

    def phi(u):
        return torch.stack([u[:, 0] + 0.5 * u[:, 1] ** 2, torch.sin(u[:, 1]) + u[:, 0] * u[:, 1]], dim=1)

    got = ex.pulled_back_field(x, y, phi, 0.4)
    xg = x.clone().requires_grad_(True)
    f = phi(xg)
    with torch.no_grad():
        v = dm.batch_drift_field(f, phi(y), None, 0.4)
    loss = (f - (f + v).detach()).square().sum(1).mean()
    (grad,) = torch.autograd.grad(loss, xg)
    check_close(got, -grad * x.shape[0] / 2, rtol=1e-9, atol=1e-12,
                prop="J^T V = -(N / 2) dL/dx for L = mean_i |phi(x_i) - stopgrad(phi(x_i) + V_i)|^2",
                hint="compute V without a graph (torch.no_grad) so that the gradient holds J^T V and no derivative "
                "of the field itself")


@exercise("8.5", "pulled_back_field")
def test_ex8_5_a_forgotten_direction_gets_no_push(ex):
    x, y = draw(32, (10, 2), (10, 2))
    y = y + torch.tensor([0.0, 3.0], dtype=torch.float64)  # the data is elsewhere along x_2 ...
    got = ex.pulled_back_field(x, y, lambda u: u[:, :1], 0.5)  # ... but the feature map keeps x_1 only
    check_tensor(got, (10, 2), name="pulled_back_field(x, y+, keep x_1, 0.5)")
    check_true(bool((got[:, 1] == 0).all()), "a direction the feature map forgets gets exactly zero push",
               f"largest push along x_2: {float(got[:, 1].abs().max()):.3g}",
               hint="the pull-back J^T V has a zero component along every direction in the null space of J")
    xg = x.clone().requires_grad_(True)
    check_no_graph(ex.pulled_back_field(xg, y, lambda u: u[:, :1], 0.5), name="pulled_back_field(...)",
                   hint="return the gradient itself (torch.autograd.grad without create_graph), not a graph")
