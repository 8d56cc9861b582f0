"""Graded checks for lesson 04, the drift loss. Run `pytest lessons/04` (or `-k ex4_2` for one exercise).

Value checks compare with drifting_min, a float64 closed form or autograd on seeded random inputs; property
checks test what the lesson derives (gradient -2V/N, stop-gradient, unit mean square, scale invariance,
particles reaching the data, the zero field only when the two halves are balanced).
"""

from __future__ import annotations

import copy
import functools

import torch

import drifting_min as dm
from course import (
    call_unchanged,
    check_close,
    check_dtype,
    check_portable,
    check_python_float,
    check_tensor,
    check_true,
    checks,
    exercise,
    generator,
    randn,
)

F64 = torch.float64


def ring_of_blobs(seed: int, n: int, modes: int = 6, radius: float = 2.0, std: float = 0.15) -> torch.Tensor:
    """A small 2-D data set: n points around `modes` Gaussian blobs on a circle."""
    gen = generator(seed)
    angle = torch.randint(0, modes, (n,), generator=gen).to(F64) * (2 * torch.pi / modes)
    centres = torch.stack([radius * angle.cos(), radius * angle.sin()], dim=1)
    return centres + randn(gen, n, 2, scale=std)


# Float32 checks compare with drifting_min in float64 on the same float32 inputs. At tau = 0.02 a Laplace logit
# near -150 carries an absolute error near 1e-5 in float32; the fields agree to about 1e-5 relative, so 1e-3 is
# loose enough for any stable float32 implementation and still tight for a wrong formula.
F32_RTOL, F32_ATOL = 1e-3, 1e-3
SMALL_TAU = 0.02
STABLE_HINT = ("the property that broke is stability in float32 at a small temperature; a NaN usually means an "
               "exp / sum that underflowed to 0 / 0 (torch.softmax and log_softmax subtract the largest logit), "
               "or a division by a zero norm without its floor")


def far_float32(seed: int, n: int, m: int, offset: float = 3.0):
    """Float32 samples near the origin and data about ``offset`` away: at tau = 0.02 every Laplace exp(-d / tau)
    between them is 0 in float32."""
    x = randn(seed, n, 2, scale=0.3)
    y = randn(seed + 1, m, 2, scale=0.3) + torch.tensor([offset, 0.5], dtype=F64)
    return x.float(), y.float()


def ring_float32(seed: int, n: int = 6, radius: float = 3.0, out: float = 2.2):
    """Float32 samples on a ring (neighbours 2.9 apart) and, for each, one data point ``out`` further out.

    Every data point is at least 2.1 from every sample, so at tau = 0.02 each data column of Laplace logits lies
    below -104 and its exp is 0 in float32 (exp / sum over the samples gives 0 / 0), while the batch field stays
    far above the normalisation's floor (its rms is about 1e-6, not 1e-19 as with all the data far away)."""
    angle = torch.arange(n, dtype=F64) * (2 * torch.pi / n)
    unit = torch.stack([angle.cos(), angle.sin()], dim=1)
    x = radius * unit + randn(seed, n, 2, scale=0.05)
    y = (radius + out) * unit + randn(seed + 1, n, 2, scale=0.05)
    return x.float(), y.float()


check_float32 = functools.partial(checks.check_float32, rtol=F32_RTOL, atol=F32_ATOL, hint=STABLE_HINT)

def energy_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """2 E|x - y| - E|x - x'| - E|y - y'|: zero exactly when the two samples have the same distribution."""
    return float(2 * torch.cdist(x, y).mean() - torch.cdist(x, x).mean() - torch.cdist(y, y).mean())


# ------------------------------------------------------------------------------------------- 4.1 drift_loss


@exercise("4.1", "drift_loss")
def test_ex4_1_value_is_mean_squared_drift(ex):
    x, v = randn(0, 12, 3), randn(1, 12, 3)
    got = ex.drift_loss(x, v)
    check_tensor(got, (), name="drift_loss(x, drift)", hint="return a 0-dimensional tensor: a mean, not a list")
    check_close(got, dm.drift_regression_loss(x, v), prop="the loss equals drifting_min's drift_regression_loss",
                hint="sum the squares over the D dimensions, then average over the N samples")
    check_close(got, v.square().sum(dim=1).mean(), prop="the value of the loss is (1/N) sum_i |V_i|^2",
                hint="x - (x + V) = -V: the loss is the mean squared length of the drift")


@exercise("4.1", "drift_loss")
def test_ex4_1_gradient_is_minus_two_v_over_n(ex):
    x0, v = randn(2, 10, 4), randn(3, 10, 4)
    x = x0.clone().requires_grad_(True)
    loss = ex.drift_loss(x, v)
    check_true(isinstance(loss, torch.Tensor) and loss.requires_grad,
               "the loss must depend on x (it is what the generator is trained with)",
               "the returned loss does not require grad, so backward() cannot reach x",
               hint="compute |x - stopgrad(x + V)|^2 with x itself, not |V|^2 from the drift alone")
    loss.backward()
    check_close(x.grad, -2 * v / x.shape[0], prop="autograd: dL/dx_i = -2 V_i / N",
                hint="a zero gradient means the stop-gradient is missing (x - (x + V) has no x in it); "
                     "+2V/N means the target is x - V; a factor 1/D means a mean over the dimensions")


@exercise("4.1", "drift_loss")
def test_ex4_1_no_gradient_flows_through_the_drift(ex):
    x0, a = randn(4, 9, 3), randn(5, 3, 3)
    x = x0.clone().requires_grad_(True)
    drift = torch.tanh(x @ a)  # a field computed from x *with* its graph: the stop-gradient must cut it
    loss = ex.drift_loss(x, drift)
    check_true(isinstance(loss, torch.Tensor) and loss.requires_grad,
               "the loss must depend on x", "the returned loss does not require grad",
               hint="compute |x - stopgrad(x + V)|^2 with x itself")
    loss.backward()
    check_close(x.grad, -2 * drift.detach() / x.shape[0],
                prop="stop-gradient: even when V depends on x, dL/dx_i = -2 V_i / N (no term through V)",
                hint="detach the whole target x + V: without it you differentiate |V(x)|^2, another objective")
    leaf = randn(6, 9, 3).requires_grad_(True)
    ex.drift_loss(x0.clone().requires_grad_(True), leaf).backward()
    received = leaf.grad is not None and bool(leaf.grad.abs().max() > 0)
    check_true(not received, "stop-gradient: the drift receives no gradient",
               f"the drift's .grad is {None if leaf.grad is None else 'non-zero'}",
               hint="the target x + V must be detached before the subtraction")


@exercise("4.1", "drift_loss")
def test_ex4_1_float32_loss_and_inputs_unchanged(ex):
    x, v = randn(7, 11, 3).float(), randn(8, 11, 3).float()
    got = call_unchanged(ex.drift_loss, x, v)
    check_dtype(got, torch.float32, name="drift_loss of float32 inputs",
                hint="compute the loss in the dtype of x; no .double() or float64 accumulator")
    check_tensor(got, (), name="drift_loss of float32 inputs")
    check_close(got, v.double().square().sum(dim=1).mean(), rtol=1e-5,
                prop="float32 inputs give the float64 value (1/N) sum_i |V_i|^2 to float32 accuracy")


# ------------------------------------------------------------------------------ 4.2 multi_temperature_drift


@exercise("4.2", "multi_temperature_drift")
def test_ex4_2_matches_reference(ex):
    x, y = randn(10, 24, 3), randn(11, 30, 3, shift=0.5)
    taus = (0.05, 0.3, 1.0)
    got, raw = ex.multi_temperature_drift(x, y, taus)
    want, want_raw = dm.multi_temperature_drift(x, y, None, taus)
    check_tensor(got, (24, 3), name="the summed field V")
    check_close(got, want, prop="V = sum_tau V_tau / rms(V_tau) matches drifting_min's multi_temperature_drift",
                hint="rms(V_tau) = sqrt(mean of V_tau^2 over samples AND dimensions): one number per temperature")
    check_true(isinstance(raw, (list, tuple)) and len(raw) == len(taus),
               "raw holds one number per temperature", f"got {type(raw).__name__} of length "
               f"{len(raw) if hasattr(raw, '__len__') else '?'} for {len(taus)} temperatures")
    check_close(torch.tensor([float(r) for r in raw], dtype=F64), torch.tensor(want_raw, dtype=F64),
                prop="raw[k] = (1/N) sum_i |V_tau_k,i|^2, measured before normalisation",
                hint="log the raw field's energy before dividing by its rms; sum over dims, mean over samples")


@exercise("4.2", "multi_temperature_drift")
def test_ex4_2_each_normalised_term_has_unit_mean_square(ex):
    x, y = randn(12, 20, 4), randn(13, 26, 4, shift=-0.3)
    one, _ = ex.multi_temperature_drift(x, y, (0.4,))
    check_close(one.square().mean(), torch.tensor(1.0, dtype=F64),
                prop="one temperature: the normalised field has mean square 1 over samples and dimensions",
                hint="divide by sqrt(mean(V^2)), not by mean(V^2) and not by each row's norm")
    twice, _ = ex.multi_temperature_drift(x, y, (0.4, 0.4))
    check_close(twice, 2 * one, prop="terms are summed: the same temperature twice gives twice the field",
                hint="sum the normalised fields; do not average them")


@exercise("4.2", "multi_temperature_drift")
def test_ex4_2_invariant_to_the_scale_of_the_data(ex):
    x, y = randn(14, 18, 2), randn(15, 22, 2, shift=1.0)
    taus, c = (0.1, 0.5), 3.0
    base, raw = ex.multi_temperature_drift(x, y, taus)
    scaled, raw_scaled = ex.multi_temperature_drift(c * x, c * y, [c * t for t in taus])
    check_close(scaled, base, prop="normalisation removes the raw scale: scaling x, y+ and tau by c leaves V "
                "unchanged (each raw V_tau scales by c)",
                hint="without normalisation, or dividing by the mean square instead of its root, V scales with c")
    check_close(torch.tensor([float(r) for r in raw_scaled], dtype=F64),
                c**2 * torch.tensor([float(r) for r in raw], dtype=F64),
                prop="the raw energies are measured before normalisation, so they scale by c^2",
                hint="record (1/N) sum |V_tau|^2 of the raw field, not of the normalised one")


@exercise("4.2", "multi_temperature_drift")
def test_ex4_2_float32_small_tau_and_inputs_unchanged(ex):
    x, y = ring_float32(16)
    taus = (SMALL_TAU, 0.2)
    got, raw = call_unchanged(ex.multi_temperature_drift, x, y, taus)
    want, want_raw = dm.multi_temperature_drift(x.double(), y.double(), None, taus)
    check_float32(got, want, (6, 2), name="V of float32 inputs with tau = 0.02 and 0.2",
                  prop="float32 inputs, tau = 0.02 and 0.2, data 2.2 beyond the samples: dtype kept, finite, "
                  "the float64 V")
    check_close(torch.tensor([float(r) for r in raw], dtype=F64), torch.tensor(want_raw, dtype=F64),
                rtol=F32_RTOL, atol=1e-12, prop="float32 inputs: the raw energies match the float64 ones",
                finite_hint=STABLE_HINT)


@exercise("4.2", "multi_temperature_drift")
def test_ex4_2_zero_field_is_normalised_to_zero(ex):
    # Every sample and every data point at the origin: each V_tau is exactly zero, so its rms is zero too.
    x, y = torch.zeros(5, 2, dtype=F64), torch.zeros(7, 2, dtype=F64)
    got, raw = ex.multi_temperature_drift(x, y, (0.1, 0.5))
    check_tensor(got, (5, 2), name="V when every field is zero",
                 finite_hint="the guard of the normalisation broke: a zero field has rms 0, and 0 / 0 is NaN; divide "
                 "by rms.clamp_min(1e-12) so that a zero field stays zero")
    check_close(got, torch.zeros_like(got), atol=1e-12, prop="a zero field stays zero after normalisation",
                hint="V_tau / max(rms, 1e-12) is exactly 0 when V_tau is 0")
    check_close(torch.tensor([float(r) for r in raw], dtype=F64), torch.zeros(2, dtype=F64), atol=1e-12,
                prop="the raw energies of zero fields are 0")


# ------------------------------------------------------------------------------------- 4.3 drift_particles


def _reference_drift(x0, y, tau, step, n_steps):
    states = [x0.clone()]
    for _ in range(n_steps):
        states.append(states[-1] + step * dm.batch_drift_field(states[-1], y, None, tau))
    return torch.stack(states)


@exercise("4.3", "drift_particles")
def test_ex4_3_matches_a_reference_loop(ex):
    x0, y = randn(20, 16, 2, scale=0.5), ring_of_blobs(21, 40)
    got = call_unchanged(ex.drift_particles, x0, y, 0.5, 2.0, 5)
    check_tensor(got, (6, 16, 2), name="the trajectory",
                 hint="stack x0 and the state after each of the n_steps updates")
    check_close(got, _reference_drift(x0, y, 0.5, 2.0, 5),
                prop="x_{t+1} = x_t + step * V(x_t), with V = dm.batch_drift_field(x_t, y_pos, None, tau)",
                hint="recompute the field at the current particles every step; entry 0 is x0; do not update in place")


@exercise("4.3", "drift_particles")
def test_ex4_3_particles_reach_the_data(ex):
    x0, y = randn(22, 96, 2, scale=0.3), ring_of_blobs(23, 128)
    keep = x0.clone()
    path = ex.drift_particles(x0, y, 0.5, 1.0, 60)
    check_tensor(path, (61, 96, 2), name="the trajectory")
    check_true(torch.equal(x0, keep), "x0 is not modified", "x0 changed during the call",
               hint="work on a copy: x = x0.clone(), and x = x + step * V rather than x += ...")
    check_close(path[0], x0, prop="entry 0 of the trajectory is x0", hint="append x0 before the first update")
    start, end = energy_distance(path[0], y), energy_distance(path[-1], y)
    check_true(end < 0.1 * start, "drifting along V brings the particles to the data (energy distance shrinks)",
               f"energy distance to the data: {start:.4g} at the start, {end:.4g} after 60 steps "
               f"(expected below {0.1 * start:.4g})",
               hint="move along +V (towards the data), and recompute V as the particles move")


@exercise("4.3", "drift_particles")
def test_ex4_3_float32_trajectory(ex):
    x0, y = far_float32(24, 10, 12, offset=1.0)
    got = call_unchanged(ex.drift_particles, x0, y, 0.3, 0.5, 3)
    check_float32(got, _reference_drift(x0.double(), y.double(), 0.3, 0.5, 3), (4, 10, 2),
                  name="the trajectory of float32 particles",
                  prop="float32 particles give a float32 trajectory equal to the float64 one to float32 accuracy")


# -------------------------------------------------------------------------------------- 4.4 generator_step


def _mlp(seed: int, noise_dim: int = 3, width: int = 16, dim: int = 2) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(noise_dim, width), torch.nn.SiLU(), torch.nn.Linear(width, dim)).to(F64)


@exercise("4.4", "generator_step")
def test_ex4_4_matches_a_step_with_drifting_loss(ex):
    net, taus = _mlp(30), (0.2, 0.6)
    twin = copy.deepcopy(net)
    noise, y = randn(31, 20, 3), ring_of_blobs(32, 24)
    opt = torch.optim.SGD(net.parameters(), lr=0.3)
    for p in net.parameters():
        p.grad = torch.ones_like(p)  # stale gradients from an earlier step: a training step clears them
    loss, raw = ex.generator_step(net, opt, noise, y, taus)

    twin_opt = torch.optim.SGD(twin.parameters(), lr=0.3)
    twin_opt.zero_grad()
    want_loss, stats = dm.drifting_loss(twin(noise), y, taus)
    want_loss.backward()
    twin_opt.step()
    check_true(isinstance(loss, float), "the loss is returned as a Python float", f"got {type(loss).__name__}",
               hint="return float(loss)")
    check_close(torch.tensor(loss, dtype=F64), want_loss.detach(),
                prop="the returned loss is the value before the step, (1/N) sum |V_i|^2 of the normalised field",
                hint="the value to return is this step's drift loss at the samples before the update; if the "
                "parameters below match, look at which samples the returned number was computed from")
    check_close(torch.tensor([float(r) for r in raw], dtype=F64), torch.tensor(stats["raw_drift_sq"], dtype=F64),
                prop="raw holds each temperature's (1/N) sum |V_tau|^2 before normalisation",
                hint="return the raw list of exercise 4.2 unchanged")
    for (name, got_p), want_p in zip(net.named_parameters(), twin.parameters()):
        check_close(got_p.detach(), want_p.detach(),
                    prop=f"after one step the generator's {name} equals that of a step with dm.drifting_loss",
                    hint="the parameters must move by exactly one SGD step on this step's drift loss; a "
                         "difference comes from gradients left from before (zero them first), a missing "
                         "backward or step, or a loss not summed over dims and averaged over samples")


@exercise("4.4", "generator_step")
def test_ex4_4_linear_generator_closed_form(ex):
    torch.manual_seed(33)
    net = torch.nn.Linear(3, 2, bias=False).to(F64)
    w0 = net.weight.detach().clone()
    noise, y, lr, n = randn(34, 25, 3), ring_of_blobs(35, 30), 0.2, 25
    x = noise @ w0.T
    v, _ = dm.multi_temperature_drift(x, y, None, (0.5,))
    loss, _ = ex.generator_step(net, torch.optim.SGD(net.parameters(), lr=lr), noise, y, (0.5,))
    check_true(isinstance(loss, float), "the loss is returned as a Python float", f"got {type(loss).__name__}",
               hint="return float(loss)")
    check_close(torch.tensor(loss, dtype=F64), torch.tensor(2.0, dtype=F64),
                prop="with one normalised temperature the loss is exactly D (= 2 here), whatever the generator",
                hint="the field is normalised to unit mean square per entry, so (1/N) sum |V_i|^2 = D; "
                     "a mean over the dimensions as well would give 1")
    # x = eps W^T, dL/dx_i = -2 V_i / N  =>  dL/dW = -(2/N) V^T eps  =>  W <- W + lr (2/N) V^T eps.
    check_close(net.weight.detach(), w0 + lr * 2.0 / n * v.T @ noise,
                prop="one SGD step moves the weights by lr * (2/N) V^T eps (the chain rule through x = eps W^T)",
                hint="the generated samples must move along +V: check the sign of the target and that V is "
                     "the normalised multi-temperature field")


# ------------------------------------------------------------------------------------ 4.5 unbalanced_drift


@exercise("4.5", "unbalanced_drift")
def test_ex4_5_matches_scaled_reference_pieces(ex):
    x, y = randn(40, 14, 3), randn(41, 19, 3, shift=0.4)
    got = ex.unbalanced_drift(x, y, 0.7, 1.5, 0.6)
    check_tensor(got, (14, 3), name="unbalanced_drift(x, y_pos, tau, attraction, repulsion)")
    v_pos, v_neg = dm.mean_shift(x, y, 0.7, "laplace"), dm.mean_shift(x, x, 0.7, "laplace")
    check_close(got, 1.5 * v_pos - 0.6 * v_neg,
                prop="attraction * V+ - repulsion * V- with Laplace-kernel mean shifts (population form)",
                hint="V+ towards y_pos, V- towards x itself (no self-mask); scale each, then subtract")
    balanced = ex.unbalanced_drift(x, y, 0.7, 1.0, 1.0)
    check_close(balanced, dm.drift_field(x, y, x, 0.7, "laplace"),
                prop="attraction = repulsion = 1 gives lesson 03's field V = V+ - V-",
                hint="the Laplace kernel uses plain distances: logits -|x - y| / tau")


@exercise("4.5", "unbalanced_drift")
def test_ex4_5_zero_at_p_equals_q_only_when_balanced(ex):
    x = randn(42, 16, 2)
    y = x.clone()
    balanced = ex.unbalanced_drift(x, y, 0.5, 1.5, 1.5)
    check_close(balanced, torch.zeros_like(x), atol=1e-12,
                prop="equal scales: V = 0 when the data and the samples are the same set",
                hint="both halves must use the same kernel and temperature, and the same scale")
    more_pull = ex.unbalanced_drift(x, y, 0.5, 1.5, 1.0)
    v_pos = dm.mean_shift(x, y, 0.5, "laplace")
    check_close(more_pull, 0.5 * v_pos,
                prop="1.5x attraction: at p = q the field is (attraction - repulsion) V+, not zero",
                hint="attraction multiplies the pull towards y_pos, repulsion the push away from x")


@exercise("4.5", "unbalanced_drift")
def test_ex4_5_attraction_only_collapses(ex):
    y = randn(43, 120, 2)
    x_bal = x_att = randn(44, 120, 2, scale=0.5, shift=1.0)
    for _ in range(40):
        x_bal = x_bal + 0.5 * ex.unbalanced_drift(x_bal, y, 0.5, 1.0, 1.0)
        x_att = x_att + 0.5 * ex.unbalanced_drift(x_att, y, 0.5, 1.0, 0.0)
    data, bal, att = (float(s.std(dim=0).mean()) for s in (y, x_bal, x_att))
    check_true(att < 0.05 * data and bal > 0.7 * data,
               "attraction only collapses the samples (mode seeking); the balanced field keeps the data's spread",
               f"spread (std per dim): data {data:.3g}, balanced {bal:.3g}, attraction only {att:.3g} "
               f"(expected balanced > {0.7 * data:.3g}, attraction only < {0.05 * data:.3g})",
               hint="repulsion = 0 must remove V- entirely; V+ moves each sample to a weighted mean of the data")


@exercise("4.5", "unbalanced_drift")
def test_ex4_5_float32_small_tau_and_inputs_unchanged(ex):
    x, y = far_float32(45, 10, 12)
    for tau in (0.5, SMALL_TAU):
        got = call_unchanged(ex.unbalanced_drift, x, y, tau, 1.5, 0.5)
        want = 1.5 * dm.mean_shift(x.double(), y.double(), tau, "laplace") - 0.5 * dm.mean_shift(
            x.double(), x.double(), tau, "laplace")
        check_float32(got, want, (10, 2), name=f"unbalanced_drift of float32 inputs (tau = {tau})",
                      prop=f"float32 inputs, data 3 away, tau = {tau}: dtype kept, finite, the float64 field")


# ---------------------------------------------------------------------------------------------- every exercise:
# devices, inputs that require grad, no side effects, fresh results, Python floats, one generator call a step,
# far from the origin, arguments varied

# Exercises 4.2, 4.3 and 4.5 use drifting_min's fields, which validate their inputs' values (finite, non-empty):
# the meta device holds no values, so only 4.1 is tried there.
FAR_HINT = ("distances from the differences x_i - y_j (drifting_min's fields do this): no float32 step, which keeps "
            "no digit of a distance near 1 at an offset of 1e6")


@exercise("4.1", "drift_loss")
def test_ex4_1_devices_side_effects_one_sample(ex):
    x, v = randn(40, 1, 3), randn(41, 1, 3)  # a batch of one sample
    got = check_portable(ex.drift_loss, x, v, name="drift_loss")
    check_close(got, v.square().sum(), rtol=1e-12, prop="one sample: L = |V|^2",
                hint="sum over the dimensions, mean over the samples")


@exercise("4.2", "multi_temperature_drift")
def test_ex4_2_devices_python_floats_far_from_origin(ex):
    x, y = randn(42, 8, 2, scale=0.5), ring_of_blobs(43, 10)
    taus = (0.3, 0.9)
    field, raw = check_portable(ex.multi_temperature_drift, x, y, taus, name="multi_temperature_drift", meta=False)
    check_true(isinstance(raw, list) and len(raw) == 2, "raw is a list with one number per temperature",
               f"got {type(raw).__name__} {raw!r:.80}")
    for value in raw:
        check_python_float(value, name="each raw mean squared drift",
                           hint="float(...) of the 0-dimensional tensor: a Python float, not a tensor")
    expected, stats = dm.multi_temperature_drift(x, y, None, taus)
    far, far_raw = ex.multi_temperature_drift(x + 1e6, y + 1e6, taus)
    check_close(far, expected, rtol=1e-6, atol=1e-8, hint=FAR_HINT,
                prop="float64 points far from the origin (offset 1e6): the normalised field keeps float64 accuracy")
    check_close(torch.tensor(far_raw, dtype=F64), torch.tensor(stats, dtype=F64), rtol=1e-6,
                prop="float64 points far from the origin (offset 1e6): the raw energies keep float64 accuracy",
                hint=FAR_HINT)


@exercise("4.3", "drift_particles")
def test_ex4_3_devices_side_effects(ex):
    x0, y = randn(44, 6, 2, scale=0.5), ring_of_blobs(45, 8)
    got = check_portable(ex.drift_particles, x0, y, 0.4, 0.7, 2, name="drift_particles", meta=False)
    check_close(got.detach(), _reference_drift(x0, y, 0.4, 0.7, 2), rtol=1e-10,
                prop="particles that require grad: the same trajectory (tau 0.4, step 0.7, 2 steps)")


class _CountingGenerator(torch.nn.Module):
    """A generator that counts its calls."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net, self.calls = net, 0

    def forward(self, noise):
        self.calls += 1
        return self.net(noise)


@exercise("4.4", "generator_step")
def test_ex4_4_one_generator_call_a_step(ex):
    net = _CountingGenerator(_mlp(36))
    noise, y = randn(37, 12, 3), ring_of_blobs(38, 16)
    before = noise.clone()
    loss, raw = ex.generator_step(net, torch.optim.SGD(net.parameters(), lr=0.1), noise, y, (0.3, 0.8))
    check_true(net.calls == 1, "one training step calls the generator once",
               f"the generator was called {net.calls} times",
               hint="x = generator(noise) once: compute the field from that x (under no_grad) and the loss from the "
                    "same x; a second call costs a forward pass and, with dropout or noise inside, gives other samples")
    check_true(torch.equal(noise, before), "the noise is not modified", hint="do not change the noise in place")
    for value in raw:
        check_python_float(value, name="each raw mean squared drift", hint="return the raw list of 4.2 as it is")


@exercise("4.5", "unbalanced_drift")
def test_ex4_5_devices_far_from_origin_scales_varied(ex):
    x, y = randn(46, 6, 2, scale=0.5), ring_of_blobs(47, 8)
    check_portable(ex.unbalanced_drift, x, y, 0.5, 1.5, 0.5, name="unbalanced_drift", meta=False, grad_args=(0, 1))
    for attraction, repulsion in ((1.5, 0.5), (0.0, 2.0)):
        expected = attraction * dm.mean_shift(x, y, 0.5, "laplace") - repulsion * dm.mean_shift(x, x, 0.5, "laplace")
        check_close(ex.unbalanced_drift(x + 1e6, y + 1e6, 0.5, attraction, repulsion), expected, rtol=1e-6,
                    atol=1e-8, hint=FAR_HINT,
                    prop=f"float64 points far from the origin (offset 1e6; attraction {attraction}, repulsion "
                         f"{repulsion}): float64 accuracy")
