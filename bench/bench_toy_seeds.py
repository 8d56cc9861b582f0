"""How much does a toy's floor_ratio vary with the seed? The defaults on every toy, several seeds, in one run.

A single run's floor_ratio is one draw: the training trajectory depends on the seed (and even on float
rounding), and the protocol's own floor scatters. This runs every (toy, seed) pair with the default
configuration, each in its own process on `--threads` cores (pinned with taskset where there is one), `--jobs`
at a time, and prints each toy's median, min and max floor_ratio and training time.

Usage: python bench/bench_toy_seeds.py [--seeds 0 1 2] [--jobs 1] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import shutil
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

from drifting_min import toys

ONE_RUN = """
import json, sys, torch
from drifting_min import toys
torch.set_num_threads(int(sys.argv[3]))
run = toys.train(toys.ToyConfig(dataset=sys.argv[1], seed=int(sys.argv[2])), progress=False)
print(json.dumps({"floor_ratio": run.metrics["floor_ratio"], "modes": run.metrics.get("modes_covered"),
                  "s": run.seconds}))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (each on --threads cores)")
    parser.add_argument("--threads", type=int, default=1, help="threads a run (one: see drifting_min.runtime)")
    args = parser.parse_args()
    pairs = [(d, s) for d in sorted(toys.DATASETS) for s in args.seeds]

    free_slots = queue.Queue()  # each slot is a block of --threads cores that one run has to itself
    for slot in range(args.jobs):
        free_slots.put(slot)
    pin = shutil.which("taskset") and os.cpu_count() >= args.jobs * args.threads

    def run(pair):
        dataset, seed = pair
        slot = free_slots.get()
        command = [sys.executable, "-c", ONE_RUN, dataset, str(seed), str(args.threads)]
        if pin:
            first = slot * args.threads
            command = ["taskset", "-c", f"{first}-{first + args.threads - 1}"] + command
        try:
            env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
            out = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
        finally:
            free_slots.put(slot)
        return dataset, seed, json.loads(out.stdout.strip().splitlines()[-1])

    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(run, pairs))
    print(f"defaults, seeds {args.seeds}, {args.threads} threads a run, {args.jobs} runs at a time")
    print(f"{'toy':<16} {'median':>7} {'min':>6} {'max':>6}  {'<= 1.5':>7}  {'seconds (median)':>16}")
    for dataset in sorted(toys.DATASETS):
        rows = [r for d, _, r in results if d == dataset]
        ratios = [r["floor_ratio"] for r in rows]
        modes = [r["modes"] for r in rows if r["modes"] is not None]
        extra = f"   modes covered {min(modes)}-{max(modes)}/8" if modes else ""
        print(f"{dataset:<16} {statistics.median(ratios):7.2f} {min(ratios):6.2f} {max(ratios):6.2f}  "
              f"{sum(r <= 1.5 for r in ratios):>3}/{len(ratios):<3}  "
              f"{statistics.median(r['s'] for r in rows):16.1f}{extra}")
    for dataset, seed, r in results:
        print(json.dumps({"dataset": dataset, "seed": seed, **r}))


if __name__ == "__main__":
    main()
