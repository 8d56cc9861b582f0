"""Correct answers to lesson 04's exercises written another way than the worked solutions; every graded check of
their exercise must accept them."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import drifting_min as dm
from course.mistakes import Alternative


def loss_mse(x, drift):
    """mse_loss with a summed reduction, divided by N."""
    return F.mse_loss(x, (x + drift).detach(), reduction="sum") / x.shape[0]


def loss_einsum(x, drift):
    """The residual x - stopgrad(x + V) contracted with itself."""
    residual = x - (x.detach() + drift.detach())
    return torch.einsum("nd,nd->", residual, residual) / len(x)


def multi_stacked(x, y_pos, taus):
    """Fields stacked, RMS by vector_norm, raw energies by .item()."""
    fields = torch.stack([dm.batch_drift_field(x, y_pos, None, tau) for tau in taus])  # T x N x D
    raw = [v.square().sum(1).mean().item() for v in fields]
    rms = torch.linalg.vector_norm(fields, dim=(1, 2)) / (fields[0].numel() ** 0.5)
    return (fields / rms.clamp_min(1e-12)[:, None, None]).sum(0), raw


def multi_running(x, y_pos, taus):
    """A running sum, the RMS from the raw energy: mean(V^2) = raw / D."""
    total, raw = 0, []
    for tau in taus:
        v = dm.batch_drift_field(x, y_pos, None, tau)
        energy = v.pow(2).sum(-1).mean()
        raw.append(float(energy))
        total = total + v / (energy / x.shape[1]).sqrt().clamp_min(1e-12)
    return total, raw


def particles_preallocated(x0, y_pos, tau, step, n_steps):
    """The trajectory preallocated and filled."""
    out = x0.new_empty((n_steps + 1, *x0.shape))
    out[0] = x0
    for t in range(n_steps):
        out[t + 1] = out[t] + step * dm.batch_drift_field(out[t], y_pos, None, tau)
    return out


def particles_recursive(x0, y_pos, tau, step, n_steps):
    """A list of states, each new state computed from the last."""
    states = [x0.clone()]
    while len(states) <= n_steps:
        x = states[-1]
        states.append(torch.add(x, dm.batch_drift_field(x, y_pos, None, tau), alpha=step))
    return torch.stack(states)


def step_mse(generator, optimizer, noise, y_pos, taus):
    """The loss by mse_loss against the frozen target."""
    optimizer.zero_grad(set_to_none=True)
    x = generator(noise)
    with torch.no_grad():
        v, raw = dm.multi_temperature_drift(x, y_pos, None, taus)
        target = x + v
    loss = F.mse_loss(x, target, reduction="sum") / x.shape[0]
    loss.backward()
    optimizer.step()
    return loss.item(), [float(r) for r in raw]


def step_regression(generator, optimizer, noise, y_pos, taus):
    """drifting_min's drift_regression_loss (4.4 teaches the step, not the loss)."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = None
    x = generator(noise)
    v, raw = dm.multi_temperature_drift(x.detach(), y_pos, None, taus)
    loss = dm.drift_regression_loss(x, v)
    loss.backward()
    optimizer.step()
    return float(loss.detach()), list(raw)


def _laplace_shift(x, targets, tau):
    d = (x[:, None, :] - targets[None, :, :]).norm(dim=-1)
    return torch.softmax(-d / tau, dim=1) @ targets - x


def unbalanced_own(x, y_pos, tau, attraction, repulsion):
    """Laplace mean shifts written out."""
    return attraction * _laplace_shift(x, y_pos, tau) - repulsion * _laplace_shift(x, x, tau)


def unbalanced_means(x, y_pos, tau, attraction, repulsion):
    """Weighted means and x: a (m+ - x) - r (m- - x)."""
    w_pos = torch.softmax(-torch.cdist(x, y_pos, compute_mode="donot_use_mm_for_euclid_dist") / tau, dim=1)
    w_neg = torch.softmax(-torch.cdist(x, x, compute_mode="donot_use_mm_for_euclid_dist") / tau, dim=1)
    return attraction * (w_pos @ y_pos - x) - repulsion * (w_neg @ x - x)


ALTERNATIVES = [
    Alternative("4.1", "drift_loss", "mse_loss, summed, over N", loss_mse),
    Alternative("4.1", "drift_loss", "einsum of the residual", loss_einsum),
    Alternative("4.2", "multi_temperature_drift", "stacked fields, vector_norm, .item()", multi_stacked),
    Alternative("4.2", "multi_temperature_drift", "RMS from the raw energy", multi_running),
    Alternative("4.3", "drift_particles", "preallocated trajectory", particles_preallocated),
    Alternative("4.3", "drift_particles", "torch.add with alpha", particles_recursive),
    Alternative("4.4", "generator_step", "mse_loss against the frozen target", step_mse),
    Alternative("4.4", "generator_step", "drifting_min's drift_regression_loss", step_regression),
    Alternative("4.5", "unbalanced_drift", "Laplace mean shifts written out", unbalanced_own),
    Alternative("4.5", "unbalanced_drift", "weighted means minus x", unbalanced_means),
]
