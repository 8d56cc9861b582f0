"""drifting_min.features: the released batch loss against a float64 transcription of its description
(REFERENCE.md) written here with loops, its relation with the canonical batch form of lesson 03, the
multi-scale features against direct computations, mixed precision and where gradients flow.

Set DRIFTING_TEST_DEVICE=cuda to run them on a GPU.
"""

from __future__ import annotations

import math
import os

import pytest
import torch

import drifting_min as dm
from drifting_min import features
from drifting_min.features import feature_drift_loss, multiscale_features, released_drift_loss

DEVICE = torch.device(os.environ.get("DRIFTING_TEST_DEVICE", "cpu"))
TAUS = (0.02, 0.05, 0.2)


def draw(seed: int, *shapes, dtype=torch.float64, shift: float = 0.0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(*s, generator=gen, dtype=dtype) + shift).to(DEVICE) for s in shapes]


def uniform(seed: int, *shape, low: float = 0.2, high: float = 2.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (low + (high - low) * torch.rand(*shape, generator=gen, dtype=torch.float64)).to(DEVICE)


# ------------------------------------------------------------------ a float64 transcription of the description


def transcribed_loss(gen, pos, neg=None, pos_w=None, neg_w=None, taus=TAUS, clip=True, min_sq=0.0, floor=0.0):
    """REFERENCE.md's description of the released batch loss, step by step, one group at a time, float64, with
    the released code's floors: distances sqrt(max(d^2, min_sq)), the distance normaliser max(s, floor) and the
    coordinate scale max(s / sqrt(D), floor) (min_sq = floor = 0, the default: without them).

    Returns the loss (a function of ``gen`` for autograd), the scale and each temperature's raw mean square.
    """
    gen64 = gen.to(torch.float64)
    x = gen64.detach()
    g, n, d = x.shape
    parts, weights = [x], [torch.ones(g, n, dtype=torch.float64, device=x.device)]
    if neg is not None:
        parts.append(neg.detach().double())
        weights.append(torch.ones(g, neg.shape[1], dtype=torch.float64, device=x.device) if neg_w is None
                       else neg_w.double().expand(g, -1))
    parts.append(pos.detach().double())
    weights.append(torch.ones(g, pos.shape[1], dtype=torch.float64, device=x.device) if pos_w is None
                   else pos_w.double().expand(g, -1))
    y, w = torch.cat(parts, 1), torch.cat(weights, 1)
    t, n_neg = y.shape[1], y.shape[1] - pos.shape[1]

    # one scale: the weighted mean over every group, generated sample and target of sqrt(max(|x_i - y_j|^2, e))
    dists = [(x[k][:, None, :] - y[k][None, :, :]).pow(2).sum(-1).clamp(min=min_sq).sqrt() for k in range(g)]
    num = sum(float(dists[k][i, j] * w[k, j]) for k in range(g) for i in range(n) for j in range(t))
    den = sum(float(w[k, j]) for k in range(g) for i in range(n) for j in range(t))
    scale = num / den
    c = max(scale / math.sqrt(d), floor)  # coordinates are divided by max(scale / sqrt(dims), floor)

    total = [torch.zeros(n, d, dtype=torch.float64, device=x.device) for _ in range(g)]
    raw = []
    for r in taus:
        forces = []
        for k in range(g):
            dist = dists[k] / max(scale, floor)
            for i in range(n):
                dist[i, i] = dist[i, i] + 100.0
            logit = -dist / r
            row = logit.exp() / logit.exp().sum(1, keepdim=True)  # softmax over targets
            col = logit.exp() / logit.exp().sum(0, keepdim=True)  # softmax over generated samples
            prod = row * col
            aff = (prod.clamp(min=1e-6) if clip else prod).sqrt() * w[k][None, :]
            a_neg, a_pos = aff[:, :n_neg], aff[:, n_neg:]
            coef = torch.cat([-a_neg * a_pos.sum(1, keepdim=True), a_pos * a_neg.sum(1, keepdim=True)], 1)
            force = torch.zeros(n, d, dtype=torch.float64, device=x.device)
            for i in range(n):
                for j in range(t):
                    force[i] += coef[i, j] * (y[k][j] / c)
                force[i] -= coef[i].sum() * (x[k][i] / c)
            forces.append(force)
        mean_sq = sum(float(f.pow(2).sum()) for f in forces) / (g * n * d)
        raw.append(mean_sq)
        for k in range(g):
            total[k] = total[k] + forces[k] / math.sqrt(max(mean_sq, 1e-8))
    goal = torch.stack([x[k] / c + total[k] for k in range(g)])
    loss = (gen64 / c - goal).pow(2).mean()
    return loss, scale, raw


CASES = [  # groups, generated, extra negatives, positives, dims, weighted, clip
    (3, 6, 0, 5, 1, False, True),
    (4, 5, 3, 6, 2, True, True),
    (2, 7, 2, 4, 7, True, False),
    (3, 6, 4, 8, 64, True, True),
    (2, 5, 3, 6, 65, True, False),
    (2, 4, 2, 5, 512, True, True),
    (5, 8, 0, 9, 16, True, False),
]


# keyword arguments of released_drift_loss: the release's floors (its defaults), and none
FLOORS = {"released": {}, "none": {"min_sq_distance": 0.0, "scale_floor": 0.0}}
TRANSCRIBED_FLOORS = {"released": {"min_sq": 1e-8, "floor": 1e-3}, "none": {"min_sq": 0.0, "floor": 0.0}}


def compare_with_transcription(gen, pos, neg=None, pos_w=None, neg_w=None, clip=True, floors="released",
                               rtol=1e-6):
    """released_drift_loss against transcribed_loss: loss, gradient, scale and raw mean squares."""
    gen_a = gen.clone().requires_grad_(True)
    loss, info = released_drift_loss(gen_a, pos, neg, pos_weight=pos_w, neg_weight=neg_w, clip=clip,
                                     **FLOORS[floors])
    loss.backward()
    gen_b = gen.clone().requires_grad_(True)
    ref, ref_scale, ref_raw = transcribed_loss(gen_b, pos, neg, pos_w, neg_w, clip=clip, **TRANSCRIBED_FLOORS[floors])
    ref.backward()
    assert loss.dtype == gen.dtype
    torch.testing.assert_close(loss, ref.to(loss.dtype), rtol=rtol, atol=0)
    torch.testing.assert_close(gen_a.grad, gen_b.grad.to(gen.dtype), rtol=rtol,
                               atol=rtol * gen_b.grad.abs().max().item())
    assert info["scale"] == pytest.approx(ref_scale, rel=rtol)
    assert info["raw_drift_sq"] == pytest.approx(ref_raw, rel=rtol)
    return loss, gen_a.grad, info


@pytest.mark.parametrize("floors", sorted(FLOORS))
@pytest.mark.parametrize("groups,n,k,m,d,weighted,clip", CASES)
def test_released_loss_matches_the_transcribed_description(groups, n, k, m, d, weighted, clip, floors):
    """Both with the released code's floors and with the defaults (none); the floors matter little here (scales
    near 1), only through the self distances' 1e-4 in s: the tests below put them where they bite."""
    seed = 100 * d + n
    gen, pos = draw(seed, (groups, n, d), (groups, m, d))
    pos = pos + 0.7  # positives away from the generated samples: a field that is not symmetric
    neg = draw(seed + 1, (groups, k, d), shift=0.3)[0] if k else None
    pos_w = uniform(seed + 2, groups, m) if weighted else None
    neg_w = uniform(seed + 3, k) if (weighted and k) else None  # a [K] weight, shared by all groups
    compare_with_transcription(gen, pos, neg, pos_w, neg_w, clip, floors)


@pytest.mark.parametrize("floors", sorted(FLOORS))
@pytest.mark.parametrize("d", [2, 64])
def test_near_duplicate_samples_match_the_transcription(d, floors):
    """Generated samples that repeat one another (distance 0 and 1e-6) and positives 1e-5 from a generated
    sample: with the released floor these distances are 1e-4, without it they are exact."""
    gen, pos = draw(40 + d, (2, 8, d), (2, 6, d))
    gen[:, 1] = gen[:, 0]  # an exact duplicate
    gen[:, 2] = gen[:, 0] + 1e-6 / math.sqrt(d)  # 1e-6 away
    pos[:, 0] = gen[:, 3] + 1e-5 / math.sqrt(d)  # a positive 1e-5 from a generated sample
    pos[:, 1] = gen[:, 4]  # and one on a generated sample
    compare_with_transcription(gen, pos, floors=floors)
    compare_with_transcription(gen, pos, clip=False, floors=floors)


def test_self_distances_enter_the_scale_as_1e_4():
    """The released scale counts each sample's distance to itself as sqrt(1e-8) = 1e-4, not 0."""
    gen, pos = draw(44, (3, 5, 4), (3, 7, 4))
    targets = torch.cat([gen, pos], 1)
    exact = (gen[:, :, None] - targets[:, None]).norm(dim=-1)  # [G, N, T], zero on the self distances
    _, info = released_drift_loss(gen, pos)  # the defaults are the release's floors
    _, info_exact = released_drift_loss(gen, pos, **FLOORS["none"])
    assert info_exact["scale"] == pytest.approx(exact.mean().item(), rel=1e-12)
    assert info["scale"] == pytest.approx(exact.clamp(min=1e-4).mean().item(), rel=1e-12)
    assert info["scale"] - info_exact["scale"] == pytest.approx(5 * 1e-4 / (5 * 12), rel=1e-6)


@pytest.mark.parametrize("clip", [True, False])
@pytest.mark.parametrize("data_scale", [1e-4, 1e-5, 1e-7])
def test_tiny_scales_match_the_transcription_at_512_dims(data_scale, clip):
    """Coordinates of scale 1e-4 at D = 512 (s about 3e-3: between the floor 1e-3 on s and the floor 1e-3 *
    sqrt(D) that s / sqrt(D) reaches, so only the coordinate floor bites), 1e-5 (s about 3e-4: both floors bite)
    and 1e-7 (every distance below 1e-4 as well: the distance floor makes them all equal)."""
    gen, pos = draw(45, (2, 6, 512), (2, 5, 512))
    gen, pos = gen * data_scale, (pos * 0.8 + 0.5) * data_scale
    for floors in FLOORS:
        compare_with_transcription(gen, pos, clip=clip, floors=floors)


def test_the_coordinate_floor_scales_the_gradient_down():
    """Data of scale 1e-4 at D = 512: s / sqrt(D) is about 1.4e-4, floored at 1e-3, so the released gradient is
    (s / sqrt(D)) / 1e-3, about 1/7, of the one without floors; the loss value is unchanged up to the
    self distances' 1e-4 in s. In float32 too (the released code's dtype), against the float64 transcription."""
    gen, pos = draw(46, (2, 8, 512), (2, 8, 512))
    gen, pos = gen * 1e-4, (pos + 0.5) * 1e-4
    loss, grad, info = compare_with_transcription(gen, pos)
    loss_off, grad_off, info_off = compare_with_transcription(gen, pos, floors="none")
    coord = info["scale"] / math.sqrt(512)
    assert 5 < 1e-3 / coord < 10  # the floor bites by a factor of several
    ratio = (grad.norm() / grad_off.norm()).item()
    assert ratio == pytest.approx(coord / 1e-3, rel=0.02)
    assert ratio == pytest.approx(info_off["scale"] / math.sqrt(512) / 1e-3, rel=0.02)
    assert loss.item() == pytest.approx(loss_off.item(), rel=0.02)
    compare_with_transcription(gen.float(), pos.float(), rtol=2e-4)


def test_float32_agrees_with_float64():
    """float32 inputs give float32 math: the same loss to float32 rounding (distances of order 10 whose
    differences matter at 1e-7 relative; 1e-4 is the margin for the exponentials of logits up to 50)."""
    gen, pos, neg = draw(7, (6, 16, 32), (6, 12, 32), (6, 4, 32))
    pos = pos + 0.5
    loss64, info64 = released_drift_loss(gen, pos, neg)
    loss32, info32 = released_drift_loss(gen.float(), pos.float(), neg.float())
    assert loss32.dtype == torch.float32
    assert loss32.item() == pytest.approx(loss64.item(), rel=1e-4)
    assert info32["raw_drift_sq"] == pytest.approx(info64["raw_drift_sq"], rel=1e-3)


def test_blocks_of_groups_give_the_same_loss(monkeypatch):
    """On a CPU, groups go through in blocks (features.CPU_BLOCK pairs): any block size, the same numbers."""
    gen, pos, neg = draw(8, (7, 6, 5), (7, 4, 5), (7, 2, 5))
    pos_w = uniform(9, 7, 4)
    results = []
    for block in (None, 1, 30, 100):
        monkeypatch.setattr(features, "CPU_BLOCK", block)
        g = gen.clone().requires_grad_(True)
        loss, info = released_drift_loss(g, pos, neg, pos_weight=pos_w)
        loss.backward()
        results.append((loss, g.grad, info))
    for loss, grad, info in results[1:]:
        torch.testing.assert_close(loss, results[0][0], rtol=1e-12, atol=0)
        torch.testing.assert_close(grad, results[0][1], rtol=1e-12, atol=1e-15)
        assert info["raw_drift_sq"] == pytest.approx(results[0][2]["raw_drift_sq"], rel=1e-12)
        assert info["scale"] == pytest.approx(results[0][2]["scale"], rel=1e-12)


def test_a_common_offset_changes_nothing_even_in_float32():
    """Distances and forces do not depend on where the data sit; the computation centres each group first, so
    features far from the origin (post-activation means, patch stds) keep float32 precision."""
    gen, pos, neg = draw(18, (4, 16, 32), (4, 12, 32), (4, 3, 32))
    pos = pos + 0.5
    ref, ref_info = released_drift_loss(gen, pos, neg)
    shifted, info = released_drift_loss((gen + 100).float(), (pos + 100).float(), (neg + 100).float())
    assert shifted.item() == pytest.approx(ref.item(), rel=1e-4)
    assert info["scale"] == pytest.approx(ref_info["scale"], rel=1e-4)


# ------------------------------------------------------------------------- the canonical batch form, rescaled


@pytest.mark.parametrize("d", [2, 16, 100])
@pytest.mark.parametrize("taus", [(0.05,), TAUS])
def test_one_group_without_clip_is_the_canonical_batch_form(d, taus):
    """One group, unit weights, no extra negatives, clip off, floors off: the released loss is lesson 03's batch form
    (Laplace kernel, double softmax, self-excluded negatives) with tau = R * scale, the field normalised per
    temperature, the loss a mean over dims (so / D) in coordinates divided by scale / sqrt(D) (so the gradient
    is the canonical one / (scale sqrt(D)))."""
    x, y_pos = draw(d, (20, d), (15, d))
    y_pos = y_pos + 0.5
    xg = x[None].clone().requires_grad_(True)
    loss, info = released_drift_loss(xg, y_pos[None], taus=taus, clip=False, **FLOORS["none"])
    loss.backward()
    s = info["scale"]

    # the scale is the mean distance from each generated sample to every target, itself included
    targets = torch.cat([x, y_pos])
    assert s == pytest.approx((x[:, None] - targets[None]).norm(dim=-1).mean().item(), rel=1e-12)

    canon_taus = [r * s for r in taus]
    xc = x.clone().requires_grad_(True)
    with torch.no_grad():
        v, raw = dm.multi_temperature_drift(x, y_pos, None, canon_taus, kernel="laplace", normalisation="double")
    canon_loss = dm.drift_regression_loss(xc, v)
    canon_loss.backward()

    torch.testing.assert_close(loss, canon_loss / d, rtol=1e-9, atol=0)
    torch.testing.assert_close(xg.grad[0], xc.grad / (s * math.sqrt(d)), rtol=1e-9, atol=1e-15)
    # before normalisation each force is the canonical field in coordinates divided by s / sqrt(D):
    # mean(F_R^2) = mean(V_tau^2) * D / s^2, and the canonical raw energy is mean_i |V_i|^2 = D mean(V^2)
    assert info["raw_drift_sq"] == pytest.approx([e / s**2 for e in raw], rel=1e-9)


def test_clip_changes_the_field():
    """The clip is not a numerical detail: with it on, far positives get a floor weight."""
    x, y_pos = draw(3, (1, 20, 2), (1, 15, 2))
    a, _ = released_drift_loss(x, y_pos + 3.0, clip=True)
    b, _ = released_drift_loss(x, y_pos + 3.0, clip=False)
    assert abs(a.item() - b.item()) > 1e-3


# ----------------------------------------------------------------------------------------- multi-scale features


def test_multiscale_features_shapes_and_values():
    b, c1, c2 = 3, 4, 5
    m1, m2 = draw(11, (b, c1, 8, 8), (b, c2, 6, 6))
    feats = multiscale_features([m1, m2], names=["a", "b"])
    expected_shapes = {
        "a.loc": (64, b, c1), "a.mean": (1, b, c1), "a.std": (1, b, c1),
        "a.p2.mean": (16, b, c1), "a.p2.std": (16, b, c1), "a.p4.mean": (4, b, c1), "a.p4.std": (4, b, c1),
        "b.loc": (36, b, c2), "b.mean": (1, b, c2), "b.std": (1, b, c2),
        "b.p2.mean": (9, b, c2), "b.p2.std": (9, b, c2), "b.p4.mean": (1, b, c2), "b.p4.std": (1, b, c2),
    }  # a 6 x 6 map has one 4 x 4 patch (the last two rows and columns are dropped)
    assert {k: tuple(v.shape) for k, v in feats.items()} == expected_shapes

    def std(t):  # population std over the last axis, with the 1e-6 guard inside the root
        return ((t - t.mean(-1, keepdim=True)).pow(2).mean(-1) + 1e-6).sqrt()

    for name, fmap in (("a", m1), ("b", m2)):
        _, _, h, w = fmap.shape
        for i in range(h):
            for j in range(w):
                torch.testing.assert_close(feats[f"{name}.loc"][i * w + j], fmap[:, :, i, j], rtol=0, atol=0)
        flat = fmap.reshape(b, fmap.shape[1], -1)
        torch.testing.assert_close(feats[f"{name}.mean"][0], flat.mean(-1))
        torch.testing.assert_close(feats[f"{name}.std"][0], std(flat))
        for p in (2, 4):
            for i in range(h // p):
                for j in range(w // p):
                    patch = fmap[:, :, i * p:(i + 1) * p, j * p:(j + 1) * p].reshape(b, fmap.shape[1], -1)
                    group = i * (w // p) + j
                    torch.testing.assert_close(feats[f"{name}.p{p}.mean"][group], patch.mean(-1))
                    torch.testing.assert_close(feats[f"{name}.p{p}.std"][group], std(patch))


def test_multiscale_features_skip_patches_larger_than_the_map_and_default_names():
    feats = multiscale_features(draw(12, (2, 3, 3, 3)))
    assert sorted(feats) == ["s0.loc", "s0.mean", "s0.p2.mean", "s0.p2.std", "s0.std"]
    with pytest.raises(ValueError, match="name"):
        multiscale_features(draw(12, (2, 3, 3, 3), (2, 3, 3, 3)), names=["x", "x"])


def test_feature_drift_loss_is_the_sum_of_per_feature_losses():
    gen_maps, real_maps = draw(13, (6, 3, 4, 4)), draw(14, (8, 3, 4, 4))
    gen_feats, real_feats = multiscale_features(gen_maps), multiscale_features(real_maps)
    total, info = feature_drift_loss(gen_feats, real_feats)
    parts = [released_drift_loss(gen_feats[k], real_feats[k])[0] for k in gen_feats]
    torch.testing.assert_close(total, sum(parts), rtol=1e-12, atol=0)
    assert set(info) == set(gen_feats)
    for k, part in zip(gen_feats, parts):
        assert info[k]["loss"] == pytest.approx(part.item(), rel=1e-6)
        assert len(info[k]["raw_drift_sq"]) == 3
    with pytest.raises(ValueError, match="feature names differ"):
        feature_drift_loss(gen_feats, {k: v for k, v in list(real_feats.items())[1:]})


# ----------------------------------------------------------------------------- precision and gradient flow


def test_bf16_autocast_runs_in_float32_and_stays_finite():
    torch.manual_seed(0)
    net = torch.nn.Linear(8, 64).to(DEVICE)
    eps = torch.randn(4 * 32, 8, device=DEVICE)
    pos = torch.randn(4, 24, 64, device=DEVICE)
    with torch.autocast(device_type=DEVICE.type, dtype=torch.bfloat16):
        gen = net(eps).reshape(4, 32, 64)
        assert gen.dtype == torch.bfloat16
        loss, info = released_drift_loss(gen, pos, taus=(0.02,))
    assert loss.dtype == torch.float32
    assert math.isfinite(loss.item()) and all(math.isfinite(v) for v in info["raw_drift_sq"])
    # the same bf16 values, upcast and run without autocast: identical float32 math
    plain, plain_info = released_drift_loss(gen.detach().float(), pos, taus=(0.02,))
    assert loss.item() == pytest.approx(plain.item(), rel=1e-6)
    assert info["raw_drift_sq"] == pytest.approx(plain_info["raw_drift_sq"], rel=1e-6)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters())


def test_gradient_flows_to_gen_only():
    gen, pos, neg = draw(15, (3, 8, 5), (3, 6, 5), (3, 2, 5))
    gen.requires_grad_(True)
    pos.requires_grad_(True)
    neg.requires_grad_(True)
    pos_w = uniform(16, 6).requires_grad_(True)
    loss, _ = released_drift_loss(gen, pos, neg, pos_weight=pos_w)
    loss.backward()
    assert gen.grad is not None and gen.grad.abs().sum() > 0
    assert pos.grad is None and neg.grad is None and pos_w.grad is None


def test_gradient_through_features_reaches_the_generator_not_the_real_images():
    torch.manual_seed(1)
    enc = torch.nn.Conv2d(3, 4, 3, padding=1).to(DEVICE).double()
    for p in enc.parameters():
        p.requires_grad_(False)
    gen_images = torch.randn(5, 3, 8, 8, dtype=torch.float64, device=DEVICE, requires_grad=True)
    real_images = torch.randn(7, 3, 8, 8, dtype=torch.float64, device=DEVICE, requires_grad=True)
    gen_feats = multiscale_features([enc(gen_images)]) | {"raw": gen_images.flatten(1)[None]}
    real_feats = multiscale_features([enc(real_images)]) | {"raw": real_images.flatten(1)[None]}
    loss, _ = feature_drift_loss(gen_feats, real_feats)
    loss.backward()
    assert gen_images.grad is not None and torch.isfinite(gen_images.grad).all()
    assert real_images.grad is None


# ------------------------------------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"gen": (8, 5), "pos": (3, 6, 5)}, "3-D"),
        ({"gen": (3, 8, 5), "pos": (2, 6, 5)}, "groups"),
        ({"gen": (3, 8, 5), "pos": (3, 6, 4)}, "dims"),
        ({"gen": (3, 8, 5), "pos": (3, 0, 5)}, "empty"),
        ({"gen": (3, 8, 5), "pos": (3, 6, 5), "neg": (3, 2, 4)}, "dims"),
        ({"gen": (3, 8, 5), "pos": (3, 6, 5), "pos_weight": (5,)}, "pos_weight"),
        ({"gen": (3, 8, 5), "pos": (3, 6, 5), "neg_weight": (2,)}, "neg_weight"),
        ({"gen": (3, 8, 5), "pos": (3, 6, 5), "taus": ()}, "taus"),
        ({"gen": (3, 8, 5), "pos": (3, 6, 5), "taus": (0.1, -0.2)}, "taus"),
    ],
)
def test_bad_inputs_raise_clear_errors(kwargs, match):
    args = {k: (torch.randn(*v, dtype=torch.float64) if k not in ("taus",) else v) for k, v in kwargs.items()}
    gen, pos = args.pop("gen"), args.pop("pos")
    neg = args.pop("neg", None)
    with pytest.raises(ValueError, match=match):
        released_drift_loss(gen, pos, neg, **args)


def test_non_finite_and_negative_weights_are_refused():
    gen, pos = draw(17, (2, 4, 3), (2, 5, 3))
    with pytest.raises(ValueError, match="NaN"):
        released_drift_loss(gen, pos.clone().fill_(float("nan")))
    with pytest.raises(ValueError, match="non-negative"):
        released_drift_loss(gen, pos, pos_weight=-torch.ones(5, dtype=torch.float64))
