"""Graded checks of lesson 05: 2D toys.

Run them with `pytest lessons/05` (your exercises) or `pytest lessons/05 --solutions` (the worked answers);
one exercise alone with `pytest lessons/05 -k ex5_1`. Every random draw is seeded; values are compared in
float64 with drifting_min or with a closed form. Training checks use tiny configurations (a second or two).
"""

from __future__ import annotations

import copy
import dataclasses

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
    draw,
    exercise,
)
from drifting_min import toys
from drifting_min.toys import metrics

# A tiny, fast configuration for the training checks. Each check works on its own copy (tiny()), so that a
# function that changes its config in place cannot leak into the reference runs or into later checks.
TINY = toys.ToyConfig(dataset="eight_gaussians", steps=100, batch_gen=64, batch_data=64, hidden=32, depth=2, seed=3)


def tiny(**change) -> toys.ToyConfig:
    """A fresh copy of TINY (with ``change`` applied)."""
    return dataclasses.replace(copy.deepcopy(TINY), **change)


# ------------------------------------------------------------------------------------------------ 5.1 energy_distance


@exercise("5.1", "energy_distance")
def test_ex5_1_matches_reference(ex):
    a, b = draw(0, (30, 2), (20, 2))
    got = ex.energy_distance(a, b)
    check_tensor(got, (), name="energy_distance(a, b)", hint="return a 0-dimensional tensor (a scalar)")
    check_close(got, torch.tensor(metrics.energy_distance(a, b), dtype=torch.float64),
                prop="E = 2 mean|a - b| - mean|a - a'| - mean|b - b'|",
                hint="plain (not squared) distances; within-set means over all N^2 pairs, diagonal included")


@exercise("5.1", "energy_distance")
def test_ex5_1_two_points_closed_form(ex):
    a = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    got = ex.energy_distance(a, b)
    check_close(got, torch.tensor(10.0, dtype=torch.float64), prop="one point each: E = 2 |a - b| (here 2 x 5)",
                hint="the distance is plain, |a - b| = 5, not squared (25); the cross term counts twice and the "
                "within-set terms are zero")
    pair = torch.tensor([[0.0, 0.0], [2.0, 0.0]], dtype=torch.float64)
    got = ex.energy_distance(pair, pair)
    check_close(got, torch.tensor(0.0, dtype=torch.float64), atol=1e-12,
                prop="E(a, a) = 0 (the same set against itself)",
                hint="the diagonal zeros count in the within-set means: mean over all N^2 pairs")


@exercise("5.1", "energy_distance")
def test_ex5_1_nonnegative_symmetric_invariant(ex):
    a, b = draw(1, (25, 2), (25, 2))
    e = ex.energy_distance(a, b)
    check_true(float(e) >= 0, "E(a, b) >= 0 for any two sets", f"got {float(e):.4g}",
               hint="with the diagonal included and the cross term doubled, E is never negative")
    check_close(ex.energy_distance(b, a), e, prop="E(a, b) = E(b, a)")
    shift = torch.tensor([3.0, -1.0], dtype=torch.float64)
    rot = torch.tensor([[0.6, -0.8], [0.8, 0.6]], dtype=torch.float64)
    check_close(ex.energy_distance(a @ rot.T + shift, b @ rot.T + shift), e,
                prop="E is invariant to moving both sets by the same rotation and shift")
    check_close(ex.energy_distance(2 * a, 2 * b), 2 * e, prop="E scales like a distance: E(2a, 2b) = 2 E(a, b)",
                hint="squared distances would scale by 4")


# ------------------------------------------------------------------------------------------------ 5.2 train_step


def _tiny_generator(seed: int = 0) -> toys.Generator:
    torch.manual_seed(seed)
    return toys.Generator(noise_dim=4, hidden=16, depth=2).double()


def _step_setup(seed: int = 0):
    net = _tiny_generator(seed)
    noise, y_pos = draw(seed + 100, (48, 4), (40, 2))
    return net, noise, y_pos


@exercise("5.2", "train_step")
def test_ex5_2_matches_reference_over_two_steps(ex):
    cfg = tiny(taus=(0.1, 0.3), kernel="laplace")
    net, noise, y_pos = _step_setup(0)
    ref = copy.deepcopy(net)
    opt, ref_opt = torch.optim.SGD(net.parameters(), lr=0.05), torch.optim.SGD(ref.parameters(), lr=0.05)
    for step in range(2):
        loss = ex.train_step(net, opt, noise, y_pos, cfg)
        ref_loss, _ = toys.train_step(ref, ref_opt, noise, y_pos, cfg)
        check_true(isinstance(loss, float), "train_step returns the loss as a Python float",
                   f"got {type(loss).__name__}")
        check_close(loss, ref_loss, rtol=1e-9, prop=f"the loss before step {step + 1} matches the reference",
                    hint="L = (1/N) sum_i |x_i - stopgrad(x_i + V_i)|^2: sum over dims, mean over samples")
        for (name, p), q in zip(net.named_parameters(), ref.parameters()):
            check_close(p, q, rtol=1e-7, atol=1e-12,
                        prop=f"after step {step + 1}, parameter {name} matches one reference SGD step",
                        hint="the parameters must move by exactly one SGD step on this step's loss; a difference "
                        "comes from gradients left from before (zero them first), a target x + V that is "
                        "not detached, or a missing step")


@exercise("5.2", "train_step")
def test_ex5_2_samples_move_along_the_field(ex):
    cfg = tiny(taus=(0.2,), normalisation="uncoupled")
    net, noise, y_pos = _step_setup(1)
    with torch.no_grad():
        x0 = net(noise)
        v, _ = dm.multi_temperature_drift(x0, y_pos, None, cfg.taus, cfg.kernel, cfg.normalisation)
    loss = ex.train_step(net, torch.optim.SGD(net.parameters(), lr=1e-3), noise, y_pos, cfg)
    check_close(loss, float(v.square().sum(1).mean()), rtol=1e-9,
                prop="the loss value is (1/N) sum_i |V_i|^2",
                hint="stopgrad(x + V) - x = V: the loss is the field's energy")
    with torch.no_grad():
        moved = net(noise) - x0
    along = float((moved * v).sum())
    check_true(along > 0, "a small step moves the samples along V (sum_i <x_new - x_old, V_i> > 0)",
               f"sum of <move, V> = {along:.3g}",
               hint="a gradient step on |x - stopgrad(x + V)|^2 pulls each x towards x + V; a move "
               "against V means the target is x - V, no move a target that is not detached")


@exercise("5.2", "train_step")
def test_ex5_2_every_field_option_is_used(ex):
    # One configuration cannot tell a step that reads cfg.kernel from one that always uses the default: each
    # option below changes the reference loss (by 1% to 100x), so each must change the learner's loss alike.
    options = [("the base configuration", {}), ("kernel='gaussian'", dict(kernel="gaussian")),
               ("normalisation='targets'", dict(normalisation="targets")),
               ("normalisation='uncoupled'", dict(normalisation="uncoupled")),
               ("normalise_each=False", dict(normalise_each=False))]
    for label, change in options:
        cfg = tiny(taus=(0.1, 0.3), **change)
        net, noise, y_pos = _step_setup(4)
        ref = copy.deepcopy(net)
        loss = call_unchanged(ex.train_step, net, torch.optim.SGD(net.parameters(), lr=0.05), noise, y_pos, cfg)
        ref_opt = torch.optim.SGD(ref.parameters(), lr=0.05)
        ref_loss, _ = toys.train_step(ref, ref_opt, noise, y_pos, tiny(taus=(0.1, 0.3), **change))
        check_close(loss, ref_loss, rtol=1e-9, prop=f"configuration plumbing: with {label} the loss is the reference's",
                    hint="every knob of the field must come from cfg: dm.multi_temperature_drift(x, y_pos, None, "
                    "cfg.taus, cfg.kernel, cfg.normalisation, cfg.normalise_each)")


# ------------------------------------------------------------------------------------------------ 5.3 field_on_grid


@exercise("5.3", "field_on_grid")
def test_ex5_3_matches_reference(ex):
    samples, data = draw(2, (40, 2), (50, 2))
    for kernel, taus in (("laplace", (0.1, 0.5)), ("gaussian", (0.3, 1.0))):
        points, v = ex.field_on_grid(samples, data, taus, kernel, lim=2.0, n=7)
        check_tensor(points, (49, 2), name="points")
        check_tensor(v, (49, 2), name="V on the grid")
        ref_points, ref_v = toys.field_on_grid(samples, data, taus, kernel, lim=2.0, n=7)
        check_close(points, ref_points, prop="grid points: point k = (axis[k % n], axis[k // n])",
                    hint='torch.meshgrid(axis, axis, indexing="xy"), then flatten each and stack as columns')
        check_close(v, ref_v, prop=f"V on the grid matches the reference ({kernel} kernel, taus {taus})",
                    hint="per temperature dm.drift_field(points, data, samples, tau, kernel), divided by its RMS "
                    "over the grid (mean over points and dims), then summed")


@exercise("5.3", "field_on_grid")
def test_ex5_3_zero_when_samples_are_data_and_antisymmetric(ex):
    samples, data = draw(3, (30, 2), (30, 2))
    _, v = ex.field_on_grid(samples, data, (0.3,), "laplace", lim=1.5, n=5)
    _, v_swapped = ex.field_on_grid(data, samples, (0.3,), "laplace", lim=1.5, n=5)
    check_close(v_swapped, -v, prop="anti-symmetry: swapping samples and data negates the field",
                hint="V = V+ (towards the data) - V- (towards the samples)")
    _, v_same = ex.field_on_grid(data, data.clone(), (0.3, 1.0), "laplace", lim=1.5, n=5)
    check_tensor(v_same, (25, 2), name="V when the samples equal the data",
                 finite_hint="the guard of the normalisation broke: the field is zero here, its rms is 0, and "
                 "0 / 0 is NaN; divide by rms.clamp_min(1e-12) so that a zero field stays zero")
    check_true(float(v_same.abs().max()) < 1e-9, "V = 0 everywhere when the samples equal the data",
               f"max |V| = {float(v_same.abs().max()):.3g}",
               hint="V+ and V- are then the same mean shift and cancel at every grid point; a nonzero V means "
               "the two halves differ (a self-mask, another kernel or temperature on one side)")
    _, v_big = ex.field_on_grid(samples, data, (0.2,), "gaussian", lim=1.5, n=5)
    rms = float(v_big.square().mean().sqrt())
    check_close(rms, 1.0, prop="one temperature: the field has unit root mean square over the grid",
                hint="divide by sqrt(mean of V^2 over points AND dimensions)")


@exercise("5.3", "field_on_grid")
def test_ex5_3_float32_small_tau_and_inputs_unchanged(ex):
    # Samples and data 5 to 7 away from every grid point: at tau = 0.02 every Laplace exp(-d / tau) is 0 in float32.
    samples, data = draw(4, (20, 2), (25, 2), scale=0.3)
    samples, data = (samples - torch.tensor([6.0, 0.0], dtype=torch.float64)).float(), (data + 6.0).float()
    points, v = call_unchanged(ex.field_on_grid, samples, data, (0.02, 0.2), "laplace", lim=1.0, n=5)
    ref_points, ref_v = toys.field_on_grid(samples.double(), data.double(), (0.02, 0.2), "laplace", lim=1.0, n=5)
    stable = ("the property that broke is stability in float32 at a small temperature; a NaN usually means an "
              "exp / sum that underflowed to 0 / 0 (dm.drift_field and torch.softmax are stable), or an rms "
              "division without its floor")
    for got, want, name in ((points, ref_points, "points"), (v, ref_v, "V")):
        check_dtype(got, torch.float32, name=f"{name} for float32 samples",
                    hint="build the grid with dtype=samples.dtype and keep every intermediate in that dtype")
        check_tensor(got, (25, 2), name=f"{name} for float32 samples", finite_hint=stable)
        # Float32 keeps about seven digits; 1e-4 is ten times looser than what the reference achieves here.
        check_close(got, want, rtol=1e-4, atol=1e-4, finite_hint=stable,
                    prop=f"float32 inputs, tau = 0.02 and 0.2, everything 5 away: {name} matches the float64 one")


# ------------------------------------------------------------------------------------------------ 5.4 ablation


@exercise("5.4", "ablation")
def test_ex5_4_matches_training_runs(ex):
    out = call_unchanged(ex.ablation, tiny(), taus=(0.05,), global_rng=False,  # toys.train seeds torch itself
                         hint="build the variant with dataclasses.replace(base, **change): setting fields of base "
                         "changes the caller's config")
    check_true(isinstance(out, dict) and set(out) == {"base", "variant"},
               "ablation returns a dict with the keys 'base' and 'variant'", f"got {out!r:.200}")
    base = toys.train(tiny(), progress=False).metrics
    variant = toys.train(tiny(taus=(0.05,)), progress=False).metrics
    check_close(out["base"]["floor_ratio"], base["floor_ratio"], rtol=1e-9,
                prop="'base' holds the metrics of the base configuration, unchanged",
                hint="train base itself; apply the change only to the variant")
    check_close(out["variant"]["floor_ratio"], variant["floor_ratio"], rtol=1e-9,
                prop="'variant' holds the metrics of base with the change applied (and nothing else)",
                hint="variant = dataclasses.replace(base, **change)")


@exercise("5.4", "ablation")
def test_ex5_4_attraction_only_is_worse(ex):
    out = call_unchanged(ex.ablation, tiny(), attraction_only=True, global_rng=False)
    b, v = out["base"]["floor_ratio"], out["variant"]["floor_ratio"]
    check_true(v > 2 * b, "attraction only (no repulsion) scores worse than the anti-symmetric field",
               f"floor_ratio: base {b:.3g}, attraction only {v:.3g}",
               hint="the variant must carry the change; the base must not")
    check_true(out["base"].get("modes_covered") is not None, "the metrics are the protocol's (toys.train(...).metrics)",
               f"got keys {sorted(out['base'])}")


# ------------------------------------------------------------------------------------------------ 5.5 mode_coverage


@exercise("5.5", "mode_coverage")
def test_ex5_5_matches_reference(ex):
    centres = toys.eight_gaussian_centres().double()
    samples = toys.sample_data("eight_gaussians", 500, seed=5).double()
    samples[:200] = samples[:200] * 0.5  # pull some samples off the modes
    near, covered = ex.mode_coverage(samples, centres, 0.05)
    check_tensor(near, (8,), name="near")
    ref = metrics.mode_coverage(samples, centres, 0.05)
    check_close(near, torch.tensor(ref["near"], dtype=torch.float64), atol=5e-5,
                prop="near[k] = share of all samples within 3 std of centre k",
                hint="a plain distance <= 3 * std (not 3 * std^2), averaged over all N samples")
    check_true(covered == ref["covered"], "covered = number of modes with near >= 0.05",
               f"expected {ref['covered']}, got {covered}")


@exercise("5.5", "mode_coverage")
def test_ex5_5_boundaries(ex):
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], dtype=torch.float64)
    # 100 samples: 5 exactly at 3 std from mode 1 (the boundary counts as near), 95 at mode 0, none at mode 2.
    samples = torch.zeros(100, 2, dtype=torch.float64)
    samples[:5] = torch.tensor([10.0, 0.75])
    near, covered = ex.mode_coverage(samples, centres, 0.25)
    check_close(near, torch.tensor([0.95, 0.05, 0.0], dtype=torch.float64), atol=1e-12,
                prop="a sample exactly 3 std away is near (<=); shares are over all samples",
                hint="use <= 3 * std, and the mean over the N samples")
    check_true(covered == 2, "a mode with exactly 5% of the samples is covered (>= 0.05)",
               f"expected 2 covered modes, got {covered}", hint="covered when fraction >= 0.05; return a Python int")


@exercise("5.5", "mode_coverage")
def test_ex5_5_overlapping_modes_and_float32(ex):
    # Two modes 0.5 apart with std 0.25: closer than 3 std, so a sample between them is near both. 50 samples
    # sit near both, 10 near mode 1 only, 40 far from either: near = [0.5, 0.6], both covered.
    centres = torch.tensor([[0.0, 0.0], [0.5, 0.0]], dtype=torch.float64)
    samples = torch.cat([torch.tensor([[0.2, 0.0]]).expand(50, 2), torch.tensor([[0.9, 0.0]]).expand(10, 2),
                         torch.tensor([[10.0, 10.0]]).expand(40, 2)]).to(torch.float64)
    want = torch.tensor([0.5, 0.6], dtype=torch.float64)
    for dtype in (torch.float64, torch.float32):
        near, covered = call_unchanged(ex.mode_coverage, samples.to(dtype), centres, 0.25)
        check_dtype(near, dtype, name=f"near for {dtype} samples",
                    hint="convert the comparison to samples.dtype, e.g. (dist <= 3 * std).to(samples.dtype)")
        check_close(near, want, atol=1e-6,
                    prop="overlapping modes: a sample within 3 std of two centres counts as near both",
                    hint="near is a per-centre test, dist[i, k] <= 3 std for every k; it is not an assignment of "
                    "each sample to its nearest mode")
        check_true(covered == 2, "both overlapping modes are covered", f"expected 2 covered modes, got {covered}")


# ---------------------------------------------------------------------------------------------- every exercise:
# devices, inputs that require grad, no side effects, fresh results, Python numbers, one generator call a step,
# far from the origin, thresholds between values

# 5.3 uses drifting_min's fields, which validate their inputs' values (finite, non-empty): the meta device holds
# no values, so only 5.1 is tried there; 5.4 trains whole runs and is checked above.


@exercise("5.1", "energy_distance")
def test_ex5_1_devices_far_from_origin_one_sample(ex):
    a, b = draw(50, (6, 2), (7, 2))  # 13 points: torch.cdist takes its exact route below 25 rows
    b = b + 0.5
    check_portable(ex.energy_distance, a, b, name="energy_distance")
    expected = ex_reference_energy(a, b)
    check_close(ex.energy_distance(a + 1e6, b + 1e6), expected, rtol=1e-7,
                prop="float64 samples far from the origin (offset 1e6): float64 accuracy",
                hint="distances from the differences a_i - b_j (torch.cdist): |a|^2 + |b|^2 - 2 a.b keeps no digit "
                     "of a distance near 1 at this offset, and neither does a float32 step")
    one = ex.energy_distance(a[:1], b[:1])
    check_close(one, 2 * (a[0] - b[0]).norm(), rtol=1e-12, prop="one sample each: E = 2 |a - b|",
                hint="the within-set means of a single sample are 0 (its distance to itself)")


def ex_reference_energy(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Szekely's energy distance from explicit differences, in float64."""
    def mean_distance(p, q):
        return (p[:, None, :] - q[None, :, :]).norm(dim=-1).mean()
    return 2 * mean_distance(a, b) - mean_distance(a, a) - mean_distance(b, b)


class _CountingGenerator(torch.nn.Module):
    """A generator that counts its calls."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net, self.calls = net, 0

    def forward(self, noise):
        self.calls += 1
        return self.net(noise)


@exercise("5.2", "train_step")
def test_ex5_2_one_generator_call_a_step(ex):
    net, noise, y_pos = _step_setup(5)
    counted = _CountingGenerator(net)
    loss = call_unchanged(ex.train_step, counted, torch.optim.SGD(counted.parameters(), lr=0.05), noise, y_pos,
                          tiny(taus=(0.1, 0.3)))
    check_python_float(loss, name="the loss of train_step", hint="return float(loss)")
    check_true(counted.calls == 1, "one training step calls the generator once",
               f"the generator was called {counted.calls} times",
               hint="x = generator(noise) once: the field (under no_grad) and the loss both come from that x")


@exercise("5.3", "field_on_grid")
def test_ex5_3_devices_side_effects(ex):
    samples, data = draw(51, (6, 2), (7, 2))
    check_portable(ex.field_on_grid, samples, data, (0.2, 0.5), "laplace", lim=1.0, n=4, name="field_on_grid",
                   meta=False)


@exercise("5.5", "mode_coverage")
def test_ex5_5_thresholds_between_values_and_types(ex):
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], dtype=torch.float64)
    # 200 samples: 9 (4.5%) at mode 1, 11 (5.5%) at 3.2 std from mode 2 (not near), 180 at mode 0.
    samples = torch.zeros(200, 2, dtype=torch.float64)
    samples[:9] = torch.tensor([10.0, 0.0])
    samples[9:20] = torch.tensor([0.0, 10.8])
    near, covered = check_portable(ex.mode_coverage, samples, centres, 0.25, name="mode_coverage", meta=False,
                                   grad_args=())
    check_close(near, torch.tensor([0.9, 0.045, 0.0], dtype=torch.float64), atol=1e-12,
                prop="a sample 3.2 std away is not near (the bound is 3 std, no more)",
                hint="near when the plain distance is <= 3 * std")
    check_true(type(covered) is int, "covered is a Python int",
               f"got {type(covered).__module__}.{type(covered).__name__}", hint="int(...) of the count")
    check_true(covered == 1, "a mode with 4.5% of the samples is not covered (the threshold is 5%, no lower)",
               f"expected 1 covered mode, got {covered}", hint="covered when the fraction is >= 0.05")
