"""drifting_min's identities, checked on random inputs against autograd and float64 references.

Set DRIFTING_TEST_DEVICE=cuda to run them on a GPU.
"""

from __future__ import annotations

import math
import os

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import drifting_min as dm
from course import draw
from drifting_min.kde import kernel_log_normaliser

DEVICE = torch.device(os.environ.get("DRIFTING_TEST_DEVICE", "cpu"))
KERNELS = ["gaussian", "laplace"]
NORMALISATIONS = ["double", "targets", "uncoupled"]


def sample(seed: int, *shapes, dtype=torch.float64, shift: float = 0.0):
    return draw(seed, *shapes, dtype=dtype, shift=shift, device=DEVICE)


def assert_close(a, b, rtol=1e-9, atol=1e-12):
    torch.testing.assert_close(a, b, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------------------- kernels, distances


def test_distances_match_explicit_differences():
    x, y = sample(0, (9, 5), (7, 5))
    explicit = (x[:, None, :] - y[None, :, :]).norm(dim=-1)
    assert_close(dm.pairwise_distances(x, y), explicit)
    assert_close(dm.pairwise_distances(x, y, squared=True), explicit**2)
    high_x, high_y = sample(1, (6, 200), (4, 200))
    assert_close(dm.pairwise_distances(high_x, high_y), (high_x[:, None] - high_y[None]).norm(dim=-1), rtol=1e-7)


def test_half_precision_inputs_give_float32_distances():
    x, y = sample(2, (8, 3), (5, 3), dtype=torch.float32)
    assert dm.pairwise_distances(x.bfloat16(), y.bfloat16()).dtype == torch.float32


@pytest.mark.parametrize(
    "bad, message",
    [
        (lambda x, y: (x, y[:, :2]), "dimensions"),
        (lambda x, y: (x, y[:0]), "empty"),
        (lambda x, y: (x, torch.full_like(y, float("nan"))), "NaN"),
        (lambda x, y: (x, y.clone().fill_(float("inf"))), "Inf"),
        (lambda x, y: (x[0], y), "2-D"),
    ],
)
def test_bad_inputs_raise_clear_errors(bad, message):
    x, y = sample(3, (4, 3), (5, 3))
    with pytest.raises(ValueError, match=message):
        dm.mean_shift(*bad(x, y), tau=0.5)


@pytest.mark.parametrize("tau", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_temperature_raises(tau):
    x, y = sample(4, (4, 3), (5, 3))
    with pytest.raises(ValueError, match="tau"):
        dm.drift_field(x, y, x, tau)


def test_unknown_kernel_and_normalisation_raise():
    x, y = sample(5, (4, 3), (5, 3))
    with pytest.raises(ValueError, match="kernel"):
        dm.mean_shift(x, y, 0.5, kernel="cosine")
    with pytest.raises(ValueError, match="normalisation"):
        dm.batch_drift_field(x, y, None, 0.5, normalisation="softmax")


@pytest.mark.parametrize("kernel", KERNELS)
def test_kernel_normaliser_integrates_to_one(kernel):
    """Z = integral of k(x, 0) dx, by quadrature in 1-D and 2-D (radial integral)."""
    tau = 0.3
    r = torch.linspace(0, 40 * tau, 200_001, dtype=torch.float64)
    k = torch.exp(-(r**2) / (2 * tau**2)) if kernel == "gaussian" else torch.exp(-r / tau)
    one_d = 2 * torch.trapezoid(k, r)
    two_d = torch.trapezoid(2 * math.pi * r * k, r)
    assert math.isclose(one_d.item(), math.exp(kernel_log_normaliser(1, tau, kernel)), rel_tol=1e-6)
    assert math.isclose(two_d.item(), math.exp(kernel_log_normaliser(2, tau, kernel)), rel_tol=1e-6)


# -------------------------------------------------------------------------------------------- KDE and scores


@pytest.mark.parametrize("kernel", KERNELS)
def test_kde_score_matches_autograd(kernel):
    x, data = sample(6, (12, 3), (30, 3))
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(dm.kde_log_density(x, data, 0.6, kernel).sum(), x)
    assert_close(dm.kde_score(x.detach(), data, 0.6, kernel), grad)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), tau=st.floats(0.05, 3.0), dim=st.integers(1, 6))
def test_gaussian_mean_shift_is_tau_squared_times_kde_score(seed, tau, dim):
    x, data = sample(seed, (10, dim), (17, dim))
    x.requires_grad_(True)
    (score,) = torch.autograd.grad(dm.kde_log_density(x, data, tau).sum(), x)
    assert_close(dm.mean_shift(x.detach(), data, tau), tau**2 * score, rtol=1e-8, atol=1e-10)


def test_tweedie_on_a_gaussian_mixture_with_analytic_smoothed_density():
    """p = sum_k pi_k N(m_k, s_k^2) smoothed by N(0, tau^2) is sum_k pi_k N(m_k, s_k^2 + tau^2), in closed form.

    Tweedie: E[y | x] = x + tau^2 d/dx log p_tau(x). Its analytic posterior mean is
    sum_k r_k(x) (s_k^2 x + tau^2 m_k) / (s_k^2 + tau^2), with r_k the responsibilities under p_tau.
    The KDE of many samples of p gives the same posterior mean up to Monte Carlo error.
    """
    pis = torch.tensor([0.3, 0.7], dtype=torch.float64)
    means = torch.tensor([-1.5, 1.0], dtype=torch.float64)
    stds = torch.tensor([0.4, 0.6], dtype=torch.float64)
    tau = 0.5
    x = torch.linspace(-3, 3, 41, dtype=torch.float64, requires_grad=True)
    var_tau = stds**2 + tau**2
    log_comp = torch.log(pis) - 0.5 * (x[:, None] - means) ** 2 / var_tau - 0.5 * torch.log(2 * math.pi * var_tau)
    log_p_tau = torch.logsumexp(log_comp, dim=1)
    (score,) = torch.autograd.grad(log_p_tau.sum(), x)
    resp = torch.softmax(log_comp, dim=1).detach()
    posterior_mean = (resp * (stds**2 * x.detach()[:, None] + tau**2 * means) / var_tau).sum(1)
    assert_close(x.detach() + tau**2 * score, posterior_mean)

    gen = torch.Generator().manual_seed(7)
    n = 200_000
    comp = torch.multinomial(pis, n, replacement=True, generator=gen)
    data = (means[comp] + stds[comp] * torch.randn(n, generator=gen, dtype=torch.float64))[:, None]
    kde_mean = dm.tweedie_denoise(x.detach()[:, None].to(DEVICE), data.to(DEVICE), tau)[:, 0].cpu()
    assert (kde_mean - posterior_mean).abs().max() < 0.03


def test_laplace_radial_kernel_decomposition():
    """V+ = rho_p grad log(p*K) exactly, so V = rho_p (grad log p_K - grad log q_K) + (rho_p - rho_q) grad log q_K."""
    tau = 0.4
    x, y_p, y_q = sample(8, (15, 3), (25, 3), (20, 3))
    y_q = y_q + 0.5

    def grad_log_potential(data):
        xg = x.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(dm.laplace_log_potential(xg, data, tau).sum(), xg)
        return g

    rho_p, rho_q = dm.laplace_preconditioner(x, y_p, tau), dm.laplace_preconditioner(x, y_q, tau)
    g_p, g_q = grad_log_potential(y_p), grad_log_potential(y_q)
    assert_close(dm.mean_shift(x, y_p, tau, "laplace"), rho_p * g_p)
    assert_close(dm.drift_field(x, y_p, y_q, tau, "laplace"), rho_p * (g_p - g_q) + (rho_p - rho_q) * g_q)
    # rho = (p*K)/(p*kappa) computed directly, K(r) = tau (r + tau) exp(-r / tau)
    r = dm.pairwise_distances(x, y_p)
    direct = (tau * (r + tau) * torch.exp(-r / tau)).sum(1, keepdim=True) / torch.exp(-r / tau).sum(1, keepdim=True)
    assert_close(rho_p, direct)


def test_kde_log_density_is_stable_at_small_temperature_in_float32():
    x, data = sample(9, (64, 2), (128, 2), dtype=torch.float32)
    got = dm.kde_log_density(x, data, 0.02)
    ref = dm.kde_log_density(x.double(), data.double(), 0.02)
    assert torch.isfinite(got).all()
    assert_close(got.double(), ref, rtol=1e-5, atol=0)


# ------------------------------------------------------------------------------------------------ drift field


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), tau=st.floats(0.05, 3.0), kernel=st.sampled_from(KERNELS))
def test_population_field_is_antisymmetric_and_zero_at_equal_sets(seed, tau, kernel):
    x, y_p, y_q = sample(seed, (8, 3), (12, 3), (10, 3))
    assert_close(dm.drift_field(x, y_p, y_q, tau, kernel), -dm.drift_field(x, y_q, y_p, tau, kernel))
    assert_close(dm.drift_field(x, y_p, y_p.clone(), tau, kernel), torch.zeros_like(x), atol=1e-12)


def test_population_field_equals_its_joint_form():
    """V(x) = sum_{j,k} k~(x, y+_j) k~(x, y-_k) (y+_j - y-_k)."""
    tau = 0.7
    x, y_p, y_q = sample(10, (6, 2), (9, 2), (11, 2))
    w_p = torch.softmax(dm.kernel_logits(x, y_p, tau), dim=1)
    w_q = torch.softmax(dm.kernel_logits(x, y_q, tau), dim=1)
    joint = torch.einsum("nj,nk,jkd->nd", w_p, w_q, y_p[:, None, :] - y_q[None, :, :])
    assert_close(dm.drift_field(x, y_p, y_q, tau), joint)


@pytest.mark.parametrize("normalisation", NORMALISATIONS)
@pytest.mark.parametrize("kernel", KERNELS)
def test_batch_field_antisymmetric_and_zero_for_queries_outside_negatives(normalisation, kernel):
    x, y_p, y_q = sample(11, (10, 3), (14, 3), (12, 3))
    v = dm.batch_drift_field(x, y_p, y_q, 0.8, kernel, normalisation)
    assert_close(v, -dm.batch_drift_field(x, y_q, y_p, 0.8, kernel, normalisation))
    assert_close(dm.batch_drift_field(x, y_p, y_p.clone(), 0.8, kernel, normalisation), torch.zeros_like(x), atol=1e-12)


def test_batch_self_mask_breaks_the_zero_field_for_queries_among_the_negatives():
    (x,) = sample(12, (10, 3))
    assert dm.batch_drift_field(x, x.clone(), None, 0.8).norm() > 1e-3


def test_batch_double_softmax_matches_a_naive_loop():
    """Algorithm 2 written element by element: logits over [negatives | positives], self entry -inf."""
    tau = 0.5
    x, y_p = sample(13, (5, 2), (4, 2))
    targets = torch.cat([x, y_p])
    logits = torch.tensor(
        [[-float((x[i] - t).norm()) / tau if j != i else -math.inf for j, t in enumerate(targets)] for i in range(5)],
        dtype=torch.float64,
        device=DEVICE,
    )
    row = torch.exp(logits) / torch.exp(logits).sum(1, keepdim=True)
    col = torch.exp(logits) / torch.exp(logits).sum(0, keepdim=True)
    a = torch.sqrt(row * col)
    a_neg, a_pos = a[:, :5], a[:, 5:]
    w_pos, w_neg = a_pos * a_neg.sum(1, keepdim=True), a_neg * a_pos.sum(1, keepdim=True)
    assert_close(w_pos.sum(1), w_neg.sum(1))
    assert_close(dm.batch_drift_field(x, y_p, None, tau), w_pos @ y_p - w_neg @ x)


def test_targets_only_normalisation_is_a_rescaled_population_field():
    """With one softmax over [neg | pos] and cross-weighting, V = a (1 - a) (V+ - V-), a the positive mass."""
    tau = 0.6
    x, y_p, y_q = sample(14, (7, 2), (9, 2), (8, 2))
    logits = dm.kernel_logits(x, torch.cat([y_q, y_p]), tau, "laplace")
    a = torch.softmax(logits, dim=1)[:, 8:].sum(1, keepdim=True)
    expected = a * (1 - a) * dm.drift_field(x, y_p, y_q, tau, "laplace")
    assert_close(dm.batch_drift_field(x, y_p, y_q, tau, "laplace", "targets"), expected)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("normalisation", NORMALISATIONS)
def test_fields_are_stable_at_tau_002_in_float32(kernel, normalisation):
    """float32 against float64 at tau = 0.02: logits reach -10^4, softmaxes must not underflow to NaN."""
    x, y = sample(15, (256, 2), (256, 2), dtype=torch.float32)
    x, y = 2 * x, 2 * y
    got = dm.batch_drift_field(x, y, None, 0.02, kernel, normalisation)
    ref = dm.batch_drift_field(x.double(), y.double(), None, 0.02, kernel, normalisation)
    assert torch.isfinite(got).all()
    assert ((got.double() - ref).norm() / ref.norm()).item() < 1e-4
    pop = dm.drift_field(x, y, x, 0.02, kernel)
    pop_ref = dm.drift_field(x.double(), y.double(), x.double(), 0.02, kernel)
    assert ((pop.double() - pop_ref).norm() / pop_ref.norm()).item() < 1e-4


def test_field_under_bf16_autocast_is_float32_and_finite():
    x, y = sample(16, (128, 8), (128, 8), dtype=torch.float32)
    with torch.autocast(device_type=DEVICE.type, dtype=torch.bfloat16):
        v = dm.batch_drift_field(x.bfloat16(), y, None, 0.02)
    assert v.dtype == torch.float32 and torch.isfinite(v).all()
    ref = dm.batch_drift_field(x.bfloat16().double(), y.double(), None, 0.02)
    assert ((v.double() - ref).norm() / ref.norm()).item() < 1e-4


def test_multi_temperature_normalisation_gives_unit_mean_square_terms():
    x, y = sample(17, (32, 4), (40, 4))
    total, raw = dm.multi_temperature_drift(x, y, None, taus=(0.5,))
    assert math.isclose(total.square().mean().item(), 1.0, rel_tol=1e-9)
    v = dm.batch_drift_field(x, y, None, 0.5)
    assert math.isclose(raw[0], v.square().sum(1).mean().item(), rel_tol=1e-9)
    unnormalised, _ = dm.multi_temperature_drift(x, y, None, (0.2, 0.5), normalise_each=False)
    assert_close(unnormalised, dm.batch_drift_field(x, y, None, 0.2) + v)
    with pytest.raises(ValueError, match="taus"):
        dm.multi_temperature_drift(x, y, None, taus=())


# ------------------------------------------------------------------------------------------------------ loss


def test_drift_regression_loss_value_is_mean_squared_drift_and_gradient_is_minus_two_v_over_n():
    x, v = sample(18, (20, 3), (20, 3))
    x.requires_grad_(True)
    v = v.requires_grad_(True)
    loss = dm.drift_regression_loss(x, v)
    assert math.isclose(loss.item(), v.detach().square().sum(1).mean().item(), rel_tol=1e-12)
    loss.backward()
    assert_close(x.grad, -2 * v.detach() / 20)
    assert v.grad is None, "the drift must be a constant: stop-gradient"


def test_drifting_loss_gradient_is_minus_two_v_over_n():
    x, y = sample(19, (16, 2), (24, 2))
    x.requires_grad_(True)
    loss, stats = dm.drifting_loss(x, y, taus=(0.05, 0.2))
    loss.backward()
    v, raw = dm.multi_temperature_drift(x.detach(), y, None, (0.05, 0.2))
    assert_close(x.grad, -2 * v / 16)
    assert stats["raw_drift_sq"] == raw


def test_drift_regression_loss_rejects_mismatched_shapes():
    x, v = sample(20, (5, 3), (5, 2))
    with pytest.raises(ValueError, match="shape"):
        dm.drift_regression_loss(x, v)
