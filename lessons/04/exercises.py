# Lesson 04 exercises: fill in every `raise NotImplementedError(...)`, then run `pytest lessons/04`.
# This file is generated from solutions/04/exercises.py by `make exercises`. It is yours to edit:
# the generator refuses to overwrite it once you have changed it.
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
    raise NotImplementedError('Exercise 4.1 `drift_loss` is not implemented yet. Hint: detach the target x + V (stop-gradient), then sum the squares over dims and average over samples')


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
    raise NotImplementedError("Exercise 4.2 `multi_temperature_drift` is not implemented yet. Hint: divide each temperature's field by sqrt(mean of V^2 over samples AND dims), then sum; log (1/N) sum |V|^2 before dividing")


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
    raise NotImplementedError('Exercise 4.3 `drift_particles` is not implemented yet. Hint: recompute the field at the current particles each step, x = x + step * V(x); keep x0 as entry 0')


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
    raise NotImplementedError('Exercise 4.4 `generator_step` is not implemented yet. Hint: zero_grad, x = generator(noise), V under torch.no_grad(), loss = drift_loss(x, V), backward, step; return the loss before the step')


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
    raise NotImplementedError('Exercise 4.5 `unbalanced_drift` is not implemented yet. Hint: V+ and V- are Laplace-kernel mean shifts towards y_pos and towards x itself (dm.mean_shift with kernel="laplace"); scale each')
