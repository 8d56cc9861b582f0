"""Lesson 06: feature-space kernels.

Notation (the course's): x (N x D) generated samples, y+ (M x D) data, tau a temperature. In feature space a
sample is an image and each *feature* phi_j of a frozen encoder turns a batch of images into vectors; the
published code compares them group by group, so a feature's tensor is shaped

    [G, N, C]     G groups (e.g. one per location of a feature map), N samples, C channels.

The released implementation's batch loss (lesson 06, section 6) works on such tensors: one scale s per call
(the mean distance, no gradient), coordinates divided by s / sqrt(C), the double softmax with a clip,
each temperature's force normalised to unit mean square, the loss the mean squared distance to the goal.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def concentration_ratio(x: torch.Tensor) -> torch.Tensor:
    """How distinct is a nearest neighbour? The mean, over points, of nearest distance / mean distance.

    For each point x_i of the N x D set x (N >= 2), over the N - 1 *other* points j != i:

        r_i = min_{j != i} |x_i - x_j| / ( (1/(N-1)) sum_{j != i} |x_i - x_j| ),     ratio = (1/N) sum_i r_i

    with plain Euclidean distances. A ratio near 0: neighbours are much closer than typical points (a kernel
    can tell them apart); near 1: every point is about as far as every other (distances have concentrated).

    Returns:
        A 0-dimensional tensor, in the dtype of x.
    """
    # BEGIN SOLUTION 6.1: d = torch.cdist(x, x); leave the diagonal (each point's zero distance to itself) out of both the minimum and the mean: the mean over j != i divides by N - 1
    n = x.shape[0]
    d = torch.cdist(x, x)  # N x N plain distances, zeros on the diagonal
    eye = torch.eye(n, dtype=torch.bool, device=x.device)
    # The minimum over j != i: the diagonal would always win with its zero, so it is set to +inf first.
    nearest = d.masked_fill(eye, float("inf")).amin(dim=1)
    # The mean over the N - 1 others: the diagonal adds 0 to the sum, so dividing by N - 1 leaves it out.
    mean = d.sum(dim=1) / (n - 1)
    return (nearest / mean).mean()
    # END SOLUTION


def patch_stats(fmap: torch.Tensor, p: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Means and standard deviations of a feature map over p x p patches, a group per patch.

    Args:
        fmap: a feature map, B x C x H x W (H and W divisible by p).
        p: the patch side (2 or 4 in the published code; p = H = W gives the global statistics).

    The patches tile the map without overlap, in row-major order: group g = a * (W // p) + b is the patch of
    rows a p .. a p + p - 1 and columns b p .. b p + p - 1. For each image and channel,

        mean[g, n, c] = (1/p^2) sum over the patch of fmap[n, c, h, w]
        std[g, n, c]  = sqrt( (1/p^2) sum over the patch of (fmap[n, c, h, w] - mean[g, n, c])^2 + 1e-6 )

    (the population variance, divided by p^2 not p^2 - 1, and 1e-6 inside the root so that a flat patch has a
    finite gradient).

    Returns:
        (mean, std), each G x B x C with G = (H // p) (W // p), in the dtype of fmap.
    """
    # BEGIN SOLUTION 6.2: reshape to B, C, H/p, p, W/p, p; statistics over the two patch axes (unbiased=False, + 1e-6 inside the root); then move the (H/p, W/p) patch axes to the front as one group axis: G x B x C
    b, c, h, w = fmap.shape
    # Split each spatial axis into (which patch, where inside the patch).
    blocks = fmap.reshape(b, c, h // p, p, w // p, p)
    mean = blocks.mean(dim=(3, 5))  # B x C x H/p x W/p
    var = blocks.var(dim=(3, 5), unbiased=False)  # the population variance: divide by p^2
    std = (var + 1e-6).sqrt()

    def groups_first(t: torch.Tensor) -> torch.Tensor:
        # B x C x H/p x W/p -> (H/p W/p) x B x C; flattening (H/p, W/p) is row-major: g = a (W/p) + b
        return t.flatten(2).permute(2, 0, 1)

    return groups_first(mean), groups_first(std)
    # END SOLUTION


def rescale_features(gen: torch.Tensor, pos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Divide a feature's coordinates by s / sqrt(C), so that its mean distance becomes sqrt(C).

    Args:
        gen: generated features, G x N x C (queries; they may carry a graph).
        pos: data features, G x M x C.

    The scale s is one number for the whole call, the mean distance from every generated sample to every target
    of the same group, over the targets [gen | pos] (the generated samples themselves included, each one's zero
    distance to itself counted):

        s = (1/(G N (N + M))) sum_g sum_i sum_j |gen[g, i] - t[g, j]|,      t[g] = [gen[g] | pos[g]]

    It is a statistic of the batch, not something to optimise: it carries no gradient.

    Returns:
        (gen / (s / sqrt(C)), pos / (s / sqrt(C)), s): the two rescaled tensors in the dtype of gen (gen's
        rescaled copy still carries gen's graph, with s a constant) and the scale s itself (not s / sqrt(C)) as
        a 0-dimensional tensor with no graph. The inputs are not modified.
    """
    # BEGIN SOLUTION 6.3: targets = cat([gen, pos], dim=1) (detached); s = torch.cdist(gen, targets).mean() with no gradient; coord = s / sqrt(C); return gen / coord, pos / coord, s
    c = gen.shape[-1]
    with torch.no_grad():  # a batch statistic: no gradient flows through it
        targets = torch.cat([gen, pos], dim=1)  # G x (N + M) x C
        scale = torch.cdist(gen, targets).mean()  # s
    coord = scale / c**0.5  # s / sqrt(C): the coordinates' unit, so that the mean distance becomes sqrt(C)
    return gen / coord, pos / coord, scale
    # END SOLUTION


def normalise_drifts(forces: Sequence[torch.Tensor]) -> torch.Tensor:
    """Sum the per-temperature forces, each first divided by its root mean square (floored).

        F = sum_k F_k / sqrt(max(mean(F_k^2), 1e-8))

    where mean(F_k^2) runs over every entry of F_k (all groups, samples and dimensions). The floor keeps a
    temperature whose force is vanishingly small (below 1e-4 RMS) from being blown up to unit size: it is in
    effect dropped, and a zero force stays zero instead of 0 / 0.

    Args:
        forces: one tensor per temperature, all of the same shape (G x N x D in the released loss).

    Returns:
        The summed, normalised force, in the shape and dtype of the forces. The inputs are not modified.
    """
    # BEGIN SOLUTION 6.4: for each force, rms = sqrt(clamp(mean of its squares over all entries, min=1e-8)); add force / rms; the floor is on the mean square (1e-8), not on the rms
    total = torch.zeros_like(forces[0])
    for force in forces:
        rms = force.square().mean().clamp_min(1e-8).sqrt()
        total = total + force / rms
    return total
    # END SOLUTION


def released_loss(
    gen: torch.Tensor, pos: torch.Tensor, taus: Sequence[float] = (0.02, 0.05, 0.2), clip: bool = True
) -> torch.Tensor:
    """The released implementation's batch loss, for one feature (no extra negatives, unit weights).

    Args:
        gen: generated features, G x N x D (gradients flow to them); pos: data features, G x M x D (constants).

    Within each group g, with the targets t = [gen (detached) | pos] (N + M of them) and no gradient:

    1. ``rescale_features(gen, pos)`` gives (gen / (s / sqrt(D)), pos / (s / sqrt(D)), s): x is the first,
       detached, and the rescaled targets are [x | the second];
    2. distances divided by the scale, dn = |gen_i - t_j| / s, and + 100 on each sample's distance to
       itself (the entry j = i of the first block: it is in effect excluded);
    3. for each temperature tau: logits l = -dn / tau; A = sqrt(softmax over targets(l) * softmax over the
       generated samples(l)), and with ``clip`` sqrt(max(that product, 1e-6)) instead, so every affinity is at
       least 1e-3; split A into A- (the first N columns) and A+ (the last M);
       W+ = A+ * rowsum(A-), W- = A- * rowsum(A+); the force in rescaled coordinates
       F_tau = W+ t+ - W- t- - (rowsum(W+) - rowsum(W-)) x;
    4. F = ``normalise_drifts`` of the forces; the goal is x + F (a constant);
    5. the loss is the mean over groups, samples and dimensions of (gen / (s / sqrt(D)) - goal)^2.

    Dtypes: float64 features are computed in float64; float32, bfloat16 and float16 features in float32 (as
    the released code keeps distances and softmaxes in float32 under bf16 autocast), so the loss is float64 for
    float64 input and float32 otherwise.

    The released code's two floors (distances at least 1e-4, the scale at least 1e-3) are left out here: the checks
    compare with ``features.released_drift_loss(..., min_sq_distance=0, scale_floor=0)``.

    Returns:
        A 0-dimensional tensor whose gradient reaches gen only.
    """
    # BEGIN SOLUTION 6.5: float32 for anything but float64; rescale with 6.3; with no grad: dn = cdist / s + 100 on the self entries; per tau the (clipped) double softmax in log space, cross-weighted force, summed with 6.4; goal = x + F; loss = ((gen / (s / sqrt(D)) - goal)^2).mean()
    dtype = torch.float64 if gen.dtype == torch.float64 else torch.float32  # bf16 / float16: float32 inside
    gen, pos = gen.to(dtype), pos.to(dtype)
    n = gen.shape[1]
    gen_s, pos_s, scale = rescale_features(gen, pos)
    with torch.no_grad():
        x = gen_s.detach()
        targets = torch.cat([x, pos_s], dim=1)  # G x (N + M) x D, rescaled
        # Distances relative to the scale s (the rescaling of the coordinates would only cancel out here).
        dn = torch.cdist(gen.detach(), torch.cat([gen.detach(), pos.detach()], dim=1)) / scale
        dn = dn + 100.0 * torch.eye(n, n + pos.shape[1], dtype=dn.dtype, device=dn.device)  # the self distances
        forces = []
        for tau in taus:
            logits = -dn / tau
            # log of softmax over targets (dim 2) plus log of softmax over the generated samples (dim 1)
            log_product = logits.log_softmax(dim=2) + logits.log_softmax(dim=1)
            if clip:  # max(product, 1e-6), taken in log space
                log_product = log_product.clamp_min(torch.log(torch.tensor(1e-6, dtype=dn.dtype)))
            a = torch.exp(0.5 * log_product)  # G x N x (N + M)
            a_neg, a_pos = a[:, :, :n], a[:, :, n:]
            w_pos = a_pos * a_neg.sum(2, keepdim=True)
            w_neg = a_neg * a_pos.sum(2, keepdim=True)
            force = w_pos @ targets[:, n:] - w_neg @ targets[:, :n]
            # The coefficients' row sums cancel exactly in exact arithmetic; the released code keeps the term.
            force = force - (w_pos.sum(2, keepdim=True) - w_neg.sum(2, keepdim=True)) * x
            forces.append(force)
        goal = x + normalise_drifts(forces)
    return (gen_s - goal).square().mean()
    # END SOLUTION
