"""Lesson 04: the drift loss.

Notation (the course's): x (N x D) generated samples, y+ (M x D) data, V the drift field, tau a temperature.

    L = (1/N) sum_i | x_i - stopgrad(x_i + V_i) |^2      (sum over dimensions, mean over samples)

Its value is (1/N) sum_i |V_i|^2 and its gradient is dL/dx_i = -2 V_i / N.

Wherever a lesson-03 field is needed, the field is drifting_min's batch form: the Laplace kernel
exp(-|x - y| / tau), the double softmax, and the queries x as their own negatives (each one excluded from its
own negatives): ``dm.batch_drift_field(x, y_pos, None, tau)``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

import drifting_min as dm


def drift_loss(x: torch.Tensor, drift: torch.Tensor) -> torch.Tensor:
    """The drift loss L = (1/N) sum_i |x_i - stopgrad(x_i + V_i)|^2.

    Args:
        x: generated samples, N x D; usually x = f(eps) and it carries the generator's graph.
        drift: the drift V at each sample, N x D. It is a *target*, treated as a constant: even when it was
            computed from x with gradients on, no gradient may flow into it.

    Returns:
        A scalar tensor (0-dimensional) whose value is (1/N) sum_i |V_i|^2 and whose gradient with respect
        to x is -2 V / N. Sum over the D dimensions, mean over the N samples.
    """
    # BEGIN SOLUTION 4.1: detach the target x + V (stop-gradient), then sum the squares over dims and average over samples
    # The frozen target: where each sample should be after one drift step. `.detach()` is the stop-gradient:
    # autograd sees a constant, so neither x (through the target) nor the drift receive gradient from it.
    target = (x + drift).detach()
    # |x_i - target_i|^2 summed over the D dimensions, then averaged over the N samples. Its value is
    # (1/N) sum |V_i|^2, and only the first x carries gradient: dL/dx_i = 2 (x_i - target_i) / N = -2 V_i / N.
    return (x - target).square().sum(dim=1).mean()
    # END SOLUTION


def multi_temperature_drift(
    x: torch.Tensor, y_pos: torch.Tensor, taus: Sequence[float]
) -> tuple[torch.Tensor, list[float]]:
    """Several temperatures, each field normalised to unit mean square, then summed.

        V = sum_tau V_tau / rms(V_tau),     rms(V_tau) = sqrt( (1/(N D)) sum_i sum_d V_tau[i, d]^2 )

    with V_tau = dm.batch_drift_field(x, y_pos, None, tau) (Laplace kernel, double softmax, the queries as
    their own negatives).

    Args:
        x: generated samples, N x D.
        y_pos: data (positives), M x D.
        taus: the temperatures, e.g. (0.02, 0.05, 0.2).

    Returns:
        (V, raw): V is the summed normalised field, N x D; raw is a list with, for each temperature in
        order, the raw mean squared drift before normalisation, (1/N) sum_i |V_tau,i|^2 as a Python float
        (sum over dims, mean over samples: the number worth logging during training). Guard the division
        with clamp_min(1e-12) so that a zero field gives zero, not NaN.
    """
    # BEGIN SOLUTION 4.2: divide each temperature's field by sqrt(mean of V^2 over samples AND dims), then sum; log (1/N) sum |V|^2 before dividing
    total = torch.zeros_like(x)
    raw = []
    for tau in taus:
        v = dm.batch_drift_field(x, y_pos, None, tau)
        # The raw energy: the value the (unnormalised) drift loss would have at this temperature.
        raw.append(float(v.square().sum(dim=1).mean()))
        # Root mean square over every entry (samples and dimensions): after the division the term has
        # mean square exactly 1, whatever the temperature's raw scale.
        rms = v.square().mean().sqrt().clamp_min(1e-12)
        total = total + v / rms
    return total, raw
    # END SOLUTION


def drift_particles(x0: torch.Tensor, y_pos: torch.Tensor, tau: float, step: float, n_steps: int) -> torch.Tensor:
    """Drift particles with no network at all: x <- x + step * V(x), repeated n_steps times.

    V(x) = dm.batch_drift_field(x, y_pos, None, tau), recomputed at the current particles every step (the
    raw field, not normalised). x0 is not modified.

    Args:
        x0: starting particles, N x D.
        y_pos: data, M x D.
        tau: the temperature.
        step: the step size (how far along V each update moves).
        n_steps: how many updates.

    Returns:
        The trajectory, a tensor of shape (n_steps + 1) x N x D: entry 0 is x0, entry t the particles after
        t updates.
    """
    # BEGIN SOLUTION 4.3: recompute the field at the current particles each step, x = x + step * V(x); keep x0 as entry 0
    x = x0.clone()
    trajectory = [x]
    for _ in range(n_steps):
        # The field moves with the particles: the negatives are the current particles themselves.
        v = dm.batch_drift_field(x, y_pos, None, tau)
        # A new tensor each step (no in-place update), so the stored trajectory keeps every state.
        x = x + step * v
        trajectory.append(x)
    return torch.stack(trajectory)
    # END SOLUTION


def generator_step(
    generator: Callable[[torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    noise: torch.Tensor,
    y_pos: torch.Tensor,
    taus: Sequence[float],
) -> tuple[float, list[float]]:
    """One training step of a generator x = f(eps) with the drift loss.

    1. clear the old gradients (optimizer.zero_grad());
    2. x = generator(noise), N x D;
    3. V, raw = multi_temperature_drift(x, y_pos, taus) under torch.no_grad() (the field is a target);
    4. L = drift_loss(x, V); backpropagate; optimizer.step().

    Args:
        generator: a torch module (or any callable with parameters in ``optimizer``), noise -> samples.
        optimizer: the optimizer holding the generator's parameters.
        noise: eps, N x noise_dim.
        y_pos: a batch of data, M x D.
        taus: the temperatures.

    Returns:
        (loss, raw): the loss value before the step as a Python float (it equals (1/N) sum_i |V_i|^2 of the
        *normalised* field) and the list of raw per-temperature (1/N) sum_i |V_tau,i|^2 from exercise 4.2.
    """
    # BEGIN SOLUTION 4.4: zero_grad, x = generator(noise), V under torch.no_grad(), loss = drift_loss(x, V), backward, step; return the loss before the step
    optimizer.zero_grad()
    x = generator(noise)
    # The field is a regression target: computing it without a graph is both the stop-gradient and a saving
    # (no memory kept for the N x (N + M) kernel matrices).
    with torch.no_grad():
        v, raw = multi_temperature_drift(x, y_pos, taus)
    loss = drift_loss(x, v)
    # dL/dx = -2 V / N; backward carries it through f into the weights, and the step moves them so that
    # f(eps) moves along V.
    loss.backward()
    optimizer.step()
    return float(loss.detach()), raw
    # END SOLUTION


def unbalanced_drift(
    x: torch.Tensor, y_pos: torch.Tensor, tau: float, attraction: float, repulsion: float
) -> torch.Tensor:
    """A drift field with its two halves scaled: attraction * V+ - repulsion * V-.

    Population form with the Laplace kernel k(x, y) = exp(-|x - y| / tau), the queries x as the negatives
    (no self-mask):

        V+(x) = sum_j k~(x, y+_j) (y+_j - x),   V-(x) = sum_j k~(x, x_j) (x_j - x),
        k~(x, y_j) = softmax_j(-|x - y_j| / tau).

    attraction = repulsion = 1 is the anti-symmetric field of lesson 03; the paper's ablation uses 1.5x
    attraction, 1.5x repulsion and attraction only (repulsion = 0).

    Args:
        x: generated samples (queries and negatives), N x D.
        y_pos: data, M x D.
        tau: the temperature.
        attraction, repulsion: the two scales.

    Returns:
        The field at each x, N x D.
    """
    # BEGIN SOLUTION 4.5: V+ and V- are Laplace-kernel mean shifts towards y_pos and towards x itself (dm.mean_shift with kernel="laplace"); scale each
    # Lesson 03's mean shift, population form: a softmax over the targets of -|x - y| / tau.
    v_pos = dm.mean_shift(x, y_pos, tau, kernel="laplace")
    v_neg = dm.mean_shift(x, x, tau, kernel="laplace")
    # Balanced scales give V = V+ - V-, which is zero when the data and the samples are the same set.
    # Any other pair leaves (attraction - repulsion) V+ at p = q: the equilibrium is no longer q = p.
    return attraction * v_pos - repulsion * v_neg
    # END SOLUTION
