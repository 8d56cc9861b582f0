"""Lesson 03: mean shift and the drift field.

Notation: queries x are N x D, positives (data) y+ are M x D, negatives y- are K x D, tau is the temperature.
Gaussian kernel k(x, y) = exp(-|x - y|^2 / (2 tau^2)); Laplace kernel k(x, y) = exp(-|x - y| / tau).
k~(x, y_j) = softmax_j(log k(x, y_j)) is the kernel normalised over a target set.

Check your answers with `pytest lessons/03` (one exercise alone: `pytest lessons/03 -k ex3_1`).
"""

from __future__ import annotations

import torch

import drifting_min as dm  # lesson 02's tools (pairwise_distances, kernel_logits) are yours to use


def mean_shift(x: torch.Tensor, targets: torch.Tensor, tau: float, kernel: str = "gaussian") -> torch.Tensor:
    """Exercise 3.1. The mean shift of each query towards a set of targets (population form).

        V_y(x_i) = sum_j k~(x_i, y_j) (y_j - x_i),     k~(x_i, y_j) = softmax_j(log k(x_i, y_j))

    with log k = -|x - y|^2 / (2 tau^2) for kernel="gaussian" and log k = -|x - y| / tau for "laplace".

    Args:
        x: queries, N x D.
        targets: the targets y_1..y_M, M x D.
        tau: the temperature (> 0).
        kernel: "gaussian" or "laplace".

    Returns:
        V_y(x), N x D, in the dtype of x. For the Gaussian kernel it equals tau^2 times the score of the KDE of
        the targets: V_y(x) = tau^2 grad log p_tau(x).
    """
    # BEGIN SOLUTION 3.1: logits N x M from plain distances (dm.pairwise_distances), then weights = softmax over the targets (dim=1); return weights @ targets - x
    # Distances d_ij = |x_i - y_j|, N x M (exact differences, any dtype that is at least float32).
    dist = dm.pairwise_distances(x, targets)
    # The kernel's logits: squared distance over 2 tau^2 (Gaussian), plain distance over tau (Laplace).
    if kernel == "gaussian":
        logits = -dist.square() / (2.0 * tau**2)
    elif kernel == "laplace":
        logits = -dist / tau
    else:
        raise ValueError(f"unknown kernel {kernel!r}")
    # k~: normalise over the targets, one softmax per query (a row). Softmax never gives 0/0.
    weights = torch.softmax(logits, dim=1)
    # sum_j k~_ij (y_j - x_i) = (sum_j k~_ij y_j) - x_i, because the weights of each row sum to one.
    return weights @ targets.to(weights.dtype) - x.to(weights.dtype)
    # END SOLUTION


def find_modes(x0: torch.Tensor, data: torch.Tensor, tau: float, n_steps: int = 50) -> torch.Tensor:
    """Exercise 3.2. Mean-shift iterations with the Gaussian kernel: x_{t+1} = x_t + V+(x_t).

    Each step moves every query to the kernel-weighted mean of the data around it; with the Gaussian kernel this
    is a gradient-ascent step on the KDE log-density with step size tau^2, x + tau^2 grad log p_tau(x), and the
    density never decreases along the way (Comaniciu and Meer 2002). The iterations stop at the modes of p_tau.

    Args:
        x0: starting points, N x D.
        data: the data y+, M x D, which stay fixed.
        tau: the Gaussian kernel's bandwidth.
        n_steps: the number of mean-shift steps.

    Returns:
        The whole path, (n_steps + 1) x N x D: path[0] = x0, path[t + 1] = path[t] + V+(path[t]).
        path[-1] holds the modes found.
    """
    # BEGIN SOLUTION 3.2: keep a list that starts with x0; at each step append x + mean_shift(x, data, tau) (your 3.1), then torch.stack
    path = [x0]
    x = x0
    for _ in range(n_steps):
        # One step: jump to the weighted mean of the data (the mean shift is "where to go" minus "where I am").
        x = x + mean_shift(x, data, tau, "gaussian")
        path.append(x)
    return torch.stack(path)
    # END SOLUTION


def drift_field(
    x: torch.Tensor, y_pos: torch.Tensor, y_neg: torch.Tensor, tau: float, kernel: str = "gaussian"
) -> torch.Tensor:
    """Exercise 3.3. The drift field in population form: V(x) = V+(x) - V-(x).

        V+(x) = sum_j k~(x, y+_j) (y+_j - x),     V-(x) = sum_k k~(x, y-_k) (y-_k - x)

    each normalised over its own set. Attraction to the positives, repulsion from the negatives; no mask.

    Args:
        x: queries, N x D.  y_pos: positives, M x D.  y_neg: negatives, K x D.
        tau: the temperature.  kernel: "gaussian" or "laplace".

    Returns:
        V(x), N x D. It is anti-symmetric (swapping y_pos and y_neg negates it) and zero when the two sets are
        the same.
    """
    # BEGIN SOLUTION 3.3: two mean shifts (your 3.1), one towards y_pos and one towards y_neg, each normalised over its own set; subtract
    v_pos = mean_shift(x, y_pos, tau, kernel)  # attraction: towards the data
    v_neg = mean_shift(x, y_neg, tau, kernel)  # repulsion: away from the generated samples
    # The "- x" inside V+ and V- cancels here: V = sum_j k~+_j y+_j - sum_k k~-_k y-_k.
    return v_pos - v_neg
    # END SOLUTION


def drift_field_joint(
    x: torch.Tensor, y_pos: torch.Tensor, y_neg: torch.Tensor, tau: float, kernel: str = "gaussian"
) -> torch.Tensor:
    """Exercise 3.4. The drift field in its joint form, as an average over pairs (y+_j, y-_k):

        V(x_i) = sum_j sum_k k~(x_i, y+_j) k~(x_i, y-_k) (y+_j - y-_k)
               = E[k(x, y+) k(x, y-) (y+ - y-)] / (Z_p(x) Z_q(x))

    with k~ normalised over its own set (Z_p = sum_j k(x, y+_j), Z_q = sum_k k(x, y-_k)). Compute the double sum
    over the pairs as written (an M x K x D tensor of differences is fine at this size); do not reuse 3.3.

    Args:
        x: queries, N x D.  y_pos: positives, M x D.  y_neg: negatives, K x D.
        tau: the temperature.  kernel: "gaussian" or "laplace".

    Returns:
        V(x), N x D; it equals drift_field(x, y_pos, y_neg, tau, kernel).
    """
    # BEGIN SOLUTION 3.4: w_pos = softmax over y_pos (N x M), w_neg = softmax over y_neg (N x K), diff[j, k] = y_pos[j] - y_neg[k]; torch.einsum("ij,ik,jkd->id", ...)
    # The normalised kernels, each over its own set (dm.kernel_logits gives the logits of lesson 02).
    w_pos = torch.softmax(dm.kernel_logits(x, y_pos, tau, kernel), dim=1)  # N x M, rows sum to 1
    w_neg = torch.softmax(dm.kernel_logits(x, y_neg, tau, kernel), dim=1)  # N x K, rows sum to 1
    # Every pair's difference y+_j - y-_k: M x K x D. No "x" appears: it cancelled in the derivation.
    diff = y_pos.to(w_pos.dtype)[:, None, :] - y_neg.to(w_pos.dtype)[None, :, :]
    # For each query, the pair weights w_pos[i, j] * w_neg[i, k] sum to one: a weighted mean of differences.
    return torch.einsum("ij,ik,jkd->id", w_pos, w_neg, diff)
    # END SOLUTION


def laplace_preconditioner(x: torch.Tensor, data: torch.Tensor, tau: float) -> torch.Tensor:
    """Exercise 3.5. The preconditioner of the Laplace mean shift, rho(x) = tau (tau + r_bar(x)).

    For a radial kernel kappa(r) and K(r) = integral_r^inf s kappa(s) ds, the mean shift towards the data is a
    preconditioned score: V+(x) = rho(x) grad log (p * K)(x) with rho = (p * K)(x) / (p * kappa)(x). For the
    Laplace kernel kappa(r) = exp(-r / tau), K(r) = tau (r + tau) exp(-r / tau), and

        rho(x) = tau (tau + r_bar(x)),     r_bar(x) = sum_j k~(x, y_j) |x - y_j|,

    the kernel-weighted mean distance from x to the data (k~ with the Laplace logits -|x - y_j| / tau).

    Args:
        x: queries, N x D.  data: the data, M x D.  tau: the Laplace kernel's temperature.

    Returns:
        rho(x), shape N x 1 (so that rho * grad log (p * K) broadcasts over the D dimensions).
    """
    # BEGIN SOLUTION 3.5: plain distances r (N x M), weights softmax(-r / tau) over the data (dim=1), r_bar = (weights * r).sum(1, keepdim=True); return tau * (tau + r_bar)
    r = dm.pairwise_distances(x, data)  # N x M, plain distances
    weights = torch.softmax(-r / tau, dim=1)  # the Laplace k~, one row per query
    r_bar = (weights * r).sum(dim=1, keepdim=True)  # N x 1: how far the data that x "sees" lies on average
    # (p * K) / (p * kappa) = sum_j tau (r_j + tau) k_j / sum_j k_j = tau (tau + r_bar).
    return tau * (tau + r_bar)
    # END SOLUTION


def batch_drift_field(
    x: torch.Tensor,
    y_pos: torch.Tensor,
    y_neg: torch.Tensor | None = None,
    tau: float = 0.05,
    kernel: str = "laplace",
) -> torch.Tensor:
    """Exercise 3.6. The batch drift field with the "double softmax" normalisation (the paper's Algorithm 2).

    Targets are [negatives | positives] (K + M of them). With logits l_ij = log k(x_i, y_j) (Laplace: -|x - y| / tau
    on plain distances),

        A  = sqrt(softmax_j(l) * softmax_i(l))          (softmax over the targets, and over the queries)
        A- = A[:, :K],  A+ = A[:, K:]
        W+ = A+ * rowsum(A-),   W- = A- * rowsum(A+)    (cross-weighting)
        V  = W+ y+ - W- y-                             (N x D)

    When y_neg is None the queries are their own negatives (y- = x, K = N), and each query is excluded from
    its own negatives by the logit l_ii = -inf (exactly minus infinity, not a large number). The field is a
    constant: compute it from x.detach().

    Args:
        x: queries, N x D.  y_pos: positives, M x D.  y_neg: negatives, K x D, or None for "x itself".
        tau: the temperature.  kernel: "laplace" (the paper's) or "gaussian".

    Returns:
        V, N x D. The rows of W+ and W- have the same sums, so V needs no "- x" term.
    """
    # BEGIN SOLUTION 3.6: logits over torch.cat([y_neg, y_pos]); if y_neg is None set the diagonal of the negative block to -inf; A = exp((log_softmax(l, 1) + log_softmax(l, 0)) / 2); cross-weight
    x = x.detach()
    self_negatives = y_neg is None
    if self_negatives:
        y_neg = x
    y_neg, y_pos = y_neg.detach(), y_pos.detach()
    n_neg = y_neg.shape[0]
    # Logits against all targets at once, negatives first: N x (K + M).
    logits = dm.kernel_logits(x, torch.cat([y_neg, y_pos]), tau, kernel)
    if self_negatives:
        # Query i must not repel itself: remove target i of the negative block, exactly.
        mask = torch.eye(x.shape[0], n_neg, dtype=torch.bool, device=x.device)
        logits[:, :n_neg] = logits[:, :n_neg].masked_fill(mask, float("-inf"))
    # The geometric mean of the two softmaxes, taken in log space so that neither underflows:
    # log A = (log softmax over targets + log softmax over queries) / 2; exp(-inf) = 0 for the masked entries.
    affinity = torch.exp(0.5 * (torch.log_softmax(logits, dim=1) + torch.log_softmax(logits, dim=0)))
    a_neg, a_pos = affinity[:, :n_neg], affinity[:, n_neg:]
    # Cross-weighting: each positive weight is scaled by the query's total negative affinity and vice versa,
    # so that rowsum(W+) = rowsum(A+) rowsum(A-) = rowsum(W-) and the "- x" terms cancel.
    w_pos = a_pos * a_neg.sum(dim=1, keepdim=True)
    w_neg = a_neg * a_pos.sum(dim=1, keepdim=True)
    return w_pos @ y_pos.to(w_pos.dtype) - w_neg @ y_neg.to(w_neg.dtype)
    # END SOLUTION
