"""Correct answers to lesson 07's exercises written another way than the worked solutions; every graded check of
their exercise must accept them."""

from __future__ import annotations

import torch

from course.mistakes import Alternative
from drifting_min import features
from drifting_min.cifar.data import epoch_permutation


def _root(s: torch.Tensor) -> torch.Tensor:
    evals, evecs = torch.linalg.eigh((s + s.mT) / 2)
    return evecs @ torch.diag_embed(evals.clamp_min(0).sqrt()) @ evecs.mT


def frechet_nuclear(mu1, sigma1, mu2, sigma2):
    """tr sqrt(S1^1/2 S2 S1^1/2) is the nuclear norm of S1^1/2 S2^1/2: the sum of its singular values."""
    mu1, sigma1, mu2, sigma2 = (t.detach().double() for t in (mu1, sigma1, mu2, sigma2))
    tr_sqrt = torch.linalg.svdvals(_root(sigma1) @ _root(sigma2)).sum()
    return (mu1 - mu2).square().sum() + sigma1.diagonal().sum() + sigma2.diagonal().sum() - 2 * tr_sqrt


def frechet_other_side(mu1, sigma1, mu2, sigma2):
    """The middle matrix built around S2 instead of S1: S2^1/2 S1 S2^1/2 has the same eigenvalues."""
    mu1, sigma1, mu2, sigma2 = (t.detach().to(torch.float64) for t in (mu1, sigma1, mu2, sigma2))
    root2 = _root(sigma2)
    middle = root2 @ sigma1 @ root2
    tr_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    diff = mu1 - mu2
    return torch.dot(diff, diff) + torch.trace(sigma1) + torch.trace(sigma2) - 2 * tr_sqrt


def ema_lerp(ema, weights, step, decay):
    """torch.lerp out of place: lerp(w, avg, d) = w + d (avg - w) = d avg + (1 - d) w."""
    d = min(decay, (1 + step) / (10 + step))
    return {k: torch.lerp(weights[k].detach().to(v.dtype), v, d) for k, v in ema.items()}


def ema_no_grad(ema, weights, step, decay):
    """avg + (1 - d)(w - avg) under torch.no_grad()."""
    d = min(decay, (1.0 + step) / (10.0 + step))
    out = {}
    with torch.no_grad():
        for k, avg in ema.items():
            out[k] = avg + (1 - d) * (weights[k].to(avg.dtype) - avg)
    return out


def indices_per_position(n, seed, step, batch):
    """One position at a time, with Python integers."""
    picked = []
    for p in range(step * batch, (step + 1) * batch):
        epoch, offset = divmod(p, n)
        picked.append(int(epoch_permutation(n, seed, epoch)[offset]))
    return torch.tensor(picked, dtype=torch.long)


def indices_by_epoch(n, seed, step, batch):
    """Every epoch the batch touches, concatenated, then one slice."""
    start = step * batch
    first, last = start // n, (start + batch - 1) // n
    stream = torch.cat([epoch_permutation(n, seed, e) for e in range(first, last + 1)])
    return stream[start - first * n:start - first * n + batch].clone()


def feature_loss_detached(encoder, gen_images, real_images, taus=(0.02, 0.05, 0.2), raw=True):
    """The real images' features detached instead of computed under no_grad; a running Python sum."""
    fg = features.multiscale_features(encoder.feature_maps(gen_images))
    fr = {k: v.detach() for k, v in features.multiscale_features(encoder.feature_maps(real_images)).items()}
    if raw:
        fg["raw"], fr["raw"] = gen_images.flatten(1).unsqueeze(0), real_images.flatten(1).unsqueeze(0).detach()
    total = 0
    for name in sorted(fg):
        total = total + features.released_drift_loss(fg[name], fr[name], taus=taus)[0]
    return total


def feature_loss_sum_list(encoder, gen_images, real_images, taus=(0.02, 0.05, 0.2), raw=True):
    """sum() over a list of the per-feature losses, raw feature first."""
    with torch.no_grad():
        real = features.multiscale_features(encoder.feature_maps(real_images))
    gen = features.multiscale_features(encoder.feature_maps(gen_images))
    pairs = [(gen_images.reshape(1, len(gen_images), -1), real_images.reshape(1, len(real_images), -1))] if raw else []
    pairs += [(gen[k], real[k]) for k in gen]
    return sum(features.released_drift_loss(g, r, taus=tuple(taus))[0] for g, r in pairs)


ALTERNATIVES = [
    Alternative("7.1", "frechet_distance", "trace term as the nuclear norm of S1^1/2 S2^1/2", frechet_nuclear),
    Alternative("7.1", "frechet_distance", "middle matrix around S2", frechet_other_side),
    Alternative("7.2", "ema_update", "out-of-place torch.lerp", ema_lerp),
    Alternative("7.2", "ema_update", "avg + (1 - d)(w - avg) under no_grad", ema_no_grad),
    Alternative("7.3", "batch_indices", "one position at a time with divmod", indices_per_position),
    Alternative("7.3", "batch_indices", "concatenated epochs, one slice", indices_by_epoch),
    Alternative("7.4", "batch_feature_loss", "real features detached, running sum", feature_loss_detached),
    Alternative("7.4", "batch_feature_loss", "sum over a list, raw feature first", feature_loss_sum_list),
]
