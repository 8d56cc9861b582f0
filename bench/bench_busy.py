"""Toy training time on a quiet machine and beside a busy process: the package's thread policy against torch's default.

    python bench/bench_busy.py [--steps 300] [--repeat 3]

Each policy trains the default toy (``ToyConfig()``, ``--steps`` steps, no evaluation) in a fresh process, so
that OpenMP reads its settings before torch starts: once with nothing else of ours running ("quiet"), and once
beside one process that spins on a core ("busy"), the load a browser tab or another job puts on a laptop.
It prints the training seconds (the median of ``--repeat`` runs) and the ratios measured in this one run:

* busy / quiet for each policy (target for the package's policy: at most 1.5);
* the package's quiet time over torch's default quiet time (target: at most 1.15).

Policies: "drifting_min" is what the package does (``drifting_min.runtime.set_threads()``); "torch default"
leaves torch's choice (one thread per core, threads that spin while they wait). "Quiet" means only that this
benchmark adds no load: on a shared machine, other work still runs, so compare the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, sys
{setup}
import torch
from drifting_min import toys
run = toys.train(toys.ToyConfig(steps={steps}), progress=False, evaluate=False)
print(json.dumps({{"seconds": run.seconds, "threads": torch.get_num_threads()}}))
"""

POLICIES = {
    "drifting_min": "from drifting_min.runtime import set_threads; set_threads()",
    "torch default": "",
}


def _clean_env() -> dict:
    """The environment without thread settings, so that each policy starts from torch's defaults."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def train_seconds(policy: str, steps: int) -> dict:
    code = CHILD.format(setup=POLICIES[policy], steps=steps)
    out = subprocess.run([sys.executable, "-c", code], env=_clean_env(), cwd=ROOT, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


class Spinner:
    """A process that keeps one core busy until the block ends."""

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps of each run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per policy and load (the median is reported)")
    args = parser.parse_args()

    times: dict[tuple[str, str], list[float]] = {}
    threads: dict[str, int] = {}
    for _ in range(args.repeat):  # interleaved, so that a change in the background load hits every cell alike
        for load in ("quiet", "busy"):
            for policy in POLICIES:
                if load == "busy":
                    with Spinner():
                        result = train_seconds(policy, args.steps)
                else:
                    result = train_seconds(policy, args.steps)
                times.setdefault((policy, load), []).append(result["seconds"])
                threads[policy] = result["threads"]
    median = {key: statistics.median(values) for key, values in times.items()}

    print(f"default toy, {args.steps} steps, {os.cpu_count()} cores, median of {args.repeat} "
          f"(load average at the end: {os.getloadavg()[0]:.1f})")
    print(f"{'policy':<15} {'threads':>7} {'quiet s':>8} {'busy s':>8} {'busy/quiet':>10}   all runs (quiet | busy)")
    for policy in POLICIES:
        quiet, busy = median[(policy, "quiet")], median[(policy, "busy")]
        runs = " ".join(f"{t:.1f}" for t in times[(policy, "quiet")]) + " | " + \
            " ".join(f"{t:.1f}" for t in times[(policy, "busy")])
        print(f"{policy:<15} {threads[policy]:>7} {quiet:8.2f} {busy:8.2f} {busy / quiet:10.2f}   {runs}")
    quiet_ratio = median[("drifting_min", "quiet")] / median[("torch default", "quiet")]
    busy_ratio = median[("drifting_min", "busy")] / median[("drifting_min", "quiet")]
    print(f"drifting_min busy / quiet: {busy_ratio:.2f} (target <= 1.5); "
          f"drifting_min quiet / torch default quiet: {quiet_ratio:.2f} (target <= 1.15)")


if __name__ == "__main__":
    main()
