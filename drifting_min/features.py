"""Feature-space drifting (lesson 06): the released implementation's batch loss and multi-scale features.

The released batch loss
-----------------------
``released_drift_loss`` is the batch loss of the authors' released code, written with the course's names
(``docs/notation.md`` has the table from one set of names to the other). Its inputs carry a leading *group*
dimension: a call compares samples only within a group (in feature space, one group per location of a feature
map), and all groups go through one batched computation (on a GPU one kernel launch per operation; on a CPU in
blocks of groups that fit in cache, see ``_group_blocks``). For one call, with x the generated samples [G, N, D]:

1. targets   y = [x (no gradient) | extra negatives | positives],            [G, T, D],  T = N + K + M
   weights   w = [1 ... 1          | neg_weight      | pos_weight],           [G, T]
2. distances d_gij = sqrt(max(|x_gi - y_gj|^2, e)), e = ``min_sq_distance``, in float32 (float64 if the
   inputs are), even under bf16 autocast; the released code has e = 1e-8, so a sample's distance to itself,
   and to a duplicate, is 1e-4 there, not 0
3. scale     s = sum_gij w_gj d_gij / (N sum_gj w_gj)                         (one scalar, no gradient)
             the weighted mean of all generated-to-target distances, the self distances included;
             floored at f = ``scale_floor`` (1e-3 in the released code) twice, separately:
             the normaliser of distances   s_d = max(s, f)
             the coordinate scale          c = max(s / sqrt(D), f)
4. d~ = d / s_d, and d~_gii += 100 on the generated block (a sample is, in effect, not its own negative)
5. for each temperature R:   l = -d~ / R                                      [G, N, T]
      A = sqrt(max(softmax_j(l) softmax_i(l), 1e-6)) * w_j     (clip=True, as released)
      A = sqrt(softmax_j(l) softmax_i(l)) * w_j                (clip=False)
      split A = [A- | A+] (generated and extra negatives | positives) and cross-weight
      c- = -A- * rowsum(A+),  c+ = A+ * rowsum(A-)
      F_R = sum_j c_ij y~_j - (sum_j c_ij) x~_i,   in the coordinates x~ = x / c, y~ likewise
      F_R <- F_R / sqrt(max(mean(F_R^2), 1e-8))   (the mean over groups, samples and dims)
6. goal = x~ + sum_R F_R (no gradient);  loss = mean over groups, samples and dims of (x~ - goal)^2.

The code computes the same numbers in a cheaper and more precise order: each group is centred on its targets'
mean first (distances and forces do not change), and the - (sum_j c_ij) x~_i term, zero up to rounding, is
left out (see ``_temperature_force``).

So the loss value is mean((sum_R F_R)^2), and its gradient is dL/dx = -2 (sum_R F_R) / (G N D) / c.

The released code's floors, ``RELEASED_MIN_SQ_DISTANCE`` = 1e-8 and ``RELEASED_SCALE_FLOOR`` = 1e-3, are the
defaults of ``min_sq_distance`` and ``scale_floor``: the loss reproduces the release to the last floor. Pass 0 and 0
to leave them out: that is the loss as lesson 06 defines and grades it (each sample's zero distance to itself in
s), and the form in which it equals the canonical field below. The floors matter only at small scales. Where
s >= f sqrt(D) and no two samples are within 1e-4, the coordinate scale is s / sqrt(D) and the floors change only
s, by the self distances' 1e-4 (a relative change of about 1e-4 / (T s)). Below, c stays at f: data of scale 1e-4
at D = 512 (s of about 3e-3) get a gradient s / (f sqrt(D)), about 7 times smaller than without the floor, and
below s = f the kernel's temperatures widen to R f instead of R s. (With the floors left out, a batch of
identical samples still gets a tiny positive scale, so nothing divides by zero.)

Relation with the canonical batch form (``drift.batch_drift_field``, Laplace kernel, lesson 03). With one
group, unit weights, no extra negatives, ``clip=False`` and the floors left out (both 0), the logits -d/(s R) are the
canonical Laplace logits at the temperature tau = R s; the +100 on the self distance is the canonical -inf logit
up to a factor exp(-100 / R), below 1e-217 for R <= 0.2. The coefficients sum to zero in every row, so
F_R = V_{tau = R s} / (s / sqrt(D)): the canonical field in the rescaled coordinates. The per-temperature
normalisation removes that factor, so the summed force is the canonical field
V = ``multi_temperature_drift(x, y_pos, None, [R s for R in taus])`` (Laplace, double softmax), and

    loss_released = drift_regression_loss(x, V) / D    (a mean over dims instead of a sum)
    grad_released = grad of drift_regression_loss(x, V) / (s sqrt(D)).

``tests/test_features.py`` checks both equalities, and each raw mean square against that of V_{R s}.

Multi-scale features
--------------------
``multiscale_features`` turns the feature maps of an encoder into the features that the published method
applies the loss to, each shaped [G, B, C'] (G groups of B samples): per-location vectors (a group per
location, so a kernel compares samples at the same location), the global mean and standard deviation, and the
means and standard deviations of 2x2 and 4x4 patches (a group per patch). ``feature_drift_loss`` sums
``released_drift_loss`` over features, one batched call per feature.

Changes to the agreed interface: none in the names or arguments. ``info["raw_drift_sq"]`` holds, per
temperature, mean(F_R^2) before normalisation (a mean over dims too, in the rescaled coordinates: the value the
released code logs); ``feature_drift_loss`` returns the *sum* over features and its info maps each feature name
to its own info.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

SELF_DISTANCE = 100.0  # added to a generated sample's (scaled) distance to itself
AFFINITY_CLIP = 1e-6  # floor on softmax_row * softmax_col inside the square root (clip=True)
FORCE_MS_FLOOR = 1e-8  # floor on a temperature's mean square force before dividing by its root
RELEASED_MIN_SQ_DISTANCE = 1e-8  # the released code's distances are sqrt(max(|x - y|^2, 1e-8)): never below 1e-4
RELEASED_SCALE_FLOOR = 1e-3  # its floor on the distance normaliser s and on the coordinate scale s / sqrt(D)
SCALE_GUARD = 1e-30  # keeps a zero scale (identical samples, floors left out) from dividing by zero
STD_EPS = 1e-6  # std = sqrt(var + STD_EPS): a finite gradient where a patch is constant
CPU_BLOCK = 2**18  # on a CPU, groups go through in blocks of about this many generated-target pairs (None: one)


# ---------------------------------------------------------------------------------------------- input checks


def _check_batch(name: str, t: Tensor, groups: int | None = None, dims: int | None = None) -> None:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.ndim != 3:
        raise ValueError(f"{name} must be 3-D (groups x samples x dims), got shape {tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0 or t.shape[2] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(t.shape)}")
    if groups is not None and t.shape[0] != groups:
        raise ValueError(f"{name} has {t.shape[0]} groups but gen has {groups}")
    if dims is not None and t.shape[2] != dims:
        raise ValueError(f"{name} has {t.shape[2]} dims but gen has {dims}")
    # a NaN or Inf entry makes the sum non-finite; the entrywise check runs only then (an overflowing sum)
    if not torch.isfinite(t.sum()) and not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or Inf values")


def _weights(name: str, w: Tensor | None, groups: int, n: int, like: Tensor) -> Tensor:
    """Per-sample target weights as a [G, n] tensor (ones when ``w`` is None; [n] is broadcast over groups)."""
    if w is None:
        return torch.ones(groups, n, dtype=like.dtype, device=like.device)
    if w.shape not in ((n,), (groups, n)):
        raise ValueError(f"{name} must have shape [{n}] or [{groups}, {n}], got {tuple(w.shape)}")
    if not torch.isfinite(w).all() or (w < 0).any():
        raise ValueError(f"{name} must be finite and non-negative")
    return w.detach().to(like.dtype).expand(groups, n)


def _compute_dtype(t: Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


# ------------------------------------------------------------------------------------------ the released loss


def _distances(x: Tensor, targets: Tensor, min_sq_distance: float) -> Tensor:
    """d_gij = sqrt(max(|x_gi - y_gj|^2, min_sq_distance)) [G, N, T], the self distances (the first N targets
    are x itself) exactly sqrt(min_sq_distance): the floor applied to an exact zero, not to rounding residue.

    Up to 8 dims the differences are formed exactly; above, the expansion |x|^2 + |y|^2 - 2 x.y (a batched
    matrix product, several times faster), on inputs centred by the caller so that it loses little precision.
    """
    if x.shape[2] <= 8:
        dist = torch.cdist(x, targets, compute_mode="donot_use_mm_for_euclid_dist")  # [G, N, T]
    else:
        sq_x, sq_y = x.square().sum(2, keepdim=True), targets.square().sum(2)[:, None, :]  # [G, N, 1], [G, 1, T]
        dist = torch.baddbmm(sq_y, x, targets.transpose(1, 2), alpha=-2.0).add_(sq_x).clamp_min_(0.0).sqrt_()
    dist[:, :, : x.shape[1]].diagonal(dim1=1, dim2=2).zero_()
    return dist.clamp_min_(math.sqrt(min_sq_distance))  # sqrt(max(d^2, e)) = max(d, sqrt(e))


def _temperature_force(
    dist: Tensor, w: Tensor | None, x_s: Tensor, y_s: Tensor, n_neg: int, r: float, clip: bool
) -> Tensor:
    """Step 5 for one temperature R, before its normalisation: the force F_R [G, N, D] from the scaled
    distances dist [G, N, T] (self distances already +100), target weights w [G, T] (None: all ones), and the
    rescaled samples x_s [G, N, D] and targets y_s [G, T, D]; the first ``n_neg`` targets are negatives.

    With s+ = rowsum(A+) and s- = rowsum(A-), the coefficients are c+ = A+ s- and c- = -A- s+, and
    F = sum_j c_ij y_j - (sum_j c_ij) x_i = (A+ y+) s- - (A- y-) s+: a row's coefficients sum to
    s+ s- - s- s+ = 0, so the released code's "- (sum c) x" term is zero up to rounding and is not computed.
    """
    logits = dist * (-1.0 / r)  # [G, N, T]
    # log A = (log softmax over targets + log softmax over generated) / 2: no spurious underflow of the product
    log_a = logits.log_softmax(dim=2).add_(logits.log_softmax(dim=1)).mul_(0.5)  # [G, N, T]
    if clip:
        log_a.clamp_min_(0.5 * math.log(AFFINITY_CLIP))  # A = sqrt(max(product, 1e-6))
    a = log_a.exp_()
    if w is not None:
        a.mul_(w[:, None, :])  # times the target weights
    a_neg, a_pos = a[:, :, :n_neg], a[:, :, n_neg:]  # [G, N, N + K], [G, N, M]
    s_neg, s_pos = a_neg.sum(2, keepdim=True), a_pos.sum(2, keepdim=True)  # [G, N, 1]
    # cross-weighting c+ = A+ s-, c- = -A- s+
    return (a_pos @ y_s[:, n_neg:]).mul_(s_neg).sub_((a_neg @ y_s[:, :n_neg]).mul_(s_pos))  # [G, N, D]


def _group_blocks(groups: int, pairs_per_group: int, device: torch.device) -> list[slice]:
    """The blocks of groups that go through the field together: all of them on a GPU (one kernel launch per
    operation); on a CPU blocks of about ``CPU_BLOCK`` generated-target pairs, which stay in cache and reuse
    memory instead of faulting in fresh multi-megabyte buffers (2x faster at 256 groups of 64 x 128 pairs on
    one thread; ``bench/bench_features.py`` measures it)."""
    if device.type != "cpu" or CPU_BLOCK is None:
        return [slice(0, groups)]
    step = max(1, CPU_BLOCK // pairs_per_group)
    return [slice(lo, lo + step) for lo in range(0, groups, step)]


@torch.no_grad()
def _released_force(
    x: Tensor, targets: Tensor, w: Tensor | None, n_neg: int, taus: Sequence[float], clip: bool,
    min_sq_distance: float, scale_floor: float,
) -> tuple[Tensor, Tensor, Tensor]:
    """Steps 2-5 of the module docstring. x [G, N, D], targets [G, T, D] (the first N are x), w [G, T] or None;
    the first ``n_neg`` targets (generated and extra negatives) are negatives. Returns the summed normalised
    force sum_R F_R [G, N, D], the coordinate scale c = max(s / sqrt(D), scale_floor) (0-d), and a
    [1 + len(taus)] tensor holding s (before its floors) and mean(F_R^2) for each R.

    Distances and forces are invariant to a common shift of x and y (each row of coefficients sums to zero),
    so each group is first centred on its targets' mean: the same values, computed with less cancellation.
    """
    g, n, d = x.shape
    t = targets.shape[1]
    blocks = _group_blocks(g, n * t, x.device)
    center = targets.mean(dim=1, keepdim=True)  # [G, 1, D]
    x, targets = x - center, targets - center
    dist = x.new_empty(g, n, t)  # 2.  [G, N, T]
    for b in blocks:
        dist[b] = _distances(x[b], targets[b], min_sq_distance)
    # 3. one scalar scale: the w-weighted mean of all generated-to-target distances, and its two floors
    scale = dist.mean() if w is None else (dist * w[:, None, :]).mean() / w.mean()  # []
    guarded = scale.clamp_min(SCALE_GUARD)
    coord = (guarded / math.sqrt(d)).clamp_min(scale_floor)  # [] coordinates are divided by max(s / sqrt(D), f)
    x_s, y_s = x / coord, targets / coord  # [G, N, D], [G, T, D]
    # 4. distances divided by max(s, f), and + 100 on each generated sample's distance to itself
    dist /= guarded.clamp_min(scale_floor)
    dist[:, :, :n].diagonal(dim1=1, dim2=2).add_(SELF_DISTANCE)
    # 5. each temperature's force, then its normalisation over all groups, samples and dims
    forces = x.new_empty(len(taus), g, n, d)  # [R, G, N, D]
    for b in blocks:
        w_b = None if w is None else w[b]
        for k, r in enumerate(taus):
            forces[k, b] = _temperature_force(dist[b], w_b, x_s[b], y_s[b], n_neg, r, clip)
    mean_sq = forces.square().mean(dim=(1, 2, 3))  # [R]
    rms = mean_sq.clamp_min(FORCE_MS_FLOOR).sqrt()  # [R]
    force_sum = (forces / rms[:, None, None, None]).sum(dim=0)  # [G, N, D]
    return force_sum, coord, torch.cat([scale[None], mean_sq])


def released_drift_loss(
    gen: Tensor,
    pos: Tensor,
    neg: Tensor | None = None,
    *,
    taus: Iterable[float] = (0.02, 0.05, 0.2),
    pos_weight: Tensor | None = None,
    neg_weight: Tensor | None = None,
    clip: bool = True,
    min_sq_distance: float = RELEASED_MIN_SQ_DISTANCE,
    scale_floor: float = RELEASED_SCALE_FLOOR,
) -> tuple[Tensor, dict]:
    """The released implementation's batch loss (REFERENCE.md; steps 1-6 of this module's docstring).

    Args:
        gen: generated samples (queries) [G, N, D]; the only input that gradients flow to.
        pos: positives (data) [G, M, D], no gradient.
        neg: extra negatives [G, K, D], no gradient; the generated samples are always negatives too.
        taus: the temperatures R, applied to distances divided by the scale s.
        pos_weight, neg_weight: per-sample target weights, [G, M] / [G, K] or [M] / [K]; default ones.
        clip: clip softmax_row * softmax_col at 1e-6 inside the square root (as released).
        min_sq_distance: distances are sqrt(max(|x - y|^2, min_sq_distance)); default the released code's
            ``RELEASED_MIN_SQ_DISTANCE`` = 1e-8; 0 gives exact distances.
        scale_floor: floor on the distance normaliser s and, separately, on the coordinate scale s / sqrt(D);
            default the released code's ``RELEASED_SCALE_FLOOR`` = 1e-3; 0 for none.

    Returns:
        loss: mean over groups, samples and dims of (x~ - stopgrad(x~ + sum_R F_R))^2, a 0-d float32 tensor
            (float64 for float64 inputs).
        info: {"raw_drift_sq": [mean(F_R^2) before normalisation, one float per R], "scale": s (before its
            floors)}.
    """
    taus = [float(r) for r in taus]
    if not taus or not all(math.isfinite(r) and r > 0 for r in taus):
        raise ValueError(f"taus must be a non-empty list of positive numbers, got {taus!r}")
    if not (math.isfinite(min_sq_distance) and min_sq_distance >= 0 and math.isfinite(scale_floor)
            and scale_floor >= 0):
        raise ValueError(f"min_sq_distance and scale_floor must be finite and >= 0, got {min_sq_distance!r}, "
                         f"{scale_floor!r}")
    _check_batch("gen", gen)
    g, n, d = gen.shape
    _check_batch("pos", pos, g, d)
    if neg is not None:
        _check_batch("neg", neg, g, d)
    elif neg_weight is not None:
        raise ValueError("neg_weight was given without extra negatives")
    dtype = _compute_dtype(gen)
    with torch.autocast(device_type=gen.device.type, enabled=False):
        x = gen.detach().to(dtype)  # [G, N, D]
        negs = [] if neg is None else [neg.detach().to(dtype)]
        targets = torch.cat([x, *negs, pos.detach().to(dtype)], dim=1)  # [G, N + K + M, D]
        n_neg = targets.shape[1] - pos.shape[1]
        w = None  # all ones unless some weights are given
        if pos_weight is not None or neg_weight is not None:
            w = torch.cat(
                [
                    torch.ones(g, n, dtype=dtype, device=x.device),
                    *([_weights("neg_weight", neg_weight, g, neg.shape[1], x)] if neg is not None else []),
                    _weights("pos_weight", pos_weight, g, pos.shape[1], x),
                ],
                dim=1,
            )  # [G, N + K + M]
        force, coord, stats = _released_force(x, targets, w, n_neg, taus, clip, min_sq_distance, scale_floor)
        # 6. goal = x~ + F, loss = mean((x~ - goal)^2), written as ((gen - stopgrad(gen)) / c - F)^2: the same
        # value and gradient, without subtracting two large numbers
        loss = ((gen.to(dtype) - x) / coord - force).square().mean()
    stats = stats.tolist()  # one device synchronisation per call
    return loss, {"raw_drift_sq": stats[1:], "scale": stats[0]}


# -------------------------------------------------------------------------------------- multi-scale features


def _patch_stats(fmap: Tensor, p: int) -> tuple[Tensor, Tensor]:
    """Means and stds of the p x p patches of fmap [B, C, H, W] (rows and columns past a multiple of p are
    dropped), each shaped [H/p * W/p, B, C]: one group per patch."""
    b, c, h, w = fmap.shape
    hp, wp = h // p, w // p
    patches = fmap[:, :, : hp * p, : wp * p].reshape(b, c, hp, p, wp, p)  # [B, C, H/p, p, W/p, p]
    # each patch's p * p values last and contiguous: reductions over a strided 6-D view are several times slower
    patches = patches.permute(2, 4, 0, 1, 3, 5).reshape(hp * wp, b, c, p * p)  # [H/p W/p, B, C, p p]
    return _mean_std(patches)


def _mean_std(values: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and std = sqrt(population variance + 1e-6) over the last axis (two passes: the centred values are
    squared, no E[v^2] - E[v]^2 cancellation; several times faster than torch.var over a short axis)."""
    mean = values.mean(dim=-1)
    var = (values - mean[..., None]).square().mean(dim=-1)
    return mean, (var + STD_EPS).sqrt()


def multiscale_features(
    feature_maps: list[Tensor], names: list[str] | None = None, patch_sizes: Sequence[int] = (2, 4)
) -> dict[str, Tensor]:
    """Features of each map fmap [B, C, H, W], every one shaped [G, B, C'] (G groups of B samples):

    * ``{name}.loc``       per-location vectors fmap[b, :, h, w]:  [H W, B, C]      (a group per location)
    * ``{name}.mean``      global mean over locations:            [1, B, C]
    * ``{name}.std``       global std, sqrt(var + 1e-6):           [1, B, C]      (population variance)
    * ``{name}.p{p}.mean`` and ``{name}.p{p}.std`` for each p in ``patch_sizes`` that fits in the map:
      means and stds over p x p patches, [(H/p)(W/p), B, C]                        (a group per patch)

    ``names`` defaults to ``s0, s1, ...``. The raw input is one more feature that the caller adds, e.g.
    ``{"raw": images.flatten(1)[None]}`` (one group).
    """
    names = [f"s{i}" for i in range(len(feature_maps))] if names is None else list(names)
    if len(names) != len(feature_maps) or len(set(names)) != len(names):
        raise ValueError(f"need one distinct name per feature map: {len(feature_maps)} maps, names {names}")
    out: dict[str, Tensor] = {}
    for name, fmap in zip(names, feature_maps):
        if not isinstance(fmap, torch.Tensor) or fmap.ndim != 4:
            raise ValueError(f"feature map {name!r} must be a [B, C, H, W] tensor")
        h, w = fmap.shape[2:]
        out[f"{name}.loc"] = fmap.flatten(2).permute(2, 0, 1)  # [H W, B, C]
        mean, std = _mean_std(fmap.flatten(2)[None])  # over [1, B, C, H W]
        out[f"{name}.mean"], out[f"{name}.std"] = mean, std  # [1, B, C] each
        for p in patch_sizes:
            if p <= min(h, w):
                out[f"{name}.p{p}.mean"], out[f"{name}.p{p}.std"] = _patch_stats(fmap, p)
    return out


def feature_drift_loss(
    gen_feats: dict[str, Tensor],
    real_feats: dict[str, Tensor],
    *,
    taus: Iterable[float] = (0.02, 0.05, 0.2),
    clip: bool = True,
) -> tuple[Tensor, dict]:
    """L = sum over features k of released_drift_loss(gen_feats[k], real_feats[k].detach()): one batched call
    per feature (all its groups at once), the generated samples as negatives, the real ones as positives.

    Returns the summed loss and ``{k: info_k}``, each info_k holding that feature's ``raw_drift_sq`` (the raw
    mean square force per temperature, the number to log) and ``scale``, plus ``loss`` (its own loss value).
    """
    if set(gen_feats) != set(real_feats):
        raise ValueError(f"feature names differ: {sorted(gen_feats)} vs {sorted(real_feats)}")
    if not gen_feats:
        raise ValueError("no features given")
    taus = list(taus)
    info: dict[str, dict] = {}
    losses = []
    for k, gen in gen_feats.items():
        loss, info[k] = released_drift_loss(gen, real_feats[k].detach(), taus=taus, clip=clip)
        losses.append(loss)
    for k, value in zip(info, torch.stack([loss.detach().float() for loss in losses]).tolist()):
        info[k]["loss"] = value
    return sum(losses[1:], losses[0]), info
