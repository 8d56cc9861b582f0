# Lesson 08 exercises: fill in every `raise NotImplementedError(...)`, then run `pytest lessons/08`.
# This file is generated from solutions/08/exercises.py by `make exercises`. It is yours to edit:
# the generator refuses to overwrite it once you have changed it.
"""Lesson 08: when the field lies. Failure modes of drifting and the fixes proposed since.

Notation (the course's): x (N x D) generated samples, y+ (M x D) data, tau a temperature, l_ij = log k(x_i, y_j)
the kernel's logits (Laplace: -|x_i - y_j| / tau). A coupling P (N x M) is a table of non-negative weights; its
row sums and column sums are its marginals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

import drifting_min as dm
from drifting_min.drift import SINKHORN_ITERATIONS


def sinkhorn_coupling(logits: torch.Tensor, iterations: int = SINKHORN_ITERATIONS) -> torch.Tensor:
    """The two-sided (entropic) coupling of a table of logits l (N x M).

    P_ij = exp(l_ij + a_i + b_j), with the potentials a (N) and b (M) found by Sinkhorn's iterations in log space,
    starting from b = 0 and repeating ``iterations`` times

        a_i = -log N - logsumexp_j (l_ij + b_j)        (rows now sum to 1/N)
        b_j = -log M - logsumexp_i (l_ij + a_i)        (columns now sum to 1/M)

    The last update is b's, so the columns sum to exactly 1/M; the rows sum to 1/N up to the iterations' error.

    Returns:
        P, N x M, in the dtype of ``logits``.
    """
    raise NotImplementedError('Exercise 8.1 `sinkhorn_coupling` is not implemented yet. Hint: b = zeros(M); repeat: a = -log N - logsumexp(l + b, dim=1), then b = -log M - logsumexp(l + a[:, None], dim=0); return exp(l + a[:, None] + b)')


def sinkhorn_field(
    x: torch.Tensor,
    y_pos: torch.Tensor,
    tau: float,
    kernel: str = "laplace",
    iterations: int = SINKHORN_ITERATIONS,
) -> torch.Tensor:
    """The batch drift field with two-sided couplings, the generated samples being their own negatives.

        P+ = sinkhorn_coupling(log k(x, y+)),   P- = sinkhorn_coupling(log k(x, x))   (the diagonal is kept:
                                                                                         no self-mask)
        V_i = sum_j P+_ij y+_j / sum_j P+_ij  -  sum_k P-_ik x_k / sum_k P-_ik

    Each query moves to its barycentre under the data coupling, minus its barycentre under the self coupling.
    The logits are dm.kernel_logits(x, targets, tau, kernel). The field is a target: no autograd graph.

    Returns:
        V, N x D, in the dtype of x.
    """
    raise NotImplementedError('Exercise 8.2 `sinkhorn_field` is not implemented yet. Hint: detach x and y+; P+ from the logits of (x, y+), P- from those of (x, x) with the diagonal kept; V = P+ y+ / rowsum(P+) - P- x / rowsum(P-)')


def kernel_overlap(x: torch.Tensor, y: torch.Tensor, tau: float, kernel: str = "laplace") -> torch.Tensor:
    """How much of the data's own kernel mass the generated samples see:

        overlap = mean_ij k(x_i, y_j) / mean_jj' k(y_j, y_j')

    both means over all pairs (the diagonal k(y_j, y_j) = 1 included), with k = exp(dm.kernel_logits(...)).
    It is 1 when x is the same set as y; moving a share s of the generated samples far from every data point
    lowers it to about (1 - s) of its value.

    Returns:
        A 0-dimensional tensor in the dtype of x.
    """
    raise NotImplementedError('Exercise 8.3 `kernel_overlap` is not implemented yet. Hint: the mean of exp(kernel_logits(x, y)) over all N x M pairs divided by the mean of exp(kernel_logits(y, y)) over all M x M pairs')


def annealed_taus(step: int, steps: int, taus: Sequence[float], factor: float) -> tuple[float, ...]:
    """Temperatures shrinking exponentially over training, from ``factor`` times each tau down to tau itself:

        tau(t) = tau * factor ** (1 - t),        t = step / (steps - 1)   (t = 0 when steps = 1)

    That is tau(t) = tau_0 exp(-r t) with tau_0 = factor * tau and r = log(factor): step 0 uses factor * tau,
    the last step (steps - 1) uses tau, and factor = 1 keeps the temperatures constant.

    Returns:
        A tuple of floats, one per temperature.
    """
    raise NotImplementedError('Exercise 8.4 `annealed_taus` is not implemented yet. Hint: t = step / max(steps - 1, 1); return tuple(tau * factor ** (1 - t) for tau in taus)')


def pulled_back_field(
    x: torch.Tensor, y_pos: torch.Tensor, feature_map: Callable[[torch.Tensor], torch.Tensor], tau: float
) -> torch.Tensor:
    """Where the drift loss in a feature space moves the samples themselves.

    The field is computed on the features, V = dm.batch_drift_field(phi(x), phi(y+), None, tau) (defaults:
    Laplace, double softmax, the generated features their own negatives), and the loss
    L = (1/N) sum_i |phi(x_i) - stopgrad(phi(x_i) + V_i)|^2 moves x along -dL/dx = (2/N) J(x_i)^T V_i, with
    J = dphi/dx the map's Jacobian. Return J(x_i)^T V_i (N x D): the feature field pulled back to the samples.

    Returns:
        N x D in the dtype of x, with no autograd graph.
    """
    raise NotImplementedError('Exercise 8.5 `pulled_back_field` is not implemented yet. Hint: x = x.detach().requires_grad_(True); f = phi(x); V without a graph; J^T V = torch.autograd.grad((f * V).sum(), x)')
