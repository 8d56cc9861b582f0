"""Typical mistakes for lesson 04 (the drift loss); each must fail a graded check of its exercise."""

from __future__ import annotations

import torch

import drifting_min as dm
from course.mistakes import Mistake

# drifting_min names that each exercise's solution must not call (it would be checked against itself).
TAUGHT = {
    "4.1": ["drift_regression_loss"],
    "4.2": ["multi_temperature_drift"],
    "4.3": [],
    "4.4": ["drifting_loss"],
    "4.5": ["drift_field"],
}


# ---------------------------------------------------------------------------------------------------- 4.1


def _loss_without_stopgrad(f, m):
    return lambda x, drift: (x - (x + drift)).square().sum(dim=1).mean()


def _loss_target_minus_v(f, m):
    return lambda x, drift: (x - (x - drift).detach()).square().sum(dim=1).mean()


def _loss_mean_over_dims(f, m):
    return lambda x, drift: (x - (x + drift).detach()).square().mean()


def _loss_sum_over_samples(f, m):
    return lambda x, drift: (x - (x + drift).detach()).square().sum()


def _loss_is_v_squared(f, m):
    return lambda x, drift: drift.square().sum(dim=1).mean()


def _loss_detach_x_only(f, m):
    # target = stopgrad(x) + V: the gradient still flows through V whenever V was computed from x
    return lambda x, drift: (x - (x.detach() + drift)).square().sum(dim=1).mean()


# ---------------------------------------------------------------------------------------------------- 4.2


def _multi(normalise, raw_of=lambda v, vn: float(v.square().sum(1).mean()), combine=sum):
    def make(f, m):
        def wrong(x, y_pos, taus):
            terms, raw = [], []
            for tau in taus:
                v = dm.batch_drift_field(x, y_pos, None, tau)
                vn = normalise(v)
                terms.append(vn)
                raw.append(raw_of(v, vn))
            return combine(terms), raw

        return wrong

    return make


def _rms(v):
    return v.square().mean().sqrt().clamp_min(1e-12)


MULTI_MISTAKES = [
    ("no normalisation (raw fields summed)", _multi(lambda v: v)),
    ("divided by the mean square instead of its root", _multi(lambda v: v / v.square().mean().clamp_min(1e-12))),
    ("each sample's drift divided by its own norm", _multi(lambda v: v / v.norm(dim=1, keepdim=True).clamp_min(1e-12))),
    ("rms of |V_i| over samples (sum over dims inside the root)",
     _multi(lambda v: v / v.square().sum(1).mean().sqrt().clamp_min(1e-12))),
    ("temperatures averaged instead of summed", _multi(lambda v: v / _rms(v), combine=lambda t: sum(t) / len(t))),
    ("raw energy logged after normalisation", _multi(lambda v: v / _rms(v),
                                                     raw_of=lambda v, vn: float(vn.square().sum(1).mean()))),
    ("raw energy as a mean over dimensions too", _multi(lambda v: v / _rms(v),
                                                        raw_of=lambda v, vn: float(v.square().mean()))),
    ("normalisation without its floor (a zero field gives 0 / 0 = NaN)",
     _multi(lambda v: v / v.square().mean().sqrt())),
    ("the summed field returned in float64 whatever the input dtype", _multi(lambda v: (v / _rms(v)).double())),
]


# ---------------------------------------------------------------------------------------------------- 4.3


def _particles(field, sign=1.0, frozen=False, in_place=False, skip_start=False):
    def make(f, m):
        def wrong(x0, y_pos, tau, step, n_steps):
            x = x0.clone()
            states = [] if skip_start else [x]
            v0 = field(x, y_pos, tau)
            for _ in range(n_steps + (1 if skip_start else 0)):
                v = v0 if frozen else field(x, y_pos, tau)
                if in_place:
                    x += sign * step * v
                else:
                    x = x + sign * step * v
                states.append(x)
            return torch.stack(states)

        return wrong

    return make


def _batch(x, y, tau):
    return dm.batch_drift_field(x, y, None, tau)


def _particles_update_x0_in_place(f, m):
    def wrong(x0, y_pos, tau, step, n_steps):
        x = x0  # no copy: the updates below land in the caller's tensor
        states = [x0.clone()]
        for _ in range(n_steps):
            x.add_(step * dm.batch_drift_field(x, y_pos, None, tau))
            states.append(x.clone())
        return torch.stack(states)

    return wrong


PARTICLE_MISTAKES = [
    ("moves against the field (x - step V)", _particles(_batch, sign=-1.0)),
    ("field computed once at x0 and never updated", _particles(_batch, frozen=True)),
    ("in-place update: every stored state is the same tensor", _particles(_batch, in_place=True)),
    ("off by one: x0 missing, one update too many", _particles(_batch, skip_start=True)),
    ("Gaussian kernel instead of Laplace", _particles(lambda x, y, t: dm.batch_drift_field(x, y, None, t, "gaussian"))),
    ("uncoupled softmaxes instead of the double softmax",
     _particles(lambda x, y, t: dm.batch_drift_field(x, y, None, t, normalisation="uncoupled"))),
    ("particles moved in float64 whatever the dtype of x0",
     _particles(lambda x, y, t: _batch(x.double(), y.double(), t))),
    ("x0 updated in place (the right trajectory, but the caller's x0 ends at the last state)",
     _particles_update_x0_in_place),
]


# ---------------------------------------------------------------------------------------------------- 4.4


def _step(forget_zero=False, sign=1.0, raw_field=False, loss_after=False, dims_mean=False, raw_after=False):
    def make(f, m):
        def wrong(generator, optimizer, noise, y_pos, taus):
            if not forget_zero:
                optimizer.zero_grad()
            x = generator(noise)
            with torch.no_grad():
                v, raw = m.multi_temperature_drift(x, y_pos, taus)
                if raw_field:
                    v = sum(dm.batch_drift_field(x, y_pos, None, t) for t in taus)
                if raw_after:
                    raw = [float(v.square().sum(1).mean()) / len(taus)] * len(taus)
            loss = m.drift_loss(x, sign * v)
            if dims_mean:
                loss = loss / x.shape[1]
            loss.backward()
            optimizer.step()
            if loss_after:
                with torch.no_grad():
                    x = generator(noise)
                    v, _ = m.multi_temperature_drift(x, y_pos, taus)
                    loss = m.drift_loss(x, v)
            return float(loss.detach()), raw

        return wrong

    return make


# ---------------------------------------------------------------------------------------------------- 4.5


def _shift(x, targets, tau, squared=False, mask=False, naive=False):
    dist = torch.cdist(x, targets)
    logits = -(dist.square() if squared else dist) / tau
    if mask:
        logits = logits.masked_fill(torch.eye(len(x), dtype=torch.bool), float("-inf"))
    if naive:  # exp / sum: 0 / 0 once every exp underflows
        weights = logits.exp() / logits.exp().sum(dim=1, keepdim=True)
    else:
        weights = torch.softmax(logits, dim=1)
    return weights @ targets - x


def _loss_numpy(x, drift):
    """The mean of the squares in numpy on detached values, wrapped back into a tensor: no graph, CPU only."""
    import numpy as np

    target = (x + drift).detach()
    value = np.mean(np.sum((x.detach().numpy() - target.numpy()) ** 2, axis=1))
    return torch.tensor(value, dtype=x.dtype)


def _multi_raw_tensors(f, m):
    def multi_temperature_drift(x, y_pos, taus):
        total, raw = f(x, y_pos, taus)
        return total, [torch.tensor(r, dtype=x.dtype) for r in raw]  # 0-d tensors, not Python floats
    return multi_temperature_drift


def _step_two_calls(f, m):
    def generator_step(generator, optimizer, noise, y_pos, taus):
        optimizer.zero_grad()
        with torch.no_grad():
            v, raw = m.multi_temperature_drift(generator(noise), y_pos, taus)  # one call for the field
        x = generator(noise)  # another for the loss
        loss = m.drift_loss(x, v)
        loss.backward()
        optimizer.step()
        return float(loss.detach()), raw
    return generator_step


def _unbalanced_float32(x, y_pos, tau, attraction, repulsion):
    """Computed in float32 "for speed", cast back."""
    xf, yf = x.float(), y_pos.float()
    v_pos, v_neg = dm.mean_shift(xf, yf, tau, kernel="laplace"), dm.mean_shift(xf, xf, tau, kernel="laplace")
    return (attraction * v_pos - repulsion * v_neg).to(x.dtype)


MISTAKES = [
    Mistake("4.1", "drift_loss", "forgotten stop-gradient", _loss_without_stopgrad),
    Mistake("4.1", "drift_loss", "target x - V instead of x + V (flipped sign)", _loss_target_minus_v),
    Mistake("4.1", "drift_loss", "mean over dimensions as well as samples", _loss_mean_over_dims),
    Mistake("4.1", "drift_loss", "sum over samples instead of the mean", _loss_sum_over_samples),
    Mistake("4.1", "drift_loss", "the loss written as |V|^2 (no x in it)", _loss_is_v_squared),
    Mistake("4.1", "drift_loss", "only x detached in the target, V left differentiable", _loss_detach_x_only),
    *[Mistake("4.2", "multi_temperature_drift", d, make) for d, make in MULTI_MISTAKES],
    *[Mistake("4.3", "drift_particles", d, make) for d, make in PARTICLE_MISTAKES],
    Mistake("4.4", "generator_step", "forgotten zero_grad (stale gradients add up)", _step(forget_zero=True)),
    Mistake("4.4", "generator_step", "flipped sign of the drift in the loss", _step(sign=-1.0)),
    Mistake("4.4", "generator_step", "raw fields summed, no per-temperature normalisation", _step(raw_field=True)),
    Mistake("4.4", "generator_step", "loss reported after the optimizer step", _step(loss_after=True)),
    Mistake("4.4", "generator_step", "loss averaged over the dimensions too", _step(dims_mean=True)),
    Mistake("4.4", "generator_step", "raw energy taken from the normalised field", _step(raw_after=True)),
    Mistake("4.5", "unbalanced_drift", "flipped sign",
            lambda f, m: lambda x, y, tau, a, r: -f(x, y, tau, a, r)),
    Mistake("4.5", "unbalanced_drift", "scales swapped (attraction on V-, repulsion on V+)",
            lambda f, m: lambda x, y, tau, a, r: r * _shift(x, y, tau) - a * _shift(x, x, tau)),
    Mistake("4.5", "unbalanced_drift", "attraction scales the whole field",
            lambda f, m: lambda x, y, tau, a, r: a * (_shift(x, y, tau) - _shift(x, x, tau))),
    Mistake("4.5", "unbalanced_drift", "squared distance in the Laplace kernel",
            lambda f, m: lambda x, y, tau, a, r: a * _shift(x, y, tau, squared=True)
            - r * _shift(x, x, tau, squared=True)),
    Mistake("4.5", "unbalanced_drift", "self-masked negatives (batch habit) in the population form",
            lambda f, m: lambda x, y, tau, a, r: a * _shift(x, y, tau) - r * _shift(x, x, tau, mask=True)),
    Mistake("4.5", "unbalanced_drift", "softmax written as exp / sum (0 / 0 in float32 at a small temperature)",
            lambda f, m: lambda x, y, tau, a, r: a * _shift(x, y, tau, naive=True) - r * _shift(x, x, tau, naive=True)),
    Mistake("4.1", "drift_loss", "the loss through numpy", lambda f, m: _loss_numpy),
    Mistake("4.2", "multi_temperature_drift", "raw energies as 0-d tensors, not Python floats", _multi_raw_tensors),
    Mistake("4.4", "generator_step", "the generator called twice (field and loss)", _step_two_calls),
    Mistake("4.5", "unbalanced_drift", "computed in float32, cast back", lambda f, m: _unbalanced_float32),
]

