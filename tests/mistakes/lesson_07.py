"""Typical mistakes in lesson 07 (the CIFAR-10 trainer's CPU pieces); each must fail a graded check of its exercise."""

from __future__ import annotations

import numpy as np
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


def _frechet(*, trace_term="symmetric", factor=2.0, squared_mean=True, dtype=torch.float64, in_place=False,
             ridge=0.0, expanded_mean=False, cpu_ridge=False):
    def frechet_distance(mu1, sigma1, mu2, sigma2):
        if in_place:  # a small ridge for stability, added to the caller's matrix
            sigma1.diagonal().add_(1e-6)
        m1, s1, m2, s2 = (t.detach().to(dtype) for t in (mu1, sigma1, mu2, sigma2))
        if ridge:  # the "offset" some FID code adds for a singular covariance
            eye = torch.eye(len(m1), dtype=dtype, device=m1.device)
            s1, s2 = s1 + ridge * eye, s2 + ridge * eye
        if cpu_ridge:  # a zero-sized ridge, but made on the CPU whatever the inputs' device
            s1 = s1 + 0.0 * torch.eye(len(m1), dtype=dtype)
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
        if expanded_mean:  # |a|^2 + |b|^2 - 2 a.b: the same in exact arithmetic, no digits left far from 0
            mean_term = m1 @ m1 + m2 @ m2 - 2 * m1 @ m2
        return mean_term + s1.trace() + s2.trace() - factor * tr
    return frechet_distance


def _frechet_numpy(mu1, sigma1, mu2, sigma2):
    """Through numpy, as scipy-style code does: no detach, and CPU only."""
    m1, s1, m2, s2 = (t.numpy().astype(np.float64) for t in (mu1, sigma1, mu2, sigma2))
    evals, evecs = np.linalg.eigh((s1 + s1.T) / 2)
    root1 = (evecs * np.sqrt(np.clip(evals, 0, None))) @ evecs.T
    tr = np.sqrt(np.clip(np.linalg.eigvalsh(root1 @ s2 @ root1), 0, None)).sum()
    return torch.tensor((m1 - m2) @ (m1 - m2) + np.trace(s1) + np.trace(s2) - 2 * tr, dtype=torch.float64)


# ------------------------------------------------------------------------------------------------ 7.2


def _ema(*, swap=False, warm_up="min", in_place=False, detach=True, upcast=False, off_by_one=False,
         d_float32=False, fixed_decay=None, into_dict=False, weights_dtype=False, numpy=False):
    def ema_update(ema, weights, step, decay):
        if fixed_decay is not None:
            decay = fixed_decay
        if off_by_one:  # counts steps from 1
            step = step + 1
        if warm_up == "min":
            d = min(decay, (1 + step) / (10 + step))
        elif warm_up == "none":
            d = decay
        else:  # max instead of min: no warm-up at all
            d = max(decay, (1 + step) / (10 + step))
        if d_float32:
            d = torch.tensor(d, dtype=torch.float32)
        keep, take = (1 - d, d) if swap else (d, 1 - d)
        out = ema if into_dict else {}
        for k, avg in list(ema.items()):
            w = weights[k].detach() if detach else weights[k]
            if numpy:  # numpy arithmetic: .numpy() on a tensor that requires grad raises
                out[k] = torch.as_tensor(np.asarray(keep * avg.numpy() + take * weights[k].numpy())).to(avg.dtype)
            elif weights_dtype:  # the new weights' dtype wins
                out[k] = (keep * avg.to(w.dtype) + take * w)
            elif upcast:
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
        if kind == "global_rng":  # torch's global generator for the epochs the batch touches: another process,
            first, last = start // n, (start + batch - 1) // n  # another order
            perm = torch.cat([torch.randperm(n) for _ in range(first, last + 1)])
            return perm[start - first * n:start - first * n + batch]
        if kind == "float_positions":  # epoch and offset through float32
            p = torch.arange(start, start + batch, dtype=torch.float32)
            epochs, offsets = torch.div(p, n, rounding_mode="floor"), torch.remainder(p, n)
            return torch.stack([epoch_permutation(n, seed, int(e))[int(o)] for e, o in zip(epochs, offsets)])
        if kind == "squeeze":
            return torch.stack([epoch_permutation(n, seed, int(p) // n)[int(p) % n] for p in positions]).squeeze()
        if kind == "off_by_one":
            positions = positions + 1
        if kind == "ignores_seed":
            seed = 0
        return torch.stack([epoch_permutation(n, seed, int(p) // n)[int(p) % n] for p in positions])
    return batch_indices


_CACHE: dict = {}


def _indices_cached(n, seed, step, batch):
    """Keeps the permutations of the epochs it saw and returns a slice of the cache when the batch fits in one."""
    start = step * batch
    epoch, offset = divmod(start, n)
    if offset + batch <= n:
        key = (n, seed, epoch)
        if key not in _CACHE:
            _CACHE[key] = epoch_permutation(n, seed, epoch)
        return _CACHE[key][offset:offset + batch]
    return _indices("right")(n, seed, step, batch)


# ------------------------------------------------------------------------------------------------ 7.4


def _feature_loss(*, reduce="sum", raw_mode="flag", detach_gen=False, swap=False, per_group=False, patch_sizes=(2, 4),
                  freeze=False, shuffle=False):
    def batch_feature_loss(encoder, gen_images, real_images, taus=(0.02, 0.05, 0.2), raw=True):
        use_raw = {"flag": raw, "always": True, "never": False}[raw_mode]
        if freeze:  # "the encoder is frozen": but it is the caller's module
            encoder.requires_grad_(False)
        if shuffle:  # harmless for the value (the order of the real images does not matter), not for the caller
            real_images = real_images[torch.randperm(len(real_images))]

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
    Mistake("7.1", "frechet_distance", "a ridge of 1e-6 on both covariances", lambda f, m: _frechet(ridge=1e-6)),
    Mistake("7.1", "frechet_distance", "|mu1|^2 + |mu2|^2 - 2 mu1.mu2 for the mean term",
            lambda f, m: _frechet(expanded_mean=True)),
    Mistake("7.1", "frechet_distance", "through numpy (no detach, CPU only)", lambda f, m: _frechet_numpy),
    Mistake("7.1", "frechet_distance", "a tensor made on the CPU whatever the inputs' device",
            lambda f, m: _frechet(cpu_ridge=True)),
    # 7.2
    Mistake("7.2", "ema_update", "decay and 1 - decay swapped", lambda f, m: _ema(swap=True)),
    Mistake("7.2", "ema_update", "no warm-up of the decay", lambda f, m: _ema(warm_up="none")),
    Mistake("7.2", "ema_update", "warm-up with max instead of min", lambda f, m: _ema(warm_up="max")),
    Mistake("7.2", "ema_update", "updates the average in place", lambda f, m: _ema(in_place=True)),
    Mistake("7.2", "ema_update", "keeps the weights' autograd graph", lambda f, m: _ema(detach=False)),
    Mistake("7.2", "ema_update", "averages in float64 and returns float64", lambda f, m: _ema(upcast=True)),
    Mistake("7.2", "ema_update", "warm-up counts steps from 1", lambda f, m: _ema(off_by_one=True)),
    Mistake("7.2", "ema_update", "d rounded to a float32 tensor", lambda f, m: _ema(d_float32=True)),
    Mistake("7.2", "ema_update", "decay fixed at 0.999", lambda f, m: _ema(fixed_decay=0.999)),
    Mistake("7.2", "ema_update", "writes the new averages into the caller's dict", lambda f, m: _ema(into_dict=True)),
    Mistake("7.2", "ema_update", "result in the weights' dtype", lambda f, m: _ema(weights_dtype=True)),
    Mistake("7.2", "ema_update", "numpy arithmetic on the weights", lambda f, m: _ema(numpy=True)),
    # 7.3
    Mistake("7.3", "batch_indices", "wraps around in the first epoch's permutation",
            lambda f, m: _indices("wrap_in_first_epoch")),
    Mistake("7.3", "batch_indices", "a permutation per step instead of per epoch",
            lambda f, m: _indices("seeded_by_step")),
    Mistake("7.3", "batch_indices", "torch's global random generator", lambda f, m: _indices("global_rng")),
    Mistake("7.3", "batch_indices", "starts one position late", lambda f, m: _indices("off_by_one")),
    Mistake("7.3", "batch_indices", "ignores the seed", lambda f, m: _indices("ignores_seed")),
    Mistake("7.3", "batch_indices", "epoch and offset through float32", lambda f, m: _indices("float_positions")),
    Mistake("7.3", "batch_indices", "squeezed (a batch of one loses its axis)", lambda f, m: _indices("squeeze")),
    Mistake("7.3", "batch_indices", "returns a view of a cache of permutations", lambda f, m: _indices_cached),
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
    Mistake("7.4", "batch_feature_loss", "freezes the caller's encoder (requires_grad_(False))",
            lambda f, m: _feature_loss(freeze=True)),
    Mistake("7.4", "batch_feature_loss", "shuffles the real images with the global generator",
            lambda f, m: _feature_loss(shuffle=True)),
]
