"""How fast is the batch drift field? Ratios measured in one run, on this machine.

1. Against a naive implementation (a Python loop over queries, the formula written row by row):
   the speed-up of the vectorised field.
2. Against the machine's matrix-multiply rate: the field does two N x (N+M) x D products (distances and
   the weighted sum of targets) plus elementwise softmax work; the ratio "field time / time of those two
   matmuls" says how close to the matmul floor it runs (1.0 would be the floor).

Usage: python bench/bench_drift.py [--device cuda]
"""

from __future__ import annotations

import argparse
import math
import time

import torch

import drifting_min as dm


def naive_batch_drift(x, y_pos, tau):
    """Algorithm 2 one query row at a time (the column softmax needs all rows: computed first, also by loop)."""
    targets = torch.cat([x, y_pos])
    n = x.shape[0]
    logits = torch.stack([-(targets - x[i]).norm(dim=1) / tau for i in range(n)])
    logits[range(n), range(n)] = -math.inf
    log_col = logits.log_softmax(dim=0)
    out = torch.empty_like(x)
    for i in range(n):
        a = torch.exp(0.5 * (logits[i].log_softmax(0) + log_col[i]))
        a_neg, a_pos = a[:n], a[n:]
        out[i] = (a_pos * a_neg.sum()) @ y_pos - (a_neg * a_pos.sum()) @ x
    return out


def timeit(fn, device, repeat=5):
    fn()
    times = []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)

    x = torch.randn(256, 2, generator=gen).to(device)
    y = torch.randn(256, 2, generator=gen).to(device)
    t_naive = timeit(lambda: naive_batch_drift(x, y, 0.05), device, repeat=3)
    t_fast = timeit(lambda: dm.batch_drift_field(x, y, None, 0.05), device)
    err = (naive_batch_drift(x, y, 0.05) - dm.batch_drift_field(x, y, None, 0.05)).norm() / dm.batch_drift_field(
        x, y, None, 0.05
    ).norm()
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"naive loop vs vectorised, N = M = 256, D = 2: {t_naive * 1e3:.1f} ms vs {t_fast * 1e3:.2f} ms, "
          f"speed-up {t_naive / t_fast:.0f}x (relative difference {err:.1e})")

    for n, d in [(2048, 2), (1024, 512)] + ([(4096, 1024)] if device.type == "cuda" else []):
        x = torch.randn(n, d, generator=gen).to(device)
        y = torch.randn(n, d, generator=gen).to(device)
        targets = torch.cat([x, y])
        w = torch.randn(n, 2 * n, generator=gen).to(device)
        t_field = timeit(lambda x=x, y=y: dm.batch_drift_field(x, y, None, 0.05), device)
        t_mm = timeit(lambda x=x, w=w, targets=targets: (x @ targets.T, w @ targets), device)
        flops = 2 * 2 * n * (2 * n) * d
        t_dist = timeit(lambda x=x, targets=targets: dm.pairwise_distances(x, targets), device)
        print(f"field N = M = {n}, D = {d}: {t_field * 1e3:.2f} ms (of which distances {t_dist * 1e3:.2f} ms); "
              f"two matmuls of the same shapes {t_mm * 1e3:.2f} ms ({flops / t_mm / 1e9:.1f} GFLOP/s); "
              f"field / matmul floor = {t_field / t_mm:.1f}")


if __name__ == "__main__":
    main()
