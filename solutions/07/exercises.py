"""Lesson 07: the CIFAR-10 trainer. The pieces of it that run on a CPU.

Notation (the course's): x generated images (queries), y+ real images (positives), the generated images are
also the negatives; features are shaped [G, B, C] (G groups of B samples of C numbers). FID compares the
Gaussians fitted to two sets of Inception features, mu (D,) and Sigma (D x D).

The trainer itself is drifting_min.cifar (config, data, encoder, generator, train, fid, the command); the
feature-space loss is drifting_min.features (lesson 06).
"""

from __future__ import annotations

from typing import Sequence

import torch

from drifting_min import features
from drifting_min.cifar.data import epoch_permutation


def frechet_distance(mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor) -> torch.Tensor:
    """The squared Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (FID, on Inception's statistics):

        d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1^{1/2} S2 S1^{1/2})

    S1^{1/2} is the symmetric square root of S1 (eigendecomposition S1 = Q diag(l) Q^T, root Q diag(sqrt l) Q^T),
    and tr sqrt(M) of the symmetric positive semi-definite M = S1^{1/2} S2 S1^{1/2} is the sum of the square
    roots of its eigenvalues (clamp the tiny negative ones that rounding makes to zero). M has the same
    eigenvalues as S1 S2, so this is the tr sqrt(S1 S2) of the usual formula, without a non-symmetric matrix
    square root.

    Args:
        mu1, mu2: means (D,); sigma1, sigma2: symmetric positive semi-definite covariances (D, D). Any float
            dtype; none of them is modified.

    Returns:
        A 0-dimensional float64 tensor (always float64: covariances of 2,048 features lose digits in float32).
    """
    # BEGIN SOLUTION 7.1: work in float64; root1 from torch.linalg.eigh(sigma1) with the eigenvalues clamped at 0; M = root1 @ sigma2 @ root1; tr sqrt = eigvalsh(M).clamp_min(0).sqrt().sum(); d^2 = |mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrt
    mu1, sigma1, mu2, sigma2 = (t.detach().to(torch.float64) for t in (mu1, sigma1, mu2, sigma2))
    # The symmetric square root of S1 from its eigendecomposition (symmetrised first: rounding makes S1 a
    # hair non-symmetric, and eigh reads one triangle only).
    evals, evecs = torch.linalg.eigh((sigma1 + sigma1.T) / 2)
    root1 = (evecs * evals.clamp_min(0).sqrt()) @ evecs.T  # Q diag(sqrt l) Q^T
    middle = root1 @ sigma2 @ root1  # symmetric PSD, same eigenvalues as S1 S2
    tr_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    diff = mu1 - mu2
    return diff @ diff + sigma1.trace() + sigma2.trace() - 2 * tr_sqrt
    # END SOLUTION


def ema_update(
    ema: dict[str, torch.Tensor], weights: dict[str, torch.Tensor], step: int, decay: float
) -> dict[str, torch.Tensor]:
    """One update of the exponential moving average of a network's weights, after optimiser step ``step``:

        d = min(decay, (1 + step) / (10 + step))
        ema_k <- d ema_k + (1 - d) w_k          for every entry k

    The min() warms the decay up: 0.1 at step 0, 0.5 at step 8, 0.9 at step 80, so the first steps do not
    keep the random initialisation in the average. Once d = decay, a change of the weights is half forgotten
    after ln 2 / -ln(decay) steps (about 693 at 0.999).

    Args:
        ema: the current averages, {name: tensor}; weights: the network's weights now, same names and shapes
            (they may require grad: the average is a constant, it keeps no graph). Neither is modified.
        step: the optimiser step just taken (0 for the first); decay: the target decay, in [0, 1).

    Returns:
        A new dict of new tensors, each in the dtype of its ``ema`` entry, with no autograd graph.
    """
    # BEGIN SOLUTION 7.2: d = min(decay, (1 + step) / (10 + step)); new dict {k: d * ema[k] + (1 - d) * weights[k].detach()}, built out of place (no mul_ or lerp_ on the inputs)
    d = min(decay, (1 + step) / (10 + step))
    # Out of place: the caller's tensors stay as they were; detach: the average must not hold the graph.
    return {name: d * avg + (1 - d) * weights[name].detach().to(avg.dtype) for name, avg in ema.items()}
    # END SOLUTION


def batch_indices(n: int, seed: int, step: int, batch: int) -> torch.Tensor:
    """The indices of the ``batch`` real images of step ``step``, as a function of (seed, step) only.

    The images are read in an endless stream of epochs: epoch e is the permutation
    ``epoch_permutation(n, seed, e)`` of range(n) (given; it depends on (n, seed, e) only). Step s takes the
    positions s * batch, ..., s * batch + batch - 1 of that stream; a batch that runs past the end of an epoch
    continues at the start of the next one (and a batch larger than n spans several epochs).

    Because no state is kept (no generator advanced from step to step, no position stored), a run resumed at
    step s reads exactly the images an uninterrupted run would have read.

    Returns:
        A LongTensor of shape (batch,).
    """
    # BEGIN SOLUTION 7.3: for each position p in range(step * batch, (step + 1) * batch): epoch, offset = divmod(p, n); take epoch_permutation(n, seed, epoch)[offset]; collect them in a LongTensor (slices per epoch are faster)
    out, pos, end = [], step * batch, (step + 1) * batch
    while pos < end:
        epoch, offset = divmod(pos, n)  # which epoch, and where in it
        take = min(n - offset, end - pos)  # to the end of this epoch at most
        out.append(epoch_permutation(n, seed, epoch)[offset:offset + take])
        pos += take
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)
    # END SOLUTION


def batch_feature_loss(encoder, gen_images: torch.Tensor, real_images: torch.Tensor,
                       taus: Sequence[float] = (0.02, 0.05, 0.2), raw: bool = True) -> torch.Tensor:
    """The trainer's loss of one batch: the released batch loss summed over every feature of an encoder.

    1. features of a batch: ``features.multiscale_features(encoder.feature_maps(images))`` (every stage's
       per-location vectors, global mean and std, 2x2 and 4x4 patch means and stds, each [G, B, C]), plus,
       when ``raw``, the images themselves as one more feature ``"raw"``: ``images.flatten(1)[None]`` ([1, B, 3HW]);
    2. the generated images' features keep their graph (the gradient reaches the generator through the
       frozen encoder); the real images' features are constants: compute them under ``torch.no_grad()``;
    3. L = sum over features k of ``features.released_drift_loss(gen_k, real_k, taus=taus)[0]``: one call per
       feature, with all its groups at once (the call's scale is one number for all of them).

    Returns:
        The 0-dimensional loss, in the dtype of the images (float32 in, float32 out).
    """
    # BEGIN SOLUTION 7.4: feats(images) = features.multiscale_features(encoder.feature_maps(images)) plus {"raw": images.flatten(1)[None]} when raw; real features under torch.no_grad(); sum over names of features.released_drift_loss(fg[k], fr[k], taus=taus)[0], one call per feature
    def feats(images: torch.Tensor) -> dict[str, torch.Tensor]:
        out = features.multiscale_features(encoder.feature_maps(images))  # {name: [G, B, C]}
        if raw:
            out["raw"] = images.flatten(1)[None]  # [1, B, 3 H W]: one group
        return out

    fg = feats(gen_images)
    with torch.no_grad():  # positives are constants: no graph through the encoder for them
        fr = feats(real_images)
    losses = [features.released_drift_loss(fg[k], fr[k], taus=taus)[0] for k in fg]  # one call per feature
    return torch.stack(losses).sum()
    # END SOLUTION
