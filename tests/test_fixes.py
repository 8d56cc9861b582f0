"""Identities of lesson 08's options: the two-sided (Sinkhorn) coupling of the batch field and the annealed
temperatures of the toys; and that both leave the defaults unchanged when they are off."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

import drifting_min as dm
from drifting_min import toys
from drifting_min.cli import config_from_args
from drifting_min.drift import SINKHORN_ITERATIONS, sinkhorn_coupling
from drifting_min.toys.command import parser


def sample(seed, *shapes):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=g, dtype=torch.float64) for s in shapes]


def log_domain_sinkhorn(logits, iterations):
    """An independent log-space reference: a_i, b_j alternately from b = 0, the last update b's."""
    n, m = logits.shape
    b = torch.zeros(m, dtype=torch.float64)
    for _ in range(iterations):
        a = -math.log(n) - torch.logsumexp(logits + b, dim=1)
        b = -math.log(m) - torch.logsumexp(logits + a[:, None], dim=0)
    return torch.exp(logits + a[:, None] + b)


@pytest.mark.parametrize("shape", [(7, 11), (12, 5), (9, 9)])
def test_sinkhorn_marginals(shape):
    """Columns sum to 1/M after every call; rows to 1/N once the iterations have converged (tau ~ the spread)."""
    x, y = sample(0, (shape[0], 2), (shape[1], 2))
    logits = -torch.cdist(x, y) / 1.0
    for iterations in (1, 3, SINKHORN_ITERATIONS):
        p = sinkhorn_coupling(logits, iterations)
        torch.testing.assert_close(p.sum(0), torch.full((shape[1],), 1 / shape[1], dtype=torch.float64))
        assert (p >= 0).all()
    p = sinkhorn_coupling(logits, 300)
    torch.testing.assert_close(p.sum(1), torch.full((shape[0],), 1 / shape[0], dtype=torch.float64))


def test_sinkhorn_matches_log_space_on_both_paths():
    """The float64 scaling path and the log-space path (taken when a column underflows) give the same coupling."""
    x, y = sample(1, (8, 2), (10, 2))
    logits = -torch.cdist(x, y) / 0.3
    torch.testing.assert_close(sinkhorn_coupling(logits, 20), log_domain_sinkhorn(logits, 20))
    far = logits.clone()
    far[:, 3] -= 1000.0  # exp underflows for the whole column: the log-space path must take over
    p = sinkhorn_coupling(far, 20)
    assert torch.isfinite(p).all()
    torch.testing.assert_close(p, log_domain_sinkhorn(far, 20))
    torch.testing.assert_close(p.sum(0), torch.full((10,), 0.1, dtype=torch.float64))


def test_sinkhorn_ignores_constants_added_to_rows_and_columns():
    """l_ij + r_i + c_j has the same coupling: the scalings absorb any row or column factor."""
    x, y = sample(2, (6, 3), (9, 3))
    logits = -torch.cdist(x, y) / 0.5
    r, c = sample(3, (6,), (9,))
    torch.testing.assert_close(sinkhorn_coupling(logits + 5 * r[:, None] + 5 * c, 40), sinkhorn_coupling(logits, 40))


def test_sinkhorn_keeps_float32_and_rejects_zero_iterations():
    x, y = sample(4, (5, 2), (6, 2))
    p = sinkhorn_coupling((-torch.cdist(x, y) / 0.02).float())
    assert p.dtype == torch.float32 and torch.isfinite(p).all()
    with pytest.raises(ValueError, match="iteration"):
        sinkhorn_coupling(-torch.cdist(x, y), 0)


@pytest.mark.parametrize("kernel", ["laplace", "gaussian"])
def test_sinkhorn_field_antisymmetric_and_zero_at_equal_sets(kernel):
    x, y_p, y_q = sample(5, (10, 3), (14, 3), (12, 3))
    v = dm.batch_drift_field(x, y_p, y_q, 0.8, kernel, "sinkhorn")
    torch.testing.assert_close(v, -dm.batch_drift_field(x, y_q, y_p, 0.8, kernel, "sinkhorn"))
    torch.testing.assert_close(dm.batch_drift_field(x, y_p, y_p.clone(), 0.8, kernel, "sinkhorn"),
                               torch.zeros_like(x), atol=1e-12, rtol=0)


def test_sinkhorn_field_is_zero_when_the_data_is_the_generated_set():
    """With the queries as their own negatives (self coupling unmasked), V = 0 when y+ is x in any order; the
    one-sided double softmax, whose self entry is masked, is not."""
    (x,) = sample(6, (16, 2))
    y_pos = x[torch.randperm(16, generator=torch.Generator().manual_seed(0))]
    for tau in (0.05, 0.5, 2.0):
        v = dm.batch_drift_field(x, y_pos, None, tau, normalisation="sinkhorn")
        torch.testing.assert_close(v, torch.zeros_like(x), atol=1e-10, rtol=0)
    assert dm.batch_drift_field(x, y_pos, None, 0.5).norm() > 1e-3


def test_collapsed_pairs_stall_the_one_sided_fields_but_not_sinkhorn():
    """Data at -1 and +1, both generated samples at -1: q covers half of p. The attraction to -1 cancels the
    repulsion from the twin; what is left is the pull of +1, e^(-2 / tau) with the softmax over targets and
    e^(-1 / tau) with the double softmax (the square root of a row weight e^(-2 / tau) and a column weight 1/2).
    Sinkhorn's column constraint gives +1 half the mass: it pulls both samples by +1."""
    x = torch.tensor([[-1.0], [-1.0]], dtype=torch.float64)
    y_pos = torch.tensor([[-1.0], [1.0]], dtype=torch.float64)
    tau = 0.05
    targets = dm.batch_drift_field(x, y_pos, None, tau, normalisation="targets")
    double = dm.batch_drift_field(x, y_pos, None, tau, normalisation="double")
    # (the e^(-2 / tau) of the softmax over targets is even below float64 rounding next to the cancelling terms)
    assert targets.abs().max() < 3 * math.exp(-2 / tau) and double.abs().max() < 3 * math.exp(-1 / tau)
    v = dm.batch_drift_field(x, y_pos, None, 0.05, normalisation="sinkhorn")
    torch.testing.assert_close(v, torch.ones_like(x))


def test_annealed_taus_endpoints_and_geometric_decay():
    cfg = toys.ToyConfig(steps=11, taus=(0.02, 0.2), tau_anneal=4.0)
    schedule = [toys.annealed_taus(step, cfg) for step in range(cfg.steps)]
    assert schedule[0] == pytest.approx((0.08, 0.8)) and schedule[-1] == pytest.approx((0.02, 0.2))
    ratios = [b[0] / a[0] for a, b in zip(schedule, schedule[1:])]
    assert ratios == pytest.approx([4.0 ** -0.1] * 10)


def test_options_off_leave_the_defaults_unchanged():
    """tau_anneal = 1 gives the configured temperatures at every step, and the field of a step is the default one."""
    cfg = toys.ToyConfig()
    assert cfg.tau_anneal == 1.0 and cfg.normalisation == "double"
    assert all(toys.annealed_taus(step, cfg) == cfg.taus for step in (0, 1, 1500, cfg.steps - 1))
    x, y = sample(7, (64, 2), (64, 2))
    v, raw = toys.toy_drift_field(x, y, cfg, toys.annealed_taus(17, cfg))
    v_ref, raw_ref = dm.multi_temperature_drift(x, y, None, cfg.taus, "laplace", "double", True)
    assert torch.equal(v, v_ref) and raw == raw_ref


def test_options_reach_the_toy_command_and_are_checked():
    args = parser().parse_args(["--normalisation", "sinkhorn", "--tau-anneal", "4"])
    cfg = config_from_args(toys.ToyConfig, args)
    assert cfg.normalisation == "sinkhorn" and cfg.tau_anneal == 4.0
    with pytest.raises(ValueError, match="tau_anneal"):
        toys.ToyConfig(tau_anneal=0.5)


def test_a_short_sinkhorn_annealed_run_trains():
    cfg = toys.ToyConfig(dataset="eight_gaussians", steps=5, batch_gen=32, batch_data=32, hidden=16, depth=1,
                         normalisation="sinkhorn", tau_anneal=4.0)
    run = toys.train(cfg, progress=False, evaluate=False)
    assert all(math.isfinite(entry["loss"]) for entry in run.log)
    assert dataclasses.asdict(run.config)["tau_anneal"] == 4.0
