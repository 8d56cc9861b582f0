"""The drift field: how far, and in which direction, each generated sample should move.

Population form (lessons 02-03). The mean shift towards a set of targets y_1..y_M is

    V_y(x) = sum_j k~(x, y_j) (y_j - x),        k~(x, y_j) = softmax_j log k(x, y_j),

and the drift field is V(x) = V+(x) - V-(x), towards the positives (data) and away from the negatives
(generated samples). It is anti-symmetric (swapping the two sets negates it) and zero when they are the same
set. For the Gaussian kernel V+ = tau^2 grad log p_tau, so V = tau^2 (grad log p_tau - grad log q_tau).

Batch form (lesson 03's last exercise onwards, Algorithm 2 of the paper). Over the targets
[negatives | positives], logits l_ij = log k(x_i, y_j); a generated sample is excluded from its own negatives by
l_ii = -inf. The affinity is the geometric mean of a softmax over targets and one over queries,

    A = sqrt(softmax_j(l) * softmax_i(l)),     W+ = A+ * rowsum(A-),   W- = A- * rowsum(A+),
    V = W+ y+ - W- y-.

The rows of W+ and W- have the same sum, so the "- x" terms cancel and need not be written.

Two-sided (Sinkhorn) coupling (lesson 08, after arXiv 2603.12366). Each set of targets gets its own coupling
P = diag(e^a) exp(l) diag(e^b), scaled so that its rows sum to 1/N and its columns to 1/M (``sinkhorn_coupling``),
and each query moves to its barycentric targets:

    V = P+ y+ / rowsum(P+) - P- y- / rowsum(P-).

With the queries as their own negatives the self coupling keeps its diagonal (it is the Sinkhorn divergence's
self term), so V = 0 exactly when y+ is the same set as x: zero drift at q = p, which the one-sided weights
above cannot promise at low temperature.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Literal

import torch

from .kernels import check_samples, full_precision, kernel_logits, logits_from_distances, pairwise_distances

Normalisation = Literal["double", "targets", "uncoupled", "sinkhorn"]
SINKHORN_ITERATIONS = 10


@full_precision
def mean_shift(x: torch.Tensor, targets: torch.Tensor, tau: float, kernel: str = "gaussian") -> torch.Tensor:
    """V_y(x) = sum_j softmax_j(log k(x, y_j)) y_j - x, shape N x D (population form)."""
    weights = torch.softmax(kernel_logits(x, targets, tau, kernel), dim=1)
    return weights @ targets.to(weights.dtype) - x.to(weights.dtype)


def drift_field(
    x: torch.Tensor, y_pos: torch.Tensor, y_neg: torch.Tensor, tau: float, kernel: str = "gaussian"
) -> torch.Tensor:
    """V(x) = V+(x) - V-(x) in population form: no self-mask, no clipping."""
    return mean_shift(x, y_pos, tau, kernel) - mean_shift(x, y_neg, tau, kernel)


@full_precision
def batch_drift_field(
    x: torch.Tensor,
    y_pos: torch.Tensor,
    y_neg: torch.Tensor | None = None,
    tau: float = 0.05,
    kernel: str = "laplace",
    normalisation: Normalisation = "double",
) -> torch.Tensor:
    """The batch drift field, shape N x D.

    Args:
        x: generated samples (queries), N x D.
        y_pos: positives (data), M x D.
        y_neg: negatives, K x D. ``None`` means "the queries themselves", each excluded from its own
            negatives by a logit of exactly -inf (then V = 0 at y_pos = x does *not* hold).
        tau: temperature.
        kernel: "laplace" (logits -|x - y| / tau, the paper's) or "gaussian" (-|x - y|^2 / (2 tau^2)).
        normalisation: "double" (softmax over targets and over queries, geometric mean, cross-weighted),
            "targets" (softmax over targets only, cross-weighted), "uncoupled" (separate softmaxes over
            positives and over negatives: the population form V+ - V-) or "sinkhorn" (a two-sided coupling with
            each set of targets, ``sinkhorn_coupling``; with y_neg None the self coupling is not masked).
    """
    return batch_drift_fields(x, y_pos, y_neg, [tau], kernel, normalisation)[0]


@full_precision
def batch_drift_fields(
    x: torch.Tensor,
    y_pos: torch.Tensor,
    y_neg: torch.Tensor | None,
    taus: Sequence[float],
    kernel: str = "laplace",
    normalisation: Normalisation = "double",
) -> list[torch.Tensor]:
    """``batch_drift_field`` at each temperature of ``taus`` (a list of N x D fields); the distances between the
    queries and the targets are computed once for all of them."""
    check_samples("x", x)
    self_negatives = y_neg is None
    if self_negatives:
        if x.shape[0] < 2:
            raise ValueError("with the queries as their own negatives, at least two queries are needed")
        y_neg = x.detach()
    check_samples("y_neg", y_neg, dim=x.shape[1])
    check_samples("y_pos", y_pos, dim=x.shape[1])
    n_neg = y_neg.shape[0]
    dist = pairwise_distances(x.detach(), torch.cat([y_neg.detach(), y_pos.detach()]))
    y_neg, y_pos = y_neg.detach().to(dist.dtype), y_pos.detach().to(dist.dtype)
    fields = []
    for tau in taus:
        logits = logits_from_distances(dist, tau, kernel)
        if self_negatives and normalisation != "sinkhorn":
            logits[:, :n_neg].diagonal().fill_(float("-inf"))
        fields.append(_field_from_logits(logits, y_neg, y_pos, normalisation))
    return fields


def _field_from_logits(
    logits: torch.Tensor, y_neg: torch.Tensor, y_pos: torch.Tensor, normalisation: Normalisation
) -> torch.Tensor:
    """V from the logits over the targets [negatives | positives] (N x (K + M)), with the chosen normalisation."""
    n_neg = y_neg.shape[0]
    if normalisation == "sinkhorn":
        p_neg, p_pos = sinkhorn_coupling(logits[:, :n_neg]), sinkhorn_coupling(logits[:, n_neg:])
        return p_pos @ y_pos / p_pos.sum(1, keepdim=True) - p_neg @ y_neg / p_neg.sum(1, keepdim=True)
    if normalisation == "uncoupled":
        w_neg = torch.softmax(logits[:, :n_neg], dim=1)
        w_pos = torch.softmax(logits[:, n_neg:], dim=1)
        return w_pos @ y_pos - w_neg @ y_neg
    if normalisation == "double":
        # sqrt(softmax_j(l) * softmax_i(l)), the geometric mean taken in log space: no spurious underflow of the
        # product (only an affinity truly below float range rounds to 0)
        affinity = torch.exp(0.5 * (logits.log_softmax(dim=1) + logits.log_softmax(dim=0)))
    elif normalisation == "targets":
        affinity = torch.softmax(logits, dim=1)
    else:
        raise ValueError(f"unknown normalisation {normalisation!r}; choose double, targets, uncoupled or sinkhorn")
    a_neg, a_pos = affinity[:, :n_neg], affinity[:, n_neg:]
    w_pos = a_pos * a_neg.sum(1, keepdim=True)
    w_neg = a_neg * a_pos.sum(1, keepdim=True)
    return w_pos @ y_pos - w_neg @ y_neg


def sinkhorn_coupling(logits: torch.Tensor, iterations: int = SINKHORN_ITERATIONS) -> torch.Tensor:
    """The entropic coupling P_ij = u_i exp(l_ij) v_j whose rows sum to 1/N and columns to 1/M (N x M).

    Sinkhorn's iterations, alternately scaling the rows and the columns, from v = 1:

        u_i = 1 / (N sum_j exp(l_ij) v_j),        v_j = 1 / (M sum_i u_i exp(l_ij)),

    (in log space a_i = log u_i = -log N - logsumexp_j(l_ij + b_j), likewise b). The last update is v's, so the
    columns sum to 1/M exactly and the rows to 1/N up to the iterations' error, which grows as the temperature
    falls. One row scaling alone is the one-sided coupling, softmax_j(l_ij) / N.

    The scalings run in float64 on exp(l - max_j l), a matrix-vector product a half-step; where a column of that
    matrix is below 1e-200 everywhere (a target far beyond every query at a small temperature) they run in log
    space instead, which cannot underflow.
    """
    if iterations < 1:
        raise ValueError(f"sinkhorn_coupling needs at least one iteration, got {iterations}")
    n, m = logits.shape
    logits64 = logits.double()
    kernel = torch.exp(logits64 - logits64.amax(1, keepdim=True))  # each row's largest entry is 1
    if (kernel.amax(0) > 1e-200).all():
        v = torch.ones(m, dtype=kernel.dtype, device=kernel.device)
        for _ in range(iterations):
            u = 1.0 / (n * (kernel @ v))
            v = 1.0 / (m * (kernel.T @ u))
        return (u[:, None] * kernel * v).to(logits.dtype)
    b = torch.zeros(m, dtype=logits64.dtype, device=logits64.device)
    for _ in range(iterations):
        a = -math.log(n) - torch.logsumexp(logits64 + b, dim=1)
        b = -math.log(m) - torch.logsumexp(logits64 + a[:, None], dim=0)
    return torch.exp(logits64 + a[:, None] + b).to(logits.dtype)


def multi_temperature_drift(
    x: torch.Tensor,
    y_pos: torch.Tensor,
    y_neg: torch.Tensor | None = None,
    taus: Iterable[float] = (0.02, 0.05, 0.2),
    kernel: str = "laplace",
    normalisation: Normalisation = "double",
    normalise_each: bool = True,
) -> tuple[torch.Tensor, list[float]]:
    """V = sum_tau V_tau / rms(V_tau), with rms(V) = sqrt(mean over samples and dims of V^2).

    Dividing each temperature's field by its root mean square makes every temperature pull with the same
    strength, whatever its raw scale. Returns the summed field and each temperature's raw mean |V_tau|^2
    (the number worth logging: the loss itself stays near a constant once fields are normalised).
    """
    total = None
    raw_energy = []
    for v in batch_drift_fields(x, y_pos, y_neg, list(taus), kernel, normalisation):
        raw_energy.append(float(v.square().sum(1).mean()))
        if normalise_each:
            v = v / v.square().mean().sqrt().clamp_min(1e-12)
        total = v if total is None else total + v
    if total is None:
        raise ValueError("taus is empty: give at least one temperature")
    return total, raw_energy
