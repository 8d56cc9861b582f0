"""How much does batching the groups of a feature save? Ratios measured in one run, on this machine.

1. ``released_drift_loss`` over G groups batched, against a Python loop over the groups that runs the very
   same steps one group at a time (the distances, the force of each temperature; the scale and the
   per-temperature normalisation are shared by all groups, as in the batched call). Batched means the default
   (on a CPU, blocks of groups of about ``features.CPU_BLOCK`` generated-target pairs) and also all groups in
   one block (what a GPU does). All include the backward pass. The loop's result is checked against the
   batched one before timing.
2. ``feature_drift_loss`` on the multi-scale features of image-sized feature maps (what lesson 06 and the
   trainer call each step): time per call, and the share of it spent on the per-location features.

One thread unless --threads (OMP_NUM_THREADS=1 semantics), so the ratios do not depend on the machine's load.

Usage: python bench/bench_features.py [--threads N] [--device cuda] [--quick]
"""

from __future__ import annotations

import argparse
import math
import time

import torch

from drifting_min import features
from drifting_min.features import (
    FORCE_MS_FLOOR,
    SELF_DISTANCE,
    _distances,
    _temperature_force,
    feature_drift_loss,
    multiscale_features,
    released_drift_loss,
)

TAUS = (0.02, 0.05, 0.2)


def looped_released_loss(gen: torch.Tensor, pos: torch.Tensor, taus=TAUS, clip: bool = True) -> torch.Tensor:
    """The released loss with a Python loop over groups: the same steps as features._released_force, each run
    on one [1, N, .] slice at a time (unit weights, no extra negatives); the scale and the normalisation of each
    temperature are shared by all groups, as in the batched call."""
    g, n, d = gen.shape
    x = gen.detach()
    with torch.no_grad():
        targets = torch.cat([x, pos], dim=1)  # [G, T, D]
        targets = targets - targets.mean(dim=1, keepdim=True)  # centred per group, as in the batched call
        xc = targets[:, :n]
        dists = [_distances(xc[i : i + 1], targets[i : i + 1]) for i in range(g)]  # G x [1, N, T]
        scale = sum(dd.sum() for dd in dists) / sum(dd.numel() for dd in dists)
        coord = scale / math.sqrt(d)
        for dd in dists:
            dd /= scale
            dd[:, :, :n].diagonal(dim1=1, dim2=2).fill_(SELF_DISTANCE)
        x_s = [xc[i : i + 1] / coord for i in range(g)]
        y_s = [targets[i : i + 1] / coord for i in range(g)]
        force_sum = [torch.zeros_like(xs) for xs in x_s]
        for r in taus:
            forces = [_temperature_force(dists[i], None, x_s[i], y_s[i], n, r, clip) for i in range(g)]
            mean_sq = sum(f.square().sum() for f in forces) / (g * n * d)
            for i in range(g):
                force_sum[i] += forces[i] / mean_sq.clamp_min(FORCE_MS_FLOOR).sqrt()
        force = torch.cat(force_sum)
    return ((gen - x) / coord - force).square().mean()


def timeit(fns, device: torch.device, repeat: int) -> list[float]:
    """Median time of each function over ``repeat`` rounds, the functions called in turn within a round (so a
    change of load on a shared machine hits them alike), after one warm-up round. On one CPU thread the clock
    is the process's CPU time (steadier than wall time on a shared machine), otherwise wall time (synchronised
    on CUDA)."""
    cpu_time = device.type == "cpu" and torch.get_num_threads() == 1
    clock = time.process_time if cpu_time else time.perf_counter
    times: list[list[float]] = [[] for _ in fns]
    for round_ in range(repeat + 1):
        for fn, t in zip(fns, times):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = clock()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if round_:
                t.append(clock() - start)
    return [sorted(t)[len(t) // 2] for t in times]


def bench_groups(device: torch.device, repeat: int, shapes) -> None:
    print("1. released_drift_loss, forward + backward: the batched call against a loop over groups")
    if device.type == "cpu":
        print(f"   (batched: the default, blocks of about {features.CPU_BLOCK} pairs on a CPU;"
              " one block: all groups at once)")
    print(f"{'groups':>7} {'gen':>5} {'pos':>5} {'dims':>5} | {'batched ms':>11} {'one block':>10} {'loop ms':>9}"
          f" | {'loop / batched':>14} {'loop / one block':>16}")
    for g, n, m, d in shapes:
        gen_ = torch.Generator().manual_seed(g * n + d)
        gen = torch.randn(g, n, d, generator=gen_).to(device).requires_grad_(True)
        pos = (torch.randn(g, m, d, generator=gen_) + 0.5).to(device)
        batched, _ = released_drift_loss(gen, pos, taus=TAUS)
        looped = looped_released_loss(gen, pos, TAUS)
        assert torch.allclose(batched, looped, rtol=1e-4), (batched.item(), looped.item())

        def run_batched(gen=gen, pos=pos):
            released_drift_loss(gen, pos, taus=TAUS)[0].backward()

        def run_one_block(gen=gen, pos=pos):
            default, features.CPU_BLOCK = features.CPU_BLOCK, None
            try:
                released_drift_loss(gen, pos, taus=TAUS)[0].backward()
            finally:
                features.CPU_BLOCK = default

        def run_looped(gen=gen, pos=pos):
            looped_released_loss(gen, pos, TAUS).backward()

        t_b, t_1, t_l = timeit([run_batched, run_one_block, run_looped], device, repeat)
        print(f"{g:>7} {n:>5} {m:>5} {d:>5} | {1e3 * t_b:>11.1f} {1e3 * t_1:>10.1f} {1e3 * t_l:>9.1f}"
              f" | {t_l / t_b:>13.1f}x {t_l / t_1:>15.1f}x")


def bench_image_features(device: torch.device, repeat: int, configs) -> None:
    print("\n2. feature_drift_loss on multi-scale features of random feature maps, forward + backward")
    print(f"{'image':>6} {'gen':>5} {'real':>5} {'maps (C x H x W)':>30} | {'features':>8} {'ms':>8} {'loc share':>10}")
    for size, n, m, maps in configs:
        gen_ = torch.Generator().manual_seed(size + n)
        g_maps = [torch.randn(n, c, h, h, generator=gen_).to(device).requires_grad_(True) for c, h in maps]
        r_maps = [torch.randn(m, c, h, h, generator=gen_).to(device) for c, h in maps]
        g_raw = torch.randn(n, 3 * size * size, generator=gen_).to(device).requires_grad_(True)
        r_raw = torch.randn(m, 3 * size * size, generator=gen_).to(device)

        def feats(g_maps=g_maps, r_maps=r_maps, g_raw=g_raw, r_raw=r_raw):
            gf = multiscale_features(g_maps) | {"raw": g_raw[None]}
            rf = multiscale_features(r_maps) | {"raw": r_raw[None]}
            return gf, rf

        def run_all(feats=feats):
            feature_drift_loss(*feats())[0].backward()

        def run_loc(feats=feats):
            gf, rf = feats()
            loc = [k for k in gf if k.endswith(".loc")]
            feature_drift_loss({k: gf[k] for k in loc}, {k: rf[k] for k in loc})[0].backward()

        t_all, t_loc = timeit([run_all, run_loc], device, repeat)
        desc = ", ".join(f"{c}x{h}x{h}" for c, h in maps)
        print(f"{size:>6} {n:>5} {m:>5} {desc:>30} | {len(feats()[0]):>8} {1e3 * t_all:>8.0f} {t_loc / t_all:>9.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per case; the median is printed")
    parser.add_argument("--quick", action="store_true", help="fewer and smaller cases")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    clock = "CPU time" if device.type == "cpu" and args.threads == 1 else "wall time"
    print(f"device {device}, {torch.get_num_threads()} thread(s), torch {torch.__version__}; times: median {clock}\n")
    if args.quick:
        shapes = [(256, 64, 64, 64), (64, 32, 32, 16)]
        configs = [(16, 64, 64, [(16, 16), (32, 8), (64, 4)])]
    else:
        shapes = [(256, 64, 64, 64), (1024, 32, 32, 16), (64, 128, 128, 128), (16, 64, 64, 512), (1, 256, 256, 64)]
        configs = [  # lesson 06's encoder on 16 x 16 images; the CIFAR-10 encoder (width 32) on 32 x 32 images
            (16, 64, 64, [(16, 16), (32, 8), (64, 4)]),
            (16, 256, 256, [(16, 16), (32, 8), (64, 4)]),
            (32, 128, 128, [(64, 16), (128, 8), (256, 4)]),
        ]
    bench_groups(device, args.repeat, shapes)
    bench_image_features(device, args.repeat, configs)


if __name__ == "__main__":
    main()
