"""How long does a toy take to train, and how good is it? The defaults against the authors' demo settings.

Both are trained in this one run, the same way (drifting_min.toys.train, the same generator and data
seeds), and scored with the same protocol (drifting_min.toys.metrics: floor_ratio, the energy distance to fresh
data over the noise floor; kNN precision and recall; the share off the support). The authors' demo: 2,000 steps of
2,048 generated + 2,048 data samples, one temperature 0.05 on raw coordinates, no normalisation, constant Adam
1e-3, a generator of Gaussian noise alone (K = 1), no weight average.

``--also '{"normalisation": "sinkhorn", "taus": [0.01], "batch_data": 1024}'`` times one more configuration, the
defaults with those changes (JSON), in the same run.

Usage: python bench/bench_toys.py [--dataset checkerboard] [--threads N] [--skip-published] [--also JSON]
Timings depend on the machine and on what else runs on it: quote them with the thread count.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import torch

from drifting_min import toys
from drifting_min.runtime import set_threads


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="checkerboard", choices=sorted(toys.DATASETS))
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: drifting_min.runtime's, 1)")
    parser.add_argument("--skip-published", action="store_true", help="only the defaults (the demo takes minutes)")
    parser.add_argument("--also", type=json.loads, default=None,
                        help="one more configuration: the defaults with these changes, as JSON")
    args = parser.parse_args()
    threads = set_threads(args.threads)

    runs = {"defaults": toys.ToyConfig(dataset=args.dataset)}
    if not args.skip_published:
        runs["published demo"] = dataclasses.replace(toys.ToyConfig(dataset=args.dataset), **toys.PUBLISHED_DEMO)
    if args.also:
        runs["also"] = toys.ToyConfig(dataset=args.dataset, **args.also)
    results = {}
    for name, cfg in runs.items():
        run = toys.train(cfg, progress=False)
        results[name] = run
        extra = f", modes {run.metrics['modes_covered']}/8" if "modes_covered" in run.metrics else ""
        m = run.metrics
        print(f"{name:<15} {cfg.steps:>5} steps x ({cfg.batch_gen} + {cfg.batch_data}), taus {cfg.taus}, "
              f"K = {cfg.components}: {run.seconds:6.1f} s, floor_ratio {m['floor_ratio']:.2f}, precision "
              f"{m['precision']:.3f}, recall {m['recall']:.3f}, off the support {100 * m['off_support']:.1f}%{extra}",
              flush=True)
    if "also" in results:
        print(f"ratio of times (also {json.dumps(args.also)} / defaults): "
              f"{results['also'].seconds / results['defaults'].seconds:.2f}x")
    if "published demo" in results:
        d, p = results["defaults"], results["published demo"]
        print(f"ratio of times (published / defaults): {p.seconds / d.seconds:.2f}x; "
              f"floor_ratio defaults {d.metrics['floor_ratio']:.2f} vs published {p.metrics['floor_ratio']:.2f} "
              f"({args.dataset}, {threads} threads, torch {torch.__version__})")


if __name__ == "__main__":
    main()
