"""Toy runs for the benchmarks: each run its own process on one thread, several at a time, summarised by entry.

``run`` trains ``drifting_min.toys.ToyConfig`` defaults with some changes on one toy and seed in a fresh process
(so runs share no thread pool and no allocator) and returns the toys' protocol (``metrics.quality``: floor ratio,
precision, recall, share off the support) with the training seconds and the process's CPU seconds.
``run_all`` runs a list of them ``jobs`` at a time, handing each result back as it arrives, in order; Ctrl-C
stops it with one line (the runs already handed back stay in the caller's record). ``median_cell`` writes a
table's cell.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

METRICS = ["floor_ratio", "precision", "recall", "off_support"]

ONE_RUN = """
import json, sys, time, torch
from drifting_min import toys
torch.set_num_threads(1)
dataset, seed, steps, keep = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[5])
changes = json.loads(sys.argv[4])
if steps != "default":
    changes["steps"] = int(steps)
cfg = toys.ToyConfig(dataset=dataset, seed=seed, **changes)
start = time.process_time()
run = toys.train(cfg, progress=False)
out = {k: run.metrics[k] for k in ("floor_ratio", "precision", "recall", "off_support")}
out["seconds"] = run.seconds
out["cpu_seconds"] = time.process_time() - start
if keep:
    out["samples"] = [[round(float(a), 3), round(float(b), 3)] for a, b in run.generator.sample(keep, 1)]
print(json.dumps(out))
"""


def run(dataset: str, seed: int, change: dict, steps: int | None = None, keep: int = 0) -> dict:
    """One training run of the toy defaults with ``change``, in its own one-thread process: its metrics,
    ``seconds`` (the training loop's wall time), ``cpu_seconds`` (training and scoring) and, with ``keep``,
    that many samples."""
    argv = [sys.executable, "-c", ONE_RUN, dataset, str(seed), "default" if steps is None else str(steps),
            json.dumps(change), str(keep)]
    out = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if out.returncode != 0:
        last = (out.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise SystemExit(f"the run {dataset}, seed {seed}, {json.dumps(change)} failed: {last}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_all(todo: Iterable, job: Callable, jobs: int, on_result: Callable) -> None:
    """``job(item)`` for every item of ``todo``, ``jobs`` at a time; ``on_result(item, result)`` in order."""
    todo = list(todo)
    pool = ThreadPoolExecutor(jobs)
    try:
        for item, result in zip(todo, pool.map(job, todo)):
            on_result(item, result)
    except KeyboardInterrupt:
        raise SystemExit("interrupted: the record keeps the runs finished so far") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def median_and_each(runs: list[dict], keys: Iterable[str]) -> dict:
    """Per key, the median over ``runs`` and each run's value (runs in the order given)."""
    out = {}
    for key in keys:
        values = [r[key] for r in runs]
        out[key] = {"median": round(statistics.median(values), 4), "each": [round(v, 4) for v in values]}
    return out


def median_cell(values: list[float], spec: str, scale: float = 1.0, unit: str = "") -> str:
    """A table cell: the median of ``values`` and, when there are several, each value in brackets."""
    values = [scale * v for v in values]
    median = f"{statistics.median(values):{spec}}{unit}"
    return median if len(values) == 1 else median + " (" + " / ".join(f"{v:{spec}}{unit}" for v in values) + ")"
