"""Graded checks of lesson 06: feature-space kernels.

Run them with `pytest lessons/06` (your exercises) or `pytest lessons/06 --solutions` (the worked answers);
one exercise alone with `pytest lessons/06 -k ex6_1`. Every random draw is seeded. Values are compared in
float64 with drifting_min or with a float64 transcription written here; float32 checks say why their
tolerance is looser.
"""

from __future__ import annotations

import math

import torch

from course import (
    call_checked,
    call_on_meta,
    call_requiring_grad,
    call_unchanged,
    check_close,
    check_dtype,
    check_fresh_result,
    check_tensor,
    check_true,
    draw,
    exercise,
)
from drifting_min import features

# the exercises define the loss without the release's two floors (features.released_drift_loss has them on)
NO_FLOORS = {"min_sq_distance": 0.0, "scale_floor": 0.0}


def _unchanged(before: list[torch.Tensor], after: list[torch.Tensor], what: str, hint: str = "") -> None:
    for i, (b, a) in enumerate(zip(before, after)):
        check_true(torch.equal(b, a), f"{what} leaves its inputs unchanged", f"input {i} was modified in place",
                   hint=hint or "compute new tensors (x / s, not x /= s or x.div_(s))")


def _rotation(seed: int, d: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(draw(seed, (d, d))[0])
    return q


# ---------------------------------------------------------------------------------------------- 6.1 concentration_ratio


def _concentration64(x: torch.Tensor) -> torch.Tensor:
    x = x.double()
    n = x.shape[0]
    d = (x[:, None, :] - x[None, :, :]).square().sum(-1).sqrt()
    off = ~torch.eye(n, dtype=torch.bool)
    nearest = torch.stack([d[i][off[i]].min() for i in range(n)])
    mean = torch.stack([d[i][off[i]].mean() for i in range(n)])
    return (nearest / mean).mean()


@exercise("6.1", "concentration_ratio")
def test_ex6_1_matches_reference(ex):
    (x,) = draw(0, (40, 6))
    x[:10] = x[:10] * 0.2  # some points much closer together than others
    got = ex.concentration_ratio(x)
    check_tensor(got, (), name="concentration_ratio(x)", hint="return a 0-dimensional tensor (the mean over points)")
    check_close(got, _concentration64(x), rtol=1e-9,
                prop="ratio = mean over i of min_{j != i} |x_i - x_j| / mean_{j != i} |x_i - x_j|",
                hint="plain distances; leave each point's zero distance to itself out of the minimum AND the mean "
                "(the mean divides by N - 1); average the per-point ratios, not a ratio of averages")


@exercise("6.1", "concentration_ratio")
def test_ex6_1_equidistant_points_and_invariances(ex):
    simplex = 3.0 * torch.eye(5, dtype=torch.float64)  # every pair at the same distance 3 sqrt(2)
    got = ex.concentration_ratio(simplex)
    check_close(got, torch.tensor(1.0, dtype=torch.float64), rtol=1e-9,
                prop="points all at the same distance from each other give ratio 1",
                hint="a ratio of 0 means a point's distance to itself was taken as its nearest; below 1, the zero "
                "diagonal was counted in the mean")
    (x,) = draw(1, (30, 4))
    r = ex.concentration_ratio(x)
    moved = ex.concentration_ratio(2.5 * x @ _rotation(2, 4).T + 1.0)
    check_close(moved, r, rtol=1e-9, prop="the ratio is invariant to rotating, shifting and scaling the points",
                hint="a ratio of two distances has no units")


@exercise("6.1", "concentration_ratio")
def test_ex6_1_float32_and_inputs(ex):
    (x,) = draw(3, (25, 8), dtype=torch.float32)
    before = x.clone()
    got = ex.concentration_ratio(x)
    check_true(got.dtype == torch.float32, "the ratio comes back in the dtype of x (float32 here)", f"got {got.dtype}",
               hint="work in x's dtype; no .double() or float64 constants")
    check_close(got, _concentration64(before), rtol=1e-4, prop="float32 agrees with float64 (to float32 rounding)")
    _unchanged([before], [x], "concentration_ratio")


@exercise("6.1", "concentration_ratio")
def test_ex6_1_devices_far_from_origin_extreme_scales(ex):
    (x,) = draw(13, (20, 5))  # 20 points: torch.cdist takes its exact route (differences) below 25 rows
    expected = _concentration64(x)
    got, _ = call_requiring_grad(ex.concentration_ratio, x, name="concentration_ratio")
    check_close(got, expected, rtol=1e-9, prop="points that require grad give the same ratio")
    call_on_meta(ex.concentration_ratio, x, name="concentration_ratio")
    check_close(ex.concentration_ratio(x + 1e6), expected, rtol=1e-7,
                prop="float64 points far from the origin (offset 1e6) keep float64 accuracy",
                hint="distances from the differences x_i - x_j (torch.cdist, or (x_i - x_j).norm()): "
                     "|x|^2 + |y|^2 - 2 x.y cancels away the digits at this offset, and so does a float32 step")
    for c in (1e-8, 1e8):
        # float32: rtol 1e-4 covers float32 rounding of distances and of the mean over 20 points
        check_close(ex.concentration_ratio((c * x).float()), expected, rtol=1e-4,
                    prop=f"float32 points scaled by {c:g} give the same ratio (a ratio of distances has no units)",
                    hint="nothing added to the distances or their squares (an epsilon of 1e-12 is large next to "
                         "squared distances of 1e-16)")


# ------------------------------------------------------------------------------------------------ 6.2 patch_stats


@exercise("6.2", "patch_stats")
def test_ex6_2_matches_reference(ex):
    (fmap,) = draw(4, (3, 5, 8, 8))
    for p in (2, 4, 8):
        mean, std = ex.patch_stats(fmap, p)
        g = (8 // p) ** 2
        check_tensor(mean, (g, 3, 5), name=f"mean (p = {p})", hint="shape G x B x C: groups first")
        check_tensor(std, (g, 3, 5), name=f"std (p = {p})", hint="shape G x B x C: groups first")
        ref = features.multiscale_features([fmap], patch_sizes=(p,) if p < 8 else ())
        key = f"s0.p{p}" if p < 8 else "s0"
        check_close(mean, ref[f"{key}.mean"], rtol=1e-10,
                    prop=f"p = {p}: patch means match drifting_min (groups in row-major order of patches)",
                    hint="reshape to B, C, H/p, p, W/p, p; mean over the two p axes; then groups first")
        check_close(std, ref[f"{key}.std"], rtol=1e-10,
                    prop=f"p = {p}: patch stds match drifting_min, sqrt(population variance + 1e-6)",
                    hint="var(..., unbiased=False), i.e. divide by p^2, and add 1e-6 inside the root")


@exercise("6.2", "patch_stats")
def test_ex6_2_layout_and_flat_patches(ex):
    # fmap[b, c, h, w] = 100 c + 10 h + w (+ b): each patch's mean says where it is.
    h = torch.arange(4, dtype=torch.float64)
    fmap = (100 * torch.arange(2, dtype=torch.float64)[:, None, None] + 10 * h[None, :, None] + h[None, None, :])
    fmap = fmap[None].repeat(2, 1, 1, 1) + torch.tensor([0.0, 1000.0], dtype=torch.float64)[:, None, None, None]
    mean, _ = ex.patch_stats(fmap, 2)
    expected = torch.tensor([5.5, 7.5, 25.5, 27.5], dtype=torch.float64)  # patches (0,0), (0,1), (1,0), (1,1)
    expected = (expected[:, None, None] + 100 * torch.arange(2.0, dtype=torch.float64)
                + torch.tensor([0.0, 1000.0], dtype=torch.float64)[:, None])
    check_close(mean, expected, rtol=1e-12,
                prop="group g = a (W/p) + b is the patch of rows a p.., columns b p..; "
                     "dims are [group, sample, channel]",
                hint="patches are contiguous p x p blocks in row-major order (not every p-th pixel, not column-major)")
    flat = torch.full((2, 3, 4, 4), 0.7, dtype=torch.float64, requires_grad=True)
    m, s = ex.patch_stats(flat, 2)
    check_close(s, torch.full_like(s, 1e-3), rtol=1e-9,
                prop="a flat patch has std sqrt(0 + 1e-6) = 1e-3",
                hint="add 1e-6 to the variance inside the square root")
    (grad,) = torch.autograd.grad(s.sum() + m.sum(), flat)
    check_true(bool(torch.isfinite(grad).all()), "the gradient through a flat patch's std is finite",
               "got NaN or Inf", hint="sqrt(var) has an infinite derivative at 0: that is what the 1e-6 is for")


@exercise("6.2", "patch_stats")
def test_ex6_2_float32_and_inputs(ex):
    (fmap,) = draw(5, (2, 3, 4, 8), dtype=torch.float32)
    before = fmap.clone()
    mean, std = ex.patch_stats(fmap, 2)
    check_true(mean.dtype == torch.float32 and std.dtype == torch.float32,
               "patch statistics come back in the dtype of the map (float32 here)", f"got {mean.dtype}, {std.dtype}")
    check_tensor(mean, (8, 2, 3), name="mean of a 4 x 8 map, p = 2", hint="G = (H/p)(W/p): rectangular maps too")
    _unchanged([before], [fmap], "patch_stats")


@exercise("6.2", "patch_stats")
def test_ex6_2_floor_between_values_far_from_origin_devices(ex):
    signs = torch.tensor([[1.0, -1.0], [-1.0, 1.0]], dtype=torch.float64)  # a 2 x 2 patch of population variance 1
    for var in (1e-6, 4e-6, 1e-2):  # variances near the 1e-6 inside the root, and one far above it
        _, std = ex.patch_stats((signs * math.sqrt(var))[None, None], 2)
        check_close(std, torch.full((1, 1, 1), math.sqrt(var + 1e-6), dtype=torch.float64), rtol=1e-10,
                    prop=f"a patch of population variance {var:g}: std = sqrt({var:g} + 1e-6)",
                    hint="1e-6 is added to the variance inside the root: not a floor max(std, 1e-3), not 1e-3 "
                         "added to the std")
    (fmap,) = draw(14, (2, 3, 4, 4))
    ref = features.multiscale_features([fmap], patch_sizes=(2,))
    mean, std = ex.patch_stats(fmap + 1e5, 2)
    check_close(std, ref["s0.p2.std"], rtol=1e-9,
                prop="a map far from the origin (offset 1e5, float64): the stds keep float64 accuracy",
                hint="the variance is the mean of the squared deviations from the mean (torch.var does this); "
                     "E[x^2] - E[x]^2 cancels away the digits at this offset")
    check_close(mean - 1e5, ref["s0.p2.mean"], rtol=1e-9, atol=1e-9,
                prop="a map far from the origin (offset 1e5, float64): the means are the means")
    call_requiring_grad(ex.patch_stats, fmap, 2, name="patch_stats")
    call_on_meta(ex.patch_stats, fmap, 2, name="patch_stats")
    check_fresh_result(ex.patch_stats, fmap, 4, name="patch_stats")


# ------------------------------------------------------------------------------------------------ 6.3 rescale_features


def _scale64(gen, pos):
    t = torch.cat([gen, pos], 1).double()
    return (gen.double()[:, :, None, :] - t[:, None, :, :]).square().sum(-1).sqrt().mean()


@exercise("6.3", "rescale_features")
def test_ex6_3_matches_reference(ex):
    gen, pos = draw(6, (4, 10, 5), (4, 7, 5), scale=3.0)
    pos = pos + 2.0
    g_s, p_s, scale = ex.rescale_features(gen, pos)
    s64 = _scale64(gen, pos)
    check_close(g_s, gen / (s64 / math.sqrt(5)), rtol=1e-10,
                prop="gen is divided by s / sqrt(C), s = mean of |gen_i - t_j| over groups, generated samples and "
                     "targets t = [gen | pos]",
                hint="plain distances (not squared); the targets are the generated samples AND the positives, each "
                     "sample's zero distance to itself counted in the mean; then sqrt(C), not C")
    check_close(p_s, pos / (s64 / math.sqrt(5)), rtol=1e-10, prop="pos is divided by the same s / sqrt(C)")
    check_tensor(scale, (), name="the third value, s", hint="one number for the whole call: a 0-dimensional tensor")
    check_close(scale, s64, rtol=1e-10,
                prop="the third value is the scale s itself, the mean distance (the rescaled features are right)",
                hint="return s, not s / sqrt(C) or another statistic")
    released_scale = features.released_drift_loss(gen, pos, **NO_FLOORS)[1]["scale"]
    check_close(scale, torch.tensor(released_scale, dtype=torch.float64), rtol=1e-9,
                prop="s equals the one drifting_min's released loss computes without the release's floors")


@exercise("6.3", "rescale_features")
def test_ex6_3_mean_distance_sqrt_c_and_invariance(ex):
    gen, pos = draw(7, (3, 12, 16), (3, 9, 16))
    g_s, p_s, _ = ex.rescale_features(gen, pos)
    check_close(_scale64(g_s, p_s), torch.tensor(4.0, dtype=torch.float64), rtol=1e-9,
                prop="after rescaling, the mean generated-to-target distance is sqrt(C) (= 4 for C = 16)",
                hint="divide by scale / sqrt(C)")
    g2, p2, scale2 = ex.rescale_features(50 * gen - 3, 50 * pos - 3)
    g1, p1, scale1 = ex.rescale_features(gen - 3 / 50, pos - 3 / 50)
    check_close(g2, g1, rtol=1e-9, prop="rescaled features do not change when the features are multiplied by 50",
                hint="the scale must grow like the distances (plain, not squared)")
    check_close(p2, p1, rtol=1e-9, prop="rescaled positives do not change when the features are multiplied by 50")
    check_close(scale2, 50 * scale1, rtol=1e-9, prop="the scale grows like a distance: x50 features, x50 scale")


@exercise("6.3", "rescale_features")
def test_ex6_3_scale_is_a_constant(ex):
    gen, pos = draw(8, (2, 6, 3), (2, 5, 3))
    gen = gen.float().requires_grad_(True)
    pos = pos.float()
    before = [gen.detach().clone(), pos.clone()]
    g_s, p_s, scale = ex.rescale_features(gen, pos)
    check_true(not scale.requires_grad, "the scale carries no gradient (a statistic of the batch)",
               "scale.requires_grad is True", hint="compute it under torch.no_grad() or .detach() it")
    check_true(g_s.dtype == torch.float32 and p_s.dtype == torch.float32,
               "rescaled features keep the dtype of the inputs (float32 here)", f"got {g_s.dtype}, {p_s.dtype}")
    w = torch.linspace(-1, 1, g_s.numel()).reshape(g_s.shape)
    (grad,) = torch.autograd.grad((g_s * w).sum(), gen)
    s64 = _scale64(gen.detach(), pos)  # the right scale, whatever the third value returned
    check_close(grad, w * math.sqrt(3) / s64, rtol=1e-4,
                prop="d(gen / s)/d gen = 1 / s: the scale is a constant in the gradient (float32: rtol 1e-4)",
                hint="with a gradient through the scale, moving one sample would rescale all the others")
    _unchanged(before, [gen.detach(), pos], "rescale_features")


@exercise("6.3", "rescale_features")
def test_ex6_3_devices_far_from_origin_extreme_scales_one_sample(ex):
    gen, pos = draw(15, (2, 8, 4), (2, 9, 4))  # 17 targets: torch.cdist takes its exact route below 25
    s64 = _scale64(gen, pos)
    call_unchanged(ex.rescale_features, gen, pos)  # inputs that do not require grad keep not requiring it
    call_requiring_grad(ex.rescale_features, gen, pos, name="rescale_features")
    call_on_meta(ex.rescale_features, gen, pos, name="rescale_features")
    _, _, far = ex.rescale_features(gen + 1e6, pos + 1e6)
    check_close(far, s64, rtol=1e-8,
                prop="features far from the origin (offset 1e6, float64): s keeps float64 accuracy",
                hint="distances from differences (torch.cdist): |x|^2 + |y|^2 - 2 x.y cancels away the digits at this "
                     "offset, and so does a float32 step")
    for c in (1e-8, 1e8):
        g_s, _, scale = ex.rescale_features((c * gen).float(), (c * pos).float())
        # float32: rtol 1e-5 covers float32 rounding of 4-dimensional distances and their mean
        check_close(scale, c * s64, rtol=1e-5, prop=f"float32 features scaled by {c:g}: s scales with them",
                    hint="nothing added to the distances or their squares")
        check_close(g_s, gen / (s64 / 2), rtol=1e-5,
                    prop=f"float32 features scaled by {c:g}: the rescaled features do not change")
    one_gen = torch.tensor([[[0.0, 0.0]]], dtype=torch.float64)
    one_pos = torch.tensor([[[3.0, 4.0]]], dtype=torch.float64)
    g_s, p_s, scale = ex.rescale_features(one_gen, one_pos)
    check_close(scale, torch.tensor(2.5, dtype=torch.float64), rtol=1e-12,
                prop="one group, one sample, one positive: s = (0 + 5) / 2, the self distance counted",
                hint="the targets are [gen | pos]: the sample's zero distance to itself is one of the two")
    check_close(p_s, one_pos / (2.5 / math.sqrt(2)), rtol=1e-12, prop="one sample: pos / (s / sqrt(C))")


# ------------------------------------------------------------------------------------------------ 6.4 normalise_drifts


def _normalise64(forces):
    return sum(f.double() / f.double().square().mean().clamp_min(1e-8).sqrt() for f in forces)


@exercise("6.4", "normalise_drifts")
def test_ex6_4_matches_reference(ex):
    forces = draw(9, (3, 8, 4), (3, 8, 4), (3, 8, 4))
    forces = [f * s for f, s in zip(forces, (0.01, 1.0, 30.0))]
    got = ex.normalise_drifts(forces)
    check_tensor(got, (3, 8, 4), name="the summed force")
    check_close(got, _normalise64(forces), rtol=1e-10,
                prop="F = sum_k F_k / sqrt(max(mean(F_k^2), 1e-8)), the mean over every entry of F_k",
                hint="normalise each temperature's force by its own RMS over all groups, samples and dims, then sum")


@exercise("6.4", "normalise_drifts")
def test_ex6_4_unit_rms_and_scale_free(ex):
    (f,) = draw(10, (2, 16, 5))
    one = ex.normalise_drifts([f])
    check_close(one.square().mean(), torch.tensor(1.0, dtype=torch.float64), rtol=1e-10,
                prop="one temperature: the result has mean square 1 (over groups, samples and dims)",
                hint="divide by sqrt(mean of squares), not by a norm per sample or a sum over dims")
    a, b = draw(11, (2, 16, 5), (2, 16, 5))
    check_close(ex.normalise_drifts([1e3 * a, b]), ex.normalise_drifts([a, b]), rtol=1e-9,
                prop="multiplying one temperature's force by 1000 changes nothing: each is normalised on its own",
                hint="normalise each force before summing, not the sum")


@exercise("6.4", "normalise_drifts")
def test_ex6_4_floor_float32_and_inputs(ex):
    (f,) = draw(12, (2, 10, 3), dtype=torch.float32)
    zero = torch.zeros_like(f)
    before = [zero.clone(), f.clone()]
    got = ex.normalise_drifts([zero, f])
    _unchanged(before, [zero, f], "normalise_drifts")
    check_true(bool(torch.isfinite(got).all()), "a zero force gives no NaN (the floor)",
               "got NaN or Inf", hint="clamp the mean square at 1e-8 before the square root")
    check_true(got.dtype == torch.float32, "the result keeps the forces' dtype (float32 here)", f"got {got.dtype}")
    check_close(got, f / f.square().mean().sqrt(), rtol=1e-5, atol=1e-7,
                prop="a zero force adds nothing (float32: rtol 1e-5)")
    tiny = 1e-6 * f / f.square().mean().sqrt()  # RMS 1e-6, below the floor's 1e-4
    out = ex.normalise_drifts([tiny.double()])
    check_close(out, tiny.double() / 1e-4, rtol=1e-5,
                prop="a force of RMS 1e-6 is divided by the floor 1e-4, not blown up to unit size",
                hint="the floor is on the mean square (1e-8), i.e. 1e-4 on the RMS")


@exercise("6.4", "normalise_drifts")
def test_ex6_4_floor_between_values_devices(ex):
    (f,) = draw(16, (2, 6, 3))
    unit = f / f.square().mean().sqrt()
    for rms in (1e-2, 3e-4, 1.5e-4):  # above the floor's 1e-4 (RMS): normalised to unit mean square
        check_close(ex.normalise_drifts([rms * unit]), unit, rtol=1e-9,
                    prop=f"a force of RMS {rms:g}, above the floor (1e-4 on the RMS), is normalised to unit size",
                    hint="the floor is 1e-8 on the mean square, i.e. 1e-4 on the RMS: no higher")
    for rms in (5e-5, 1e-6):  # below the floor: divided by 1e-4
        check_close(ex.normalise_drifts([rms * unit]), rms * unit / 1e-4, rtol=1e-9,
                    prop=f"a force of RMS {rms:g}, below the floor, is divided by 1e-4 (the floor), not by its RMS",
                    hint="the floor is 1e-8 on the mean square, i.e. 1e-4 on the RMS: no lower")
    call_requiring_grad(ex.normalise_drifts, [f, 3 * f], name="normalise_drifts")
    call_on_meta(ex.normalise_drifts, [f, 3 * f], name="normalise_drifts")
    check_fresh_result(ex.normalise_drifts, [unit], name="normalise_drifts")


# ------------------------------------------------------------------------------------------------ 6.5 released_loss


def _reference_loss(gen, pos, taus, clip):
    loss, _ = features.released_drift_loss(gen, pos, taus=taus, clip=clip, **NO_FLOORS)
    return loss


@exercise("6.5", "released_loss")
def test_ex6_5_value_and_gradient_match_reference(ex):
    for seed, (g, n, m, d) in enumerate([(3, 9, 7, 1), (2, 12, 10, 4), (4, 8, 6, 64)]):
        for clip in (True, False):
            gen, pos = draw(20 + seed, (g, n, d), (g, m, d))
            pos = pos * 0.8 + 0.6
            gen = gen.requires_grad_(True)
            got = ex.released_loss(gen, pos, (0.02, 0.05, 0.2), clip)
            check_tensor(got, (), name="released_loss(...)", hint="a scalar: the mean over groups, samples and dims")
            (grad,) = torch.autograd.grad(got, gen)
            ref = _reference_loss(gen, pos, (0.02, 0.05, 0.2), clip)
            (ref_grad,) = torch.autograd.grad(ref, gen)
            what = f"G={g}, N={n}, M={m}, D={d}, clip={clip}"
            check_close(got, ref, rtol=1e-7, prop=f"the loss value matches drifting_min ({what})",
                        hint="steps 1-5 of the docstring; with clip the product of the softmaxes is floored at 1e-6 "
                        "*before* the square root; +100 on each sample's scaled distance to itself")
            check_close(grad, ref_grad, rtol=1e-6, atol=1e-12, prop=f"the gradient matches drifting_min ({what})",
                        hint="the goal is a constant (computed with no gradient); only gen / s carries gen's graph")


@exercise("6.5", "released_loss")
def test_ex6_5_one_temperature_gives_one_and_scale_free(ex):
    gen, pos = draw(30, (3, 10, 6), (3, 8, 6))
    one = ex.released_loss(gen, pos, (0.05,), True)
    check_close(one, torch.tensor(1.0, dtype=torch.float64), rtol=1e-9,
                prop="with one temperature the loss is exactly 1 (the normalised force has unit mean square)",
                hint="the loss is the mean (over groups, samples AND dims) of (x / s - goal)^2 "
                     "= the normalised force squared")
    base = ex.released_loss(gen, pos, (0.02, 0.2), False)
    scaled = ex.released_loss(7 * gen + 1, 7 * pos + 1, (0.02, 0.2), False)
    check_close(scaled, base, rtol=1e-8, prop="the loss does not change when features are scaled by 7 and shifted",
                hint="distances divided by the scale; coordinates by scale / sqrt(D)")


@exercise("6.5", "released_loss")
def test_ex6_5_float32_small_tau_and_graph(ex):
    gen, pos = draw(31, (2, 16, 32), (2, 16, 32))
    gen32 = (3 * gen).float().requires_grad_(True)
    pos = 3 * pos + 1
    pos[:, 0] += 40.0  # one positive far from every generated sample: its column of exp(logits) underflows
    pos32 = pos.float().requires_grad_(True)
    before = [gen32.detach().clone(), pos32.detach().clone()]
    got = ex.released_loss(gen32, pos32, (0.02,), False)
    check_true(got.dtype == torch.float32, "float32 features give a float32 loss", f"got {got.dtype}")
    check_tensor(got, (), name="the float32 loss at tau = 0.02",
                 hint="exp / sum underflows at tau = 0.02 (0 / 0 for a far positive): "
                      "use log_softmax for both softmaxes")
    got.backward()
    check_true(pos32.grad is None or float(pos32.grad.abs().max()) == 0.0,
               "no gradient reaches the positives (they are constants)",
               f"max |grad pos| = {float(pos32.grad.abs().max()) if pos32.grad is not None else 0:.3g}",
               hint="the targets and the goal are computed with no gradient")
    ref_gen = gen32.detach().double().requires_grad_(True)
    ref = _reference_loss(ref_gen, pos32.detach().double(), (0.02,), False)
    ref.backward()
    check_close(gen32.grad, ref_gen.grad, rtol=2e-3, atol=1e-7,
                prop="at tau = 0.02 in float32 the gradient agrees with float64 (rtol 2e-3: float32 rounding)",
                hint="compute the softmaxes in log space; no float16/bfloat16")
    _unchanged(before, [gen32.detach(), pos32.detach()], "released_loss")


@exercise("6.5", "released_loss")
def test_ex6_5_outlier_with_clip_moves_toward_the_data(ex):
    gen, pos = draw(40, (1, 12, 2), (1, 10, 2))
    gen[0, 0] = torch.tensor([30.0, 0.0], dtype=torch.float64)  # a generated sample far from every target
    nearest = pos[0][(pos[0] - gen[0, 0]).norm(dim=1).argmin()] - gen[0, 0]
    for taus in ((0.02, 0.05, 0.2), (0.05,)):
        g = gen.clone().requires_grad_(True)
        got = ex.released_loss(g, pos, taus, True)
        (grad,) = torch.autograd.grad(got, g)
        ref_g = gen.clone().requires_grad_(True)
        (ref_grad,) = torch.autograd.grad(_reference_loss(ref_g, pos, taus, True), ref_g)
        step = -grad[0, 0]
        cosine = float(step @ nearest / (step.norm() * nearest.norm()).clamp_min(1e-300))
        check_true(cosine > 0.5, f"clip on, an outlier 30 scales away moves toward the data (taus {taus})",
                   f"cosine between its step (-gradient) and the way to its nearest positive: {cosine:.4f} "
                   "(the reference: above 0.9)",
                   hint="attraction W+ t+ minus repulsion W- t-, with W+ = A+ rowsum(A-), W- = A- rowsum(A+); the +100 "
                        "goes on the self distance (a distance, made larger), before the logits -d / tau")
        check_close(grad, ref_grad, rtol=1e-6, atol=1e-15,
                    prop=f"clip on, with an outlier: the gradient matches drifting_min (taus {taus})",
                    hint="with the clip every affinity is at least 1e-3, the outlier's own self entry too")


@exercise("6.5", "released_loss")
def test_ex6_5_bf16_devices_far_from_origin(ex):
    gen, pos = draw(41, (2, 10, 8), (2, 9, 8))  # 19 targets: torch.cdist takes its exact route below 25
    g16 = gen.to(torch.bfloat16).requires_grad_(True)
    p16 = pos.to(torch.bfloat16)
    bf16_hint = ("bfloat16 and float16 features are computed in float32 (gen.float(), pos.float() first): "
                 "softmaxes at tau = 0.02 in bf16 keep 3 significant digits, and some operations have no bf16 kernel")
    got = call_checked(ex.released_loss, g16, p16, (0.02, 0.2), True, prop="released_loss accepts bfloat16 features",
                       hint=bf16_hint)
    check_dtype(got, torch.float32, name="the loss of bfloat16 features", hint=bf16_hint)
    ref = _reference_loss(g16.detach(), p16, (0.02, 0.2), True)
    # rtol 1e-5: the same float32 computation on the same bf16 values, summed in another order
    check_close(got, ref, rtol=1e-5, prop="bfloat16 features: the float32 loss of their values")
    got.backward()
    check_true(g16.grad is not None and g16.grad.dtype == torch.bfloat16,
               "the gradient reaches bfloat16 features, in their dtype", hint="convert with .to() (it keeps the graph)")
    loss, _ = call_requiring_grad(ex.released_loss, gen, pos, (0.05,), False, name="released_loss")
    call_on_meta(ex.released_loss, gen, pos, (0.05,), True, name="released_loss")
    base = ex.released_loss(gen, pos, (0.02, 0.05, 0.2), True)
    check_close(ex.released_loss(gen + 1e4, pos + 1e4, (0.02, 0.05, 0.2), True), base, rtol=1e-7,
                prop="float64 features far from the origin (offset 1e4): the loss keeps float64 accuracy",
                hint="distances from differences (torch.cdist); no float32 step for float64 input")
