"""Typical mistakes in lesson 03 (mean shift and the drift field); each must fail a graded check of its exercise."""

from __future__ import annotations

import torch

from course.mistakes import Mistake

TAUGHT = {
    "3.1": ["mean_shift", "kde_score", "tweedie_denoise"],
    "3.3": ["drift_field"],
    "3.4": ["drift_field", "mean_shift"],
    "3.5": ["laplace_preconditioner", "laplace_log_potential"],
    "3.6": ["batch_drift_field", "multi_temperature_drift"],
}


# ------------------------------------------------------------------------------------------------ helpers


def _logits(x, y, tau, kernel, *, squared_laplace=False, tau_not_squared=False, no_half=False):
    """Kernel logits with one deliberate slip switched on."""
    d = (x[:, None, :] - y[None, :, :]).norm(dim=-1)
    if kernel == "gaussian":
        scale = tau if tau_not_squared else tau**2
        return -d.square() / ((1.0 if no_half else 2.0) * scale)
    return -(d.square() if squared_laplace else d) / tau


def _naive_softmax(logits, dim):
    """exp / sum without subtracting the largest logit: 0 / 0 once every exp underflows."""
    e = logits.exp()
    return e / e.sum(dim, keepdim=True)


def _shift(x, y, tau, kernel="gaussian", dim=1, subtract_x=True, naive=False, **slips):
    logits = _logits(x, y, tau, kernel, **slips)
    if naive:
        w = _naive_softmax(logits, dim)
    elif dim == 1:
        w = torch.softmax(logits, dim=1)
    else:  # normalised over the queries instead of the targets
        w = torch.softmax(logits, dim=0)
    mean = w @ y
    return mean - x if subtract_x else mean


def _batch(x, y_pos, y_neg=None, tau=0.05, kernel="laplace", *, mask="-inf", combine="geometric", cross=True,
           squared_laplace=False, mask_block="neg", detach=True, naive=False):
    """The batch field with one deliberate slip switched on (mirrors solutions/03 3.6 otherwise)."""
    x = x.detach() if detach else x
    self_neg = y_neg is None
    y_neg = x if self_neg else y_neg.detach()
    k = y_neg.shape[0]
    logits = _logits(x, torch.cat([y_neg, y_pos]), tau, kernel, squared_laplace=squared_laplace)
    if self_neg and mask != "none":
        value = float("-inf") if mask == "-inf" else -1e4
        if mask_block == "neg":
            eye = torch.eye(x.shape[0], k, dtype=torch.bool)
            logits[:, :k] = logits[:, :k].masked_fill(eye, value)
        else:  # the diagonal of the positive block instead
            eye = torch.eye(x.shape[0], y_pos.shape[0], dtype=torch.bool)
            logits[:, k:] = logits[:, k:].masked_fill(eye, value)
    softmax = _naive_softmax if naive else torch.softmax
    row, col = softmax(logits, dim=1), softmax(logits, dim=0)
    if combine == "geometric":
        a = (row * col).sqrt()
    elif combine == "arithmetic":
        a = 0.5 * (row + col)
    elif combine == "targets":
        a = row
    else:  # "queries": only the softmax over the queries
        a = col
    a_neg, a_pos = a[:, :k], a[:, k:]
    if cross:
        w_pos, w_neg = a_pos * a_neg.sum(1, keepdim=True), a_neg * a_pos.sum(1, keepdim=True)
    else:
        w_pos, w_neg = a_pos, a_neg
    return w_pos @ y_pos - w_neg @ y_neg


def _find_modes_frozen(x0, data, tau, n_steps=50):
    v = _shift(x0, data, tau)  # computed once, at the start, and never again
    return torch.stack([x0 + t * v for t in range(n_steps + 1)])


def _find_modes_scaled(step):
    def run(x0, data, tau, n_steps=50):
        path = [x0]
        for _ in range(n_steps):
            path.append(path[-1] + step(tau) * _shift(path[-1], data, tau))
        return torch.stack(path)

    return run


def _find_modes_late_start(x0, data, tau, n_steps=50):
    path, x = [], x0
    for _ in range(n_steps + 1):  # off by one: the path leaves out x0 and takes one step too many
        x = x + _shift(x, data, tau)
        path.append(x)
    return torch.stack(path)


def _joint(x, y_pos, y_neg, tau, kernel="gaussian", *, normalise=True, sign=1.0, **slips):
    lp, ln = _logits(x, y_pos, tau, kernel, **slips), _logits(x, y_neg, tau, kernel, **slips)
    if normalise:
        wp, wn = torch.softmax(lp, 1), torch.softmax(ln, 1)
    else:  # raw kernel values, forgetting the division by Z_p Z_q
        wp, wn = lp.exp(), ln.exp()
    diff = y_pos[:, None, :] - y_neg[None, :, :]
    return sign * torch.einsum("ij,ik,jkd->id", wp, wn, diff)


def _rho(*, weights="laplace", form="right"):
    def rho(x, data, tau):
        r = (x[:, None, :] - data[None, :, :]).norm(dim=-1)
        if weights == "laplace":
            w = torch.softmax(-r / tau, dim=1)
        elif weights == "squared":
            w = torch.softmax(-r.square() / tau, dim=1)
        else:  # a plain mean over the data
            w = torch.full_like(r, 1.0 / r.shape[1])
        if weights == "naive":
            w = _naive_softmax(-r / tau, 1)
        r_bar = (w * r).sum(1, keepdim=True)
        if form == "right":
            return tau * (tau + r_bar)
        if form == "no_tau":
            return tau + r_bar
        return tau**2 + r_bar  # tau^2 + r_bar

    return rho


# ------------------------------------------------------------------------------------------------ identity, accuracy

GAUSSIAN = "gaussian"  # a module constant: `kernel is GAUSSIAN` holds for the literal, not for a name built later


def _by_identity(f):
    """The kernel name compared with `is`: a name built at run time falls through to the other kernel."""
    def wrong(*args, kernel="gaussian"):
        return f(*args, "gaussian" if kernel is GAUSSIAN else "laplace")
    return wrong


def _mean_shift_identity(f, m):
    return lambda x, targets, tau, kernel="gaussian": _by_identity(f)(x, targets, tau, kernel=kernel)


def _drift_identity(f, m):
    return lambda x, y_pos, y_neg, tau, kernel="gaussian": _by_identity(f)(x, y_pos, y_neg, tau, kernel=kernel)


def _batch_identity(f, m):
    def batch_drift_field(x, y_pos, y_neg=None, tau=0.05, kernel="laplace"):
        return f(x, y_pos, y_neg, tau, "gaussian" if kernel is GAUSSIAN else "laplace")
    return batch_drift_field


def _mean_shift_expanded(x, targets, tau, kernel="gaussian"):
    sq = (x.square().sum(1)[:, None] + targets.square().sum(1)[None, :] - 2 * x @ targets.T).clamp_min(0)
    logits = -sq / (2 * tau**2) if kernel == "gaussian" else -sq.sqrt() / tau
    return torch.softmax(logits, dim=1) @ targets - x


def _find_modes_fixed_steps(f, m):
    return lambda x0, data, tau, n_steps=50: f(x0, data, tau, 2)


def _preconditioner_float32(x, data, tau):
    """Distances in float32 "for speed", cast back."""
    r = (x.float()[:, None, :] - data.float()[None, :, :]).norm(dim=-1)
    weights = torch.softmax(-r / tau, dim=1)
    return (tau * (tau + (weights * r).sum(1, keepdim=True))).to(x.dtype)


MISTAKES = [
    # 3.1 mean_shift
    Mistake("3.1", "mean_shift", "flipped sign (x - mean instead of mean - x)",
            lambda f, m: lambda *a, **k: -f(*a, **k)),
    Mistake("3.1", "mean_shift", "softmax over the queries (dim=0) instead of the targets",
            lambda f, m: lambda x, y, tau, kernel="gaussian": _shift(x, y, tau, kernel, dim=0)),
    Mistake("3.1", "mean_shift", "tau instead of tau^2 in the Gaussian logits",
            lambda f, m: lambda x, y, tau, kernel="gaussian": _shift(x, y, tau, kernel, tau_not_squared=True)),
    Mistake("3.1", "mean_shift", "forgot the factor 2 in -d^2 / (2 tau^2)",
            lambda f, m: lambda x, y, tau, kernel="gaussian": _shift(x, y, tau, kernel, no_half=True)),
    Mistake("3.1", "mean_shift", "squared instead of plain distance for the Laplace kernel",
            lambda f, m: lambda x, y, tau, kernel="gaussian": _shift(x, y, tau, kernel, squared_laplace=True)),
    Mistake("3.1", "mean_shift", "returns the weighted mean, forgetting '- x'",
            lambda f, m: lambda x, y, tau, kernel="gaussian": _shift(x, y, tau, kernel, subtract_x=False)),
    Mistake("3.1", "mean_shift", "returns the score (divided by tau^2) instead of the mean shift",
            lambda f, m: lambda x, y, tau, kernel="gaussian": f(x, y, tau, kernel) / tau**2),
    Mistake("3.1", "mean_shift", "softmax written as exp / sum (0 / 0 in float32 at a small temperature)",
            lambda f, m: lambda x, y, tau, kernel="gaussian": _shift(x, y, tau, kernel, naive=True)),
    Mistake("3.1", "mean_shift", "always returns float64 (computes in double and never casts back)",
            lambda f, m: lambda x, y, tau, kernel="gaussian": f(x.double(), y.double(), tau, kernel)),
    Mistake("3.1", "mean_shift", "centres the queries and the targets in place (the inputs are modified)",
            lambda f, m: _mean_shift_centred_in_place(f)),
    # 3.2 find_modes
    Mistake("3.2", "find_modes", "steps down the density (x - V+)", lambda f, m: _find_modes_scaled(lambda tau: -1.0)),
    Mistake("3.2", "find_modes", "half steps (x + V+ / 2)", lambda f, m: _find_modes_scaled(lambda tau: 0.5)),
    Mistake("3.2", "find_modes", "steps along the score, V+ / tau^2, instead of V+",
            lambda f, m: _find_modes_scaled(lambda tau: 1.0 / tau**2)),
    Mistake("3.2", "find_modes", "the mean shift computed once at x0 and reused", lambda f, m: _find_modes_frozen),
    Mistake("3.2", "find_modes", "off by one: the path leaves out x0", lambda f, m: _find_modes_late_start),
    # 3.3 drift_field
    Mistake("3.3", "drift_field", "flipped sign (V- - V+)", lambda f, m: lambda *a, **k: -f(*a, **k)),
    Mistake("3.3", "drift_field", "attraction only (V+, no repulsion)",
            lambda f, m: lambda x, yp, yn, tau, kernel="gaussian": m.mean_shift(x, yp, tau, kernel)),
    Mistake("3.3", "drift_field", "repulsion scaled by 1.5 (V+ - 1.5 V-)",
            lambda f, m: lambda x, yp, yn, tau, kernel="gaussian": m.mean_shift(x, yp, tau, kernel)
            - 1.5 * m.mean_shift(x, yn, tau, kernel)),
    Mistake("3.3", "drift_field", "one softmax over the union [y+ | y-] instead of one per set",
            lambda f, m: lambda x, yp, yn, tau, kernel="gaussian": _union_field(x, yp, yn, tau, kernel)),
    Mistake("3.3", "drift_field", "tau instead of tau^2 in the Gaussian logits",
            lambda f, m: lambda x, yp, yn, tau, kernel="gaussian": _shift(x, yp, tau, kernel, tau_not_squared=True)
            - _shift(x, yn, tau, kernel, tau_not_squared=True)),
    Mistake("3.3", "drift_field", "softmax written as exp / sum (0 / 0 in float32 at a small temperature)",
            lambda f, m: lambda x, yp, yn, tau, kernel="gaussian": _shift(x, yp, tau, kernel, naive=True)
            - _shift(x, yn, tau, kernel, naive=True)),
    # 3.4 drift_field_joint
    Mistake("3.4", "drift_field_joint", "flipped sign (y-_k - y+_j)",
            lambda f, m: lambda x, yp, yn, tau, kernel="gaussian": _joint(x, yp, yn, tau, kernel, sign=-1.0)),
    Mistake("3.4", "drift_field_joint", "raw kernel values k instead of normalised k~ (no Z_p Z_q)",
            lambda f, m: lambda x, yp, yn, tau, kernel="gaussian": _joint(x, yp, yn, tau, kernel, normalise=False)),
    Mistake("3.4", "drift_field_joint", "tau instead of tau^2 in the Gaussian logits",
            lambda f, m: lambda x, yp, yn, tau, kernel="gaussian": _joint(
                x, yp, yn, tau, kernel, tau_not_squared=True)),
    Mistake("3.4", "drift_field_joint", "squared instead of plain distance for the Laplace kernel",
            lambda f, m: lambda x, yp, yn, tau, kernel="gaussian": _joint(
                x, yp, yn, tau, kernel, squared_laplace=True)),
    Mistake("3.4", "drift_field_joint", "always returns float64",
            lambda f, m: lambda x, yp, yn, tau, kernel="gaussian": f(*(t.double() for t in (x, yp, yn)), tau, kernel)),
    # 3.5 laplace_preconditioner
    Mistake("3.5", "laplace_preconditioner", "tau + r_bar, forgetting the factor tau",
            lambda f, m: _rho(form="no_tau")),
    Mistake("3.5", "laplace_preconditioner", "tau^2 + r_bar", lambda f, m: _rho(form="tau_squared")),
    Mistake("3.5", "laplace_preconditioner", "weights from squared distances", lambda f, m: _rho(weights="squared")),
    Mistake("3.5", "laplace_preconditioner", "plain mean distance instead of the kernel-weighted one",
            lambda f, m: _rho(weights="uniform")),
    Mistake("3.5", "laplace_preconditioner", "softmax written as exp / sum (0 / 0 in float32 at a small temperature)",
            lambda f, m: _rho(weights="naive")),
    # 3.6 batch_drift_field
    Mistake("3.6", "batch_drift_field", "missing self-mask", lambda f, m: _batch_with(mask="none")),
    Mistake("3.6", "batch_drift_field", "a large finite logit (-1e4) instead of -inf for the self-mask",
            lambda f, m: _batch_with(mask="-1e4")),
    Mistake("3.6", "batch_drift_field", "self-mask on the positive block", lambda f, m: _batch_with(mask_block="pos")),
    Mistake("3.6", "batch_drift_field", "softmax over the targets only", lambda f, m: _batch_with(combine="targets")),
    Mistake("3.6", "batch_drift_field", "softmax over the queries only (wrong axis)",
            lambda f, m: _batch_with(combine="queries")),
    Mistake("3.6", "batch_drift_field", "arithmetic instead of geometric mean of the two softmaxes",
            lambda f, m: _batch_with(combine="arithmetic")),
    Mistake("3.6", "batch_drift_field", "missing cross-weighting (W+ = A+, W- = A-)",
            lambda f, m: _batch_with(cross=False)),
    Mistake("3.6", "batch_drift_field", "squared instead of plain distance for the Laplace kernel",
            lambda f, m: _batch_with(squared_laplace=True)),
    Mistake("3.6", "batch_drift_field", "flipped sign (W- y- - W+ y+)", lambda f, m: lambda *a, **k: -f(*a, **k)),
    Mistake("3.6", "batch_drift_field", "no detach: the field keeps the graph of x",
            lambda f, m: _batch_with(detach=False)),
    Mistake("3.6", "batch_drift_field", "both softmaxes written as exp / sum (0 / 0 in float32 at a small temperature)",
            lambda f, m: _batch_with(naive=True)),
    Mistake("3.1", "mean_shift", "kernel name compared with `is`", _mean_shift_identity),
    Mistake("3.1", "mean_shift", "distances from |x|^2 + |y|^2 - 2 x.y", lambda f, m: _mean_shift_expanded),
    Mistake("3.2", "find_modes", "n_steps fixed at 2", _find_modes_fixed_steps),
    Mistake("3.3", "drift_field", "kernel name compared with `is`", _drift_identity),
    Mistake("3.4", "drift_field_joint", "kernel name compared with `is`", _drift_identity),
    Mistake("3.5", "laplace_preconditioner", "distances in float32, cast back", lambda f, m: _preconditioner_float32),
    Mistake("3.6", "batch_drift_field", "kernel name compared with `is`", _batch_identity),
]


def _mean_shift_centred_in_place(correct):
    def wrong(x, targets, tau, kernel="gaussian"):
        # Centring is harmless for the value (mean shift is translation equivariant), but it is done in place.
        centre = targets.mean(dim=0).clone()
        x.sub_(centre)
        if targets is not x:
            targets.sub_(centre)
        return correct(x, targets, tau, kernel)

    return wrong


def _union_field(x, y_pos, y_neg, tau, kernel):
    w = torch.softmax(_logits(x, torch.cat([y_pos, y_neg]), tau, kernel), dim=1)
    wp, wn = w[:, : y_pos.shape[0]], w[:, y_pos.shape[0]:]
    return (wp @ y_pos - wp.sum(1, keepdim=True) * x) - (wn @ y_neg - wn.sum(1, keepdim=True) * x)


def _batch_with(**slip):
    def run(x, y_pos, y_neg=None, tau=0.05, kernel="laplace"):
        return _batch(x, y_pos, y_neg, tau, kernel, **slip)

    return run
