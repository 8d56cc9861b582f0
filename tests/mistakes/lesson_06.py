"""Typical mistakes in lesson 06 (feature-space kernels); each must fail a graded check of its exercise."""

from __future__ import annotations

import math

import torch

from course.mistakes import Mistake

TAUGHT = {
    "6.1": ["concentration", "concentration_ratio"],
    "6.2": ["multiscale_features", "_patch_stats", "patch_stats"],
    "6.3": ["released_drift_loss", "rescale_features"],
    "6.4": ["released_drift_loss", "_released_goal", "normalise_drifts"],
    "6.5": ["released_drift_loss", "_released_goal", "feature_drift_loss"],
}


# ------------------------------------------------------------------------------------------------ 6.1


def _ratio(*, self_in_min=False, self_in_mean=False, squared=False, ratio_of_means=False, to_double=False,
           eps=0.0, expanded=False, mask_device=True):
    def ratio(x):
        n = x.shape[0]
        y = x.double() if to_double else x
        if expanded:  # |x|^2 + |y|^2 - 2 x.y
            sq = y.square().sum(1)
            d = (sq[:, None] + sq[None, :] - 2 * y @ y.T).clamp_min(0).sqrt()
        elif eps:  # "no NaN gradient at zero distance"
            d = ((y[:, None] - y[None]).square().sum(-1) + eps).sqrt()
        else:
            d = torch.cdist(y, y)
        d = d.square() if squared else d
        eye = torch.eye(n, dtype=torch.bool, device=x.device if mask_device else "cpu")
        nearest = (d if self_in_min else d.masked_fill(eye, float("inf"))).amin(1)
        mean = d.mean(1) if self_in_mean else d.sum(1) / (n - 1)
        return nearest.mean() / mean.mean() if ratio_of_means else (nearest / mean).mean()

    return ratio


# ------------------------------------------------------------------------------------------------ 6.2


def _patches(*, unbiased=False, eps=1e-6, order="rows", strided=False, floor=None, one_pass=False):
    def stats(fmap, p):
        b, c, h, w = fmap.shape
        if strided:  # every (H/p)-th pixel instead of contiguous blocks
            blocks = fmap.reshape(b, c, p, h // p, p, w // p).permute(0, 1, 3, 2, 5, 4)
        else:
            blocks = fmap.reshape(b, c, h // p, p, w // p, p)
        mean = blocks.mean(dim=(3, 5))
        if one_pass:  # E[x^2] - E[x]^2
            var = blocks.square().mean(dim=(3, 5)) - mean.square()
        else:
            var = blocks.var(dim=(3, 5), unbiased=unbiased)
        if floor == "max":  # max(std, 1e-3): the same for a flat patch
            std = var.sqrt().clamp_min(1e-3)
        elif floor == "outside":  # std + 1e-3: the same for a flat patch
            std = var.sqrt() + 1e-3
        else:
            std = (var + eps).sqrt()
        if order == "columns":
            mean, std = mean.transpose(2, 3), std.transpose(2, 3)
        return mean.flatten(2).permute(2, 0, 1), std.flatten(2).permute(2, 0, 1)

    return stats


def _patches_samples_first(fmap, p):
    mean, std = _patches()(fmap, p)
    # [G, B, C] read as if it were [B, G, C]: the same numbers, samples and groups swapped (reshape, not permute)
    return mean.permute(1, 0, 2).reshape(mean.shape), std.permute(1, 0, 2).reshape(std.shape)


# ------------------------------------------------------------------------------------------------ 6.3


def _rescale(*, power=0.5, squared=False, pos_only=False, grad=False, inplace=False, third="scale",
             expanded=False, mark_gen=False):
    def rescale(gen, pos):
        c = gen.shape[-1]
        if mark_gen:  # "make sure gen tracks gradients": on the caller's tensor
            gen.requires_grad_(True)
        ctx = torch.enable_grad() if grad else torch.no_grad()
        with ctx:
            targets = pos if pos_only else torch.cat([gen, pos], dim=1)
            if expanded:  # |x|^2 + |t|^2 - 2 x.t
                d = (gen.square().sum(-1)[..., None] + targets.square().sum(-1)[..., None, :]
                     - 2 * gen @ targets.transpose(1, 2)).clamp_min(0).sqrt()
            else:
                d = torch.cdist(gen, targets)
            scale = (d.square() if squared else d).mean()
        s = scale / c**power
        if inplace:  # "pos /= s": the caller's positives are changed
            return gen / s, pos.div_(s), scale
        return gen / s, pos / s, (s if third == "coord" else scale)

    return rescale


# ------------------------------------------------------------------------------------------------ 6.4


def _normalise(*, floor="ms", per_sample=False, sum_dims=False, of_sum=False, inplace=False, floor_value=1e-8):
    def normalise(forces):
        if of_sum:
            total = sum(forces)
            return total / total.square().mean().clamp_min(1e-8).sqrt()
        total = torch.zeros_like(forces[0])
        for f in forces:
            if per_sample:
                ms = f.square().sum(-1, keepdim=True)
            elif sum_dims:
                ms = f.square().sum(-1).mean()
            else:
                ms = f.square().mean()
            if floor == "ms":
                rms = ms.clamp_min(floor_value).sqrt()
            elif floor == "rms":
                rms = ms.sqrt().clamp_min(1e-8)
            else:
                rms = ms.sqrt()
            if inplace:
                total += f.div_(rms)
            else:
                total = total + f / rms
        return total

    return normalise


# ------------------------------------------------------------------------------------------------ 6.5


def _released(*, clip_mode="product", self_mask=True, naive_softmax=False, detach_goal=True, sum_dims=False,
              temperature_c=False, upcast=True, mask_device=True, repulsion_sign=1.0):
    def loss_fn(gen, pos, taus=(0.02, 0.05, 0.2), clip=True):
        if upcast and gen.dtype != torch.float64:
            gen, pos = gen.float(), pos.float()
        n, d = gen.shape[1], gen.shape[2]
        with torch.no_grad():
            t = torch.cat([gen, pos], dim=1)
            dist = torch.cdist(gen, t)
            scale = dist.mean()
        s = scale / math.sqrt(d)
        gen_s = gen / s
        ctx = torch.no_grad() if detach_goal else torch.enable_grad()
        with ctx:
            x = gen_s if not detach_goal else gen_s.detach()
            targets = torch.cat([x, pos / s], dim=1)
            dn = dist / scale
            if self_mask:
                dn = dn + 100.0 * torch.eye(n, t.shape[1], dtype=dn.dtype, device=dn.device if mask_device else "cpu")
            total = torch.zeros_like(x)
            for tau in taus:
                r = tau * d if temperature_c else tau
                logits = -dn / r
                if naive_softmax:
                    e = logits.exp()
                    prod = (e / e.sum(2, keepdim=True)) * (e / e.sum(1, keepdim=True))
                else:
                    prod = (logits.log_softmax(2) + logits.log_softmax(1)).exp()
                if clip and clip_mode == "product":
                    a = prod.clamp_min(1e-6).sqrt()
                elif clip and clip_mode == "root":
                    a = prod.sqrt().clamp_min(1e-6)
                else:
                    a = prod.sqrt()
                a_neg, a_pos = a[:, :, :n], a[:, :, n:]
                w_pos, w_neg = a_pos * a_neg.sum(2, keepdim=True), a_neg * a_pos.sum(2, keepdim=True)
                f = w_pos @ targets[:, n:] - repulsion_sign * (w_neg @ targets[:, :n])
                f = f - (w_pos.sum(2, keepdim=True) - repulsion_sign * w_neg.sum(2, keepdim=True)) * x
                total = total + f / f.square().mean().clamp_min(1e-8).sqrt()
            goal = x + total
        err = (gen_s - goal).square()
        return err.sum(-1).mean() if sum_dims else err.mean()

    return loss_fn


MISTAKES = [
    Mistake("6.1", "concentration_ratio", "self included in the minimum (ratio 0)",
            lambda f, m: _ratio(self_in_min=True)),
    Mistake("6.1", "concentration_ratio", "zero self distance counted in the mean (divide by N)",
            lambda f, m: _ratio(self_in_mean=True)),
    Mistake("6.1", "concentration_ratio", "squared distances", lambda f, m: _ratio(squared=True)),
    Mistake("6.1", "concentration_ratio", "ratio of the means instead of the mean of the ratios",
            lambda f, m: _ratio(ratio_of_means=True)),
    Mistake("6.1", "concentration_ratio", "result always in float64", lambda f, m: _ratio(to_double=True)),
    Mistake("6.1", "concentration_ratio", "distances as sqrt(|x|^2 + |y|^2 - 2 x.y)",
            lambda f, m: _ratio(expanded=True)),
    Mistake("6.1", "concentration_ratio", "1e-12 added under the square root", lambda f, m: _ratio(eps=1e-12)),
    Mistake("6.1", "concentration_ratio", "the diagonal mask made on the CPU", lambda f, m: _ratio(mask_device=False)),
    Mistake("6.2", "patch_stats", "unbiased variance (divide by p^2 - 1)", lambda f, m: _patches(unbiased=True)),
    Mistake("6.2", "patch_stats", "no 1e-6 inside the root (NaN gradient on a flat patch)",
            lambda f, m: _patches(eps=0.0)),
    Mistake("6.2", "patch_stats", "patches in column-major order", lambda f, m: _patches(order="columns")),
    Mistake("6.2", "patch_stats", "strided pixels instead of contiguous patches", lambda f, m: _patches(strided=True)),
    Mistake("6.2", "patch_stats", "groups and samples mixed up by a reshape", lambda f, m: _patches_samples_first),
    Mistake("6.2", "patch_stats", "std floored as max(std, 1e-3)", lambda f, m: _patches(floor="max")),
    Mistake("6.2", "patch_stats", "1e-3 added to the std", lambda f, m: _patches(floor="outside")),
    Mistake("6.2", "patch_stats", "variance as E[x^2] - E[x]^2", lambda f, m: _patches(one_pass=True)),
    Mistake("6.3", "rescale_features", "divided by scale / C (not sqrt(C))", lambda f, m: _rescale(power=1.0)),
    Mistake("6.3", "rescale_features", "scale from squared distances", lambda f, m: _rescale(squared=True)),
    Mistake("6.3", "rescale_features", "scale over the positives only", lambda f, m: _rescale(pos_only=True)),
    Mistake("6.3", "rescale_features", "gradient through the scale", lambda f, m: _rescale(grad=True)),
    Mistake("6.3", "rescale_features", "inputs divided in place", lambda f, m: _rescale(inplace=True)),
    Mistake("6.3", "rescale_features", "returns s / sqrt(C) as the third value", lambda f, m: _rescale(third="coord")),
    Mistake("6.3", "rescale_features", "distances as sqrt(|x|^2 + |t|^2 - 2 x.t)",
            lambda f, m: _rescale(expanded=True)),
    Mistake("6.3", "rescale_features", "sets requires_grad on the caller's gen", lambda f, m: _rescale(mark_gen=True)),
    Mistake("6.4", "normalise_drifts", "no floor (zero force gives NaN)", lambda f, m: _normalise(floor=None)),
    Mistake("6.4", "normalise_drifts", "floor at 1e-8 on the RMS, not on the mean square",
            lambda f, m: _normalise(floor="rms")),
    Mistake("6.4", "normalise_drifts", "the sum normalised instead of each temperature",
            lambda f, m: _normalise(of_sum=True)),
    Mistake("6.4", "normalise_drifts", "a norm per sample instead of one RMS",
            lambda f, m: _normalise(per_sample=True)),
    Mistake("6.4", "normalise_drifts", "mean square summed over dims", lambda f, m: _normalise(sum_dims=True)),
    Mistake("6.4", "normalise_drifts", "forces divided in place", lambda f, m: _normalise(inplace=True)),
    Mistake("6.4", "normalise_drifts", "floor at 1e-6 on the mean square (1e-3 on the RMS)",
            lambda f, m: _normalise(floor_value=1e-6)),
    Mistake("6.4", "normalise_drifts", "floor at 1e-10 on the mean square (1e-5 on the RMS)",
            lambda f, m: _normalise(floor_value=1e-10)),
    Mistake("6.5", "released_loss", "clip ignored",
            lambda f, m: lambda gen, pos, taus=(0.02, 0.05, 0.2), clip=True: f(gen, pos, taus, False)),
    Mistake("6.5", "released_loss", "clip on the root at 1e-6 (not on the product)",
            lambda f, m: _released(clip_mode="root")),
    Mistake("6.5", "released_loss", "no +100 on the self distance", lambda f, m: _released(self_mask=False)),
    Mistake("6.5", "released_loss", "softmax as exp / sum (NaN at tau = 0.02 in float32)",
            lambda f, m: _released(naive_softmax=True)),
    Mistake("6.5", "released_loss", "goal not detached", lambda f, m: _released(detach_goal=False)),
    Mistake("6.5", "released_loss", "sum over dims instead of mean", lambda f, m: _released(sum_dims=True)),
    Mistake("6.5", "released_loss", "temperature times D", lambda f, m: _released(temperature_c=True)),
    Mistake("6.5", "released_loss", "bfloat16 features computed in bfloat16", lambda f, m: _released(upcast=False)),
    Mistake("6.5", "released_loss", "the self mask made on the CPU", lambda f, m: _released(mask_device=False)),
    Mistake("6.5", "released_loss", "repulsion added instead of subtracted",
            lambda f, m: _released(repulsion_sign=-1.0)),
]
