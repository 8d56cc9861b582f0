"""Typical mistakes in lesson 07 (the CIFAR-10 trainer's CPU pieces); each must fail a graded check of its exercise."""

from __future__ import annotations

import torch

from course.mistakes import Mistake
from drifting_min import features
from drifting_min.cifar.data import epoch_permutation

TAUGHT = {
    "7.1": ["frechet_distance", "trace_sqrt_product"],
    "7.2": ["ema_update"],
    "7.3": ["stream_indices", "RealSampler"],
    "7.4": ["feature_drift_loss", "drift_features", "feature_loss"],
}


# ------------------------------------------------------------------------------------------------ 7.1


def _psd_root(s: torch.Tensor) -> torch.Tensor:
    evals, evecs = torch.linalg.eigh((s + s.T) / 2)
    return (evecs * evals.clamp_min(0).sqrt()) @ evecs.T


def _frechet(*, trace_term="symmetric", factor=2.0, squared_mean=True, dtype=torch.float64, in_place=False):
    def frechet_distance(mu1, sigma1, mu2, sigma2):
        if in_place:  # a small ridge for stability, added to the caller's matrix
            sigma1.diagonal().add_(1e-6)
        m1, s1, m2, s2 = (t.detach().to(dtype) for t in (mu1, sigma1, mu2, sigma2))
        if trace_term == "symmetric":
            root1 = _psd_root(s1)
            middle = root1 @ s2 @ root1
            tr = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
        elif trace_term == "product_of_roots":  # tr(sqrt(S1) sqrt(S2)): right only when S1 and S2 commute
            tr = (_psd_root(s1) @ _psd_root(s2)).trace()
        elif trace_term == "elementwise":  # sqrt of the entrywise product
            tr = (s1 * s2).clamp_min(0).sqrt().trace()
        diff = m1 - m2
        mean_term = diff @ diff if squared_mean else diff.norm()
        return mean_term + s1.trace() + s2.trace() - factor * tr
    return frechet_distance


# ------------------------------------------------------------------------------------------------ 7.2


def _ema(*, swap=False, warm_up="min", in_place=False, detach=True, upcast=False):
    def ema_update(ema, weights, step, decay):
        if warm_up == "min":
            d = min(decay, (1 + step) / (10 + step))
        elif warm_up == "none":
            d = decay
        else:  # max instead of min: no warm-up at all
            d = max(decay, (1 + step) / (10 + step))
        keep, take = (1 - d, d) if swap else (d, 1 - d)
        out = {}
        for k, avg in ema.items():
            w = weights[k].detach() if detach else weights[k]
            if upcast:
                out[k] = keep * avg.double() + take * w.double()  # "more precise", but no longer float32
            elif in_place:
                out[k] = avg.mul_(keep).add_(take * w.detach())
            else:
                out[k] = keep * avg + take * w
        return out
    return ema_update


# ------------------------------------------------------------------------------------------------ 7.3


def _indices(kind):
    def batch_indices(n, seed, step, batch):
        start = step * batch
        positions = torch.arange(start, start + batch)
        if kind == "wrap_in_first_epoch":  # modulo n into epoch 0's permutation, forever
            return epoch_permutation(n, seed, 0)[positions % n]
        if kind == "seeded_by_step":  # a fresh permutation every step: images repeat within an epoch
            perm = torch.cat([epoch_permutation(n, seed, step * batch + i) for i in range(-(-batch // n))])
            return perm[:batch]
        if kind == "global_rng":  # torch's global generator: another process, another order
            perm = torch.cat([torch.randperm(n) for _ in range(-(-(start + batch) // n))])
            return perm[start:start + batch]
        if kind == "off_by_one":
            positions = positions + 1
        if kind == "ignores_seed":
            seed = 0
        return torch.stack([epoch_permutation(n, seed, int(p) // n)[int(p) % n] for p in positions])
    return batch_indices


# ------------------------------------------------------------------------------------------------ 7.4


def _feature_loss(*, reduce="sum", raw_mode="flag", detach_gen=False, swap=False, per_group=False, patch_sizes=(2, 4)):
    def batch_feature_loss(encoder, gen_images, real_images, taus=(0.02, 0.05, 0.2), raw=True):
        use_raw = {"flag": raw, "always": True, "never": False}[raw_mode]

        def feats(images):
            out = features.multiscale_features(encoder.feature_maps(images), patch_sizes=patch_sizes)
            if use_raw:
                out["raw"] = images.flatten(1)[None]
            return out

        fg = feats(gen_images)
        if detach_gen:
            fg = {k: v.detach() for k, v in fg.items()}
        with torch.no_grad():
            fr = feats(real_images)
        if swap:
            fg, fr = fr, fg
        losses = []
        for k in fg:
            if per_group:  # one call per group: every group gets its own scale and force normalisation
                losses.append(torch.stack([features.released_drift_loss(fg[k][g:g + 1], fr[k][g:g + 1], taus=taus)[0]
                                           for g in range(fg[k].shape[0])]).mean())
            else:
                losses.append(features.released_drift_loss(fg[k], fr[k], taus=taus)[0])
        stacked = torch.stack(losses)
        return stacked.sum() if reduce == "sum" else stacked.mean()
    return batch_feature_loss


MISTAKES = [
    # 7.1
    Mistake("7.1", "frechet_distance", "tr(sqrt S1 sqrt S2) instead of tr sqrt(S1 S2)",
            lambda f, m: _frechet(trace_term="product_of_roots")),
    Mistake("7.1", "frechet_distance", "sqrt of the entrywise product",
            lambda f, m: _frechet(trace_term="elementwise")),
    Mistake("7.1", "frechet_distance", "the factor 2 on the trace term dropped", lambda f, m: _frechet(factor=1.0)),
    Mistake("7.1", "frechet_distance", "|mu1 - mu2| not squared", lambda f, m: _frechet(squared_mean=False)),
    Mistake("7.1", "frechet_distance", "computed and returned in float32", lambda f, m: _frechet(dtype=torch.float32)),
    Mistake("7.1", "frechet_distance", "adds a ridge to the caller's covariance in place",
            lambda f, m: _frechet(in_place=True)),
    # 7.2
    Mistake("7.2", "ema_update", "decay and 1 - decay swapped", lambda f, m: _ema(swap=True)),
    Mistake("7.2", "ema_update", "no warm-up of the decay", lambda f, m: _ema(warm_up="none")),
    Mistake("7.2", "ema_update", "warm-up with max instead of min", lambda f, m: _ema(warm_up="max")),
    Mistake("7.2", "ema_update", "updates the average in place", lambda f, m: _ema(in_place=True)),
    Mistake("7.2", "ema_update", "keeps the weights' autograd graph", lambda f, m: _ema(detach=False)),
    Mistake("7.2", "ema_update", "averages in float64 and returns float64", lambda f, m: _ema(upcast=True)),
    # 7.3
    Mistake("7.3", "batch_indices", "wraps around in the first epoch's permutation",
            lambda f, m: _indices("wrap_in_first_epoch")),
    Mistake("7.3", "batch_indices", "a permutation per step instead of per epoch",
            lambda f, m: _indices("seeded_by_step")),
    Mistake("7.3", "batch_indices", "torch's global random generator", lambda f, m: _indices("global_rng")),
    Mistake("7.3", "batch_indices", "starts one position late", lambda f, m: _indices("off_by_one")),
    Mistake("7.3", "batch_indices", "ignores the seed", lambda f, m: _indices("ignores_seed")),
    # 7.4
    Mistake("7.4", "batch_feature_loss", "mean over features instead of the sum",
            lambda f, m: _feature_loss(reduce="mean")),
    Mistake("7.4", "batch_feature_loss", "the raw pixels always included",
            lambda f, m: _feature_loss(raw_mode="always")),
    Mistake("7.4", "batch_feature_loss", "the raw pixels never included", lambda f, m: _feature_loss(raw_mode="never")),
    Mistake("7.4", "batch_feature_loss", "generated features detached", lambda f, m: _feature_loss(detach_gen=True)),
    Mistake("7.4", "batch_feature_loss", "generated and real swapped", lambda f, m: _feature_loss(swap=True)),
    Mistake("7.4", "batch_feature_loss", "one call per group instead of per feature",
            lambda f, m: _feature_loss(per_group=True)),
    Mistake("7.4", "batch_feature_loss", "per-location features only (no patch statistics)",
            lambda f, m: _feature_loss(patch_sizes=())),
]
