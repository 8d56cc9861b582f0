"""Lesson 08's benchmark: the default field against each proposed fix, on the toys, by the toys' protocol.

Each entry trains the defaults (``drifting_min.toys.ToyConfig``) with one change, on each seed, and scores the
run with ``drifting_min.toys.metrics.quality`` (floor ratio, precision, recall, share off the support) plus its
training seconds. The groups:

* five toys: the default, a two-sided (Sinkhorn) coupling (``--normalisation sinkhorn``) and temperatures
  annealed from 4x down to the defaults (``--tau-anneal 4``), on every toy;
* collapsed start: every sample starts on one point (``--init collapsed``), with each normalisation;
* low temperature: one temperature 0.02, the regime where one-sided couplings are said to collapse;
* bandwidth: the Gaussian kernel, constant and annealed, on the checkerboard and the rings;
* gradient field: the Gaussian kernel with separate softmaxes over positives and negatives, whose field is
  tau^2 (grad log p_tau - grad log q_tau) with q's estimate leaving each sample out: a conservative field.

Every run is its own process on one thread, ``--jobs`` at a time; seeds run outer, so a run cut short still holds
every entry for its first seeds. The JSON record (``--json``) is rewritten after every run; ``--samples`` keeps
600 samples of seed 0 of each entry for the lesson's figure.

Usage: python bench/bench_fixes.py [--steps 3000] [--seeds 0 1 2] [--jobs 1] [--groups ...]
           [--json docs/results/lesson08_fixes.json] [--samples lessons/08/fixes_samples.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import torch
import toy_runs
from toy_runs import METRICS, median_and_each

from drifting_min import toys

TOYS = ["checkerboard", "eight_gaussians", "rings", "swiss_roll", "two_moons"]
COLLAPSED = {"init": "collapsed"}
ONE_RAW_TAU = {"taus": [0.05], "normalise_each": False}
GAUSSIAN_UNCOUPLED = {"kernel": "gaussian", "normalisation": "uncoupled"}

# (group, label, dataset, changes from the defaults)
ENTRIES: list[tuple[str, str, str, dict]] = [
    *[("five toys", "default (double softmax)", d, {}) for d in TOYS],
    *[("five toys", "Sinkhorn coupling", d, {"normalisation": "sinkhorn"}) for d in TOYS],
    *[("five toys", "temperatures annealed from 4x", d, {"tau_anneal": 4.0}) for d in TOYS],
    ("collapsed start", "double softmax (default)", "eight_gaussians", COLLAPSED),
    ("collapsed start", "targets only", "eight_gaussians", {**COLLAPSED, "normalisation": "targets"}),
    ("collapsed start", "Sinkhorn coupling", "eight_gaussians", {**COLLAPSED, "normalisation": "sinkhorn"}),
    ("collapsed start", "one raw tau 0.05, double", "eight_gaussians", {**COLLAPSED, **ONE_RAW_TAU}),
    ("collapsed start", "one raw tau 0.05, Sinkhorn", "eight_gaussians",
     {**COLLAPSED, **ONE_RAW_TAU, "normalisation": "sinkhorn"}),
    ("low temperature", "tau 0.02 only, double", "eight_gaussians", {"taus": [0.02]}),
    ("low temperature", "tau 0.02 only, Sinkhorn", "eight_gaussians", {"taus": [0.02], "normalisation": "sinkhorn"}),
    ("low temperature", "tau 0.02 only, double", "checkerboard", {"taus": [0.02]}),
    ("low temperature", "tau 0.02 only, Sinkhorn", "checkerboard", {"taus": [0.02], "normalisation": "sinkhorn"}),
    ("bandwidth", "Gaussian kernel", "checkerboard", {"kernel": "gaussian"}),
    ("bandwidth", "Gaussian kernel, annealed from 4x", "checkerboard", {"kernel": "gaussian", "tau_anneal": 4.0}),
    ("bandwidth", "Gaussian kernel", "rings", {"kernel": "gaussian"}),
    ("bandwidth", "Gaussian kernel, annealed from 4x", "rings", {"kernel": "gaussian", "tau_anneal": 4.0}),
    ("gradient field", "Gaussian kernel, uncoupled", "checkerboard", GAUSSIAN_UNCOUPLED),
    ("gradient field", "Gaussian kernel, uncoupled", "rings", GAUSSIAN_UNCOUPLED),
]
def summarise(rows: list[dict]) -> list[dict]:
    """One line per entry: the median and each seed's value of every metric and of the seconds."""
    out = []
    for group, label, dataset, change in ENTRIES:
        runs = sorted((r for r in rows if (r["group"], r["label"], r["dataset"]) == (group, label, dataset)),
                      key=lambda r: r["seed"])
        if not runs:
            continue
        line = {"group": group, "label": label, "dataset": dataset, "change": change,
                "seeds": [r["seed"] for r in runs]}
        out.append({**line, **median_and_each(runs, [*METRICS, "seconds"])})
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=toys.ToyConfig().steps, help="training steps of every run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time, each on one thread")
    parser.add_argument("--groups", nargs="+", default=None, help="only these groups (default: all)")
    parser.add_argument("--json", type=Path, default=Path("docs/results/lesson08_fixes.json"))
    parser.add_argument("--samples", type=Path, default=Path("lessons/08/fixes_samples.json"))
    args = parser.parse_args()
    entries = [e for e in ENTRIES if args.groups is None or e[0] in args.groups]
    todo = [(seed, *entry) for seed in args.seeds for entry in entries]
    rows, samples = [], {}
    command = "python bench/bench_fixes.py " + shlex.join(sys.argv[1:])
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())

    def run(item):
        seed, group, label, dataset, change = item
        return toy_runs.run(dataset, seed, change, args.steps, keep=600 if seed == args.seeds[0] else 0)

    def write():
        record = {
            "command": command,
            "started": started,
            "protocol": "drifting_min.toys.metrics.quality: 4,000 generated against 4,000 fresh data samples",
            "steps": args.steps,
            "seeds": args.seeds,
            "torch": torch.__version__,
            "threads_per_run": 1,
            "jobs": args.jobs,
            "cpu_count": os.cpu_count(),
            "done": len(rows),
            "planned": len(todo),
            "summary": summarise(rows),
            "runs": rows,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(record, indent=1) + "\n")
        args.samples.parent.mkdir(parents=True, exist_ok=True)
        args.samples.write_text(json.dumps(samples, separators=(",", ":")) + "\n")

    def record_run(item, result):
        seed, group, label, dataset, _ = item
        if "samples" in result:
            samples[f"{group} | {label} | {dataset}"] = result.pop("samples")
        rows.append({"group": group, "label": label, "dataset": dataset, "seed": seed,
                     **{k: round(result[k], 4) for k in [*METRICS, "seconds"]}})
        print(f"{group:>16} | {label:<34} | {dataset:<15} | seed {seed} | ratio {result['floor_ratio']:7.2f} | "
              f"prec {result['precision']:.3f} | rec {result['recall']:.3f} | off {result['off_support']:.3f} | "
              f"{result['seconds']:5.1f} s", flush=True)
        write()

    toy_runs.run_all(todo, run, args.jobs, record_run)

if __name__ == "__main__":
    main()
