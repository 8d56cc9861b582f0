"""Correct answers to lesson 06's exercises written another way than the worked solutions; every graded check of
their exercise must accept them."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from course.mistakes import Alternative


def ratio_differences(x):
    """Distances from explicit differences; the diagonal pushed out of the minimum by adding its row's maximum."""
    d = (x[:, None, :] - x[None, :, :]).square().sum(-1).sqrt()
    n = x.shape[0]
    eye = torch.eye(n, dtype=d.dtype, device=d.device)
    nearest = (d + eye * (d.amax() + 1)).amin(1)
    mean = (d.sum(1) - d.diagonal()) / (n - 1)
    return (nearest / mean).mean()


def ratio_topk(x):
    """The second-smallest distance of each row (the smallest is the zero to itself)."""
    d = torch.cdist(x, x)
    nearest = d.topk(2, dim=1, largest=False).values[:, 1]
    return torch.mean(nearest * (x.shape[0] - 1) / d.sum(1))


def patch_stats_unfold(fmap, p):
    """Tensor.unfold twice: B, C, H/p, W/p, p, p; two-pass variance."""
    blocks = fmap.unfold(2, p, p).unfold(3, p, p).flatten(-2)  # B, C, H/p, W/p, p^2
    mean = blocks.mean(-1)
    var = (blocks - mean[..., None]).square().mean(-1)
    std = torch.sqrt(var + 1e-6)
    return mean.flatten(2).permute(2, 0, 1), std.flatten(2).permute(2, 0, 1)


def patch_stats_pool(fmap, p):
    """Average pooling for the mean, and again for the squared deviations from the mean, upsampled."""
    mean = F.avg_pool2d(fmap, p)
    centred = fmap - mean.repeat_interleave(p, 2).repeat_interleave(p, 3)
    std = (F.avg_pool2d(centred.square(), p) + 1e-6).sqrt()
    b, c = fmap.shape[:2]
    return mean.reshape(b, c, -1).permute(2, 0, 1), std.reshape(b, c, -1).permute(2, 0, 1)


def rescale_explicit(gen, pos):
    """Distances from explicit differences, the scale detached; one division by a tensor."""
    targets = torch.cat([gen, pos], 1).detach()
    scale = (gen.detach()[:, :, None, :] - targets[:, None, :, :]).norm(dim=-1).mean()
    coord = scale / math.sqrt(gen.shape[-1])
    return gen / coord, pos / coord, scale


def rescale_two_blocks(gen, pos):
    """The mean over [gen | pos] as two sums, each over its block of targets."""
    g = gen.detach()
    total = torch.cdist(g, g).sum() + torch.cdist(g, pos.detach()).sum()
    scale = total / (gen.shape[0] * gen.shape[1] * (gen.shape[1] + pos.shape[1]))
    factor = gen.shape[-1] ** 0.5 / scale
    return gen * factor, pos * factor, scale


def normalise_clamped_rms(forces):
    """max(RMS, 1e-4) is sqrt(max(mean square, 1e-8)); torch.stack and a sum."""
    return torch.stack([f / f.square().mean().sqrt().clamp_min(1e-4) for f in forces]).sum(0)


def normalise_rsqrt(forces):
    """Multiply by rsqrt of the floored mean square."""
    total = 0
    for f in forces:
        total = total + f * torch.rsqrt(torch.clamp(torch.mean(f * f), min=1e-8))
    return total


def released_softmax(gen, pos, taus=(0.02, 0.05, 0.2), clip=True):
    """torch.softmax twice (it subtracts the maximum: stable), the forces as differences from x."""
    dtype = torch.float64 if gen.dtype == torch.float64 else torch.float32
    gen, pos = gen.to(dtype), pos.to(dtype)
    n, d = gen.shape[1], gen.shape[2]
    with torch.no_grad():
        t = torch.cat([gen, pos], 1).detach()
        dist = torch.cdist(gen.detach(), t)
        scale = dist.mean()
    coord = scale / math.sqrt(d)
    x_s = gen / coord
    with torch.no_grad():
        x, t_s = x_s.detach(), t / coord
        dn = dist / scale
        dn[:, :, :n] += 100.0 * torch.eye(n, dtype=dtype, device=gen.device)
        total = torch.zeros_like(x)
        for tau in taus:
            logits = -dn / tau
            prod = torch.softmax(logits, 2) * torch.softmax(logits, 1)
            a = prod.clamp_min(1e-6).sqrt() if clip else prod.sqrt()
            w_pos = a[:, :, n:] * a[:, :, :n].sum(2, keepdim=True)
            w_neg = a[:, :, :n] * a[:, :, n:].sum(2, keepdim=True)
            force = w_pos @ t_s[:, n:] - w_neg @ t_s[:, :n]  # the row sums cancel: no x term
            total = total + force / force.square().mean().clamp_min(1e-8).sqrt()
    return (x_s - (x + total)).square().mean()


def released_via_exercises(gen, pos, taus=(0.02, 0.05, 0.2), clip=True):
    """The loss written as the mean square of the normalised force (x / c - goal = -F), with autograd's help:
    (x / c - stopgrad(x / c) - F)^2 has the same value and gradient."""
    dtype = torch.float64 if gen.dtype == torch.float64 else torch.float32
    gen, pos = gen.to(dtype), pos.to(dtype)
    n, d = gen.shape[1], gen.shape[2]
    with torch.no_grad():
        t = torch.cat([gen, pos], 1)
        dist = (gen[:, :, None, :] - t[:, None, :, :]).norm(dim=-1)
        scale = dist.mean()
        coord = scale / math.sqrt(d)
        self_mask = torch.zeros_like(dist)
        self_mask[:, torch.arange(n), torch.arange(n)] = 100.0
        dn = dist / scale + self_mask
        forces = []
        for tau in taus:
            logits = -dn / tau
            log_a = 0.5 * (logits.log_softmax(-1) + logits.log_softmax(-2))
            if clip:
                log_a = log_a.clamp_min(0.5 * math.log(1e-6))
            a = log_a.exp()
            a_neg, a_pos = a[..., :n], a[..., n:]
            pull = (a_pos * a_neg.sum(-1, keepdim=True)) @ (pos / coord)
            push = (a_neg * a_pos.sum(-1, keepdim=True)) @ (gen / coord)
            forces.append(pull - push)
        force = sum(f / f.pow(2).mean().clamp_min(1e-8).sqrt() for f in forces)
    moved = gen / coord
    return (moved - moved.detach() - force).pow(2).mean()


ALTERNATIVES = [
    Alternative("6.1", "concentration_ratio", "explicit differences, diagonal pushed above the maximum",
                ratio_differences),
    Alternative("6.1", "concentration_ratio", "second-smallest distance by topk", ratio_topk),
    Alternative("6.2", "patch_stats", "Tensor.unfold", patch_stats_unfold),
    Alternative("6.2", "patch_stats", "average pooling, two passes", patch_stats_pool),
    Alternative("6.3", "rescale_features", "explicit differences, scale detached", rescale_explicit),
    Alternative("6.3", "rescale_features", "the mean as two block sums", rescale_two_blocks),
    Alternative("6.4", "normalise_drifts", "max(RMS, 1e-4), stacked", normalise_clamped_rms),
    Alternative("6.4", "normalise_drifts", "rsqrt of the floored mean square", normalise_rsqrt),
    Alternative("6.5", "released_loss", "torch.softmax twice, no x term", released_softmax),
    Alternative("6.5", "released_loss", "stop-gradient form of the loss, explicit differences",
                released_via_exercises),
]
