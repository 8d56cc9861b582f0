"""Is a toy's floor_ratio lost to the masses of its components or to their shape?

Trains the defaults on the toys made of separate components (the eight Gaussians' modes, the checkerboard's eight
dark cells, the three rings), counts the protocol's 4,000 generated samples per component, and scores a set of
*perfect* data samples drawn with those same proportions. That "masses only" ratio is what the run would score if
every sample lay exactly like the data within its component: near the full ratio, the masses are what is wrong;
near 1, the shape is. Samples off every component (between modes, in a light cell, between rings) are reported
as ``off``; the masses-only set uses the proportions among the components. The masses-only ratio has its own
sampling noise (about +-0.3 around 1 for correct masses).

Usage: python bench/diagnose_toy_masses.py [--seeds 0 1] [--threads N]
"""

from __future__ import annotations

import argparse

import torch

from drifting_min import toys
from drifting_min.runtime import set_threads
from drifting_min.toys import metrics

POOL = 200_000  # data samples to draw the perfect sets from
POOL_SEED = 40_000


def components(dataset: str, x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Component index of each sample (-1: off every component) and the number of components."""
    if dataset == "eight_gaussians":
        dist = torch.cdist(x.double(), toys.eight_gaussian_centres().double())
        nearest = dist.min(1)
        on = nearest.values <= metrics.NEAR_STDS * toys.DATASETS[dataset].std
        return torch.where(on, nearest.indices, -1), 8
    if dataset == "checkerboard":
        cell = (x + 2).floor().long()
        col, row = cell[:, 0], cell[:, 1]
        dark = ((col - row) % 2 == 0) & (cell >= 0).all(1) & (cell <= 3).all(1)
        return torch.where(dark, col * 2 + row // 2, -1), 8  # dark cells: rows of the column's parity
    if dataset == "rings":
        offset = (x.norm(dim=1)[:, None] - torch.tensor([0.5, 1.25, 2.0])).abs()
        nearest = offset.min(1)
        return torch.where(nearest.values <= 3 * 0.05, nearest.indices, -1), 3
    raise ValueError(f"{dataset} has no separate components")


def masses_only_ratio(dataset: str, samples: torch.Tensor) -> tuple[float, float, list[float]]:
    """floor_ratio of perfect data with the samples' component proportions; the off fraction; the proportions."""
    index, count = components(dataset, samples)
    on = index[index >= 0]
    proportions = torch.bincount(on, minlength=count).double() / on.numel()
    pool = toys.sample_data(dataset, POOL, seed=POOL_SEED)
    pool_index, _ = components(dataset, pool)
    take = (proportions * metrics.N_EVAL).round().long()
    take[take.argmax()] += metrics.N_EVAL - int(take.sum())
    perfect = torch.cat([pool[pool_index == k][: int(take[k])] for k in range(count)])
    ratio = metrics.quality(perfect, dataset)["floor_ratio"]
    return ratio, float((index < 0).double().mean()), proportions.tolist()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: drifting_min.runtime's, 1)")
    args = parser.parse_args()
    set_threads(args.threads)
    print(f"{'toy':16} seed  floor_ratio  masses-only  off    proportions")
    for dataset in ("eight_gaussians", "checkerboard", "rings"):
        for seed in args.seeds:
            run = toys.train(toys.ToyConfig(dataset=dataset, seed=seed), progress=False)
            samples = run.generator.sample(metrics.N_EVAL, metrics.NOISE_SEED)
            ratio, off, proportions = masses_only_ratio(dataset, samples)
            shares = " ".join(f"{p:.3f}" for p in proportions)
            print(f"{dataset:16} {seed:4}  {run.metrics['floor_ratio']:11.2f}  {ratio:11.2f}  {off:.3f}  {shares}",
                  flush=True)


if __name__ == "__main__":
    main()
