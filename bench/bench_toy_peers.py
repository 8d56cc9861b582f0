"""One-step drifting against its peers on the 2D toys: the same MLP, the same CPU time, the same protocol.

Per toy and seed, this trains

* drifting: ``toys.train`` with the ``ToyConfig`` defaults (field, batch, generator with K components, 3,000
  steps), its CPU time measured and printed beside the peers' budget;
* flow matching (rectified flow, conditional flow matching with straight paths): the same MLP takes (x_t, t),
  x_t = (1 - t) eps + t y with eps ~ N(0, I_2), y data, t ~ U(0, 1), and regresses the velocity y - eps; sampled
  with 1, 4 and 100 Euler steps from t = 0 to 1 (that many network evaluations a sample);
* an MMD generator (Li et al. 2015): the same generator from the same noise (Gaussian and one of K components),
  trained to minimise the squared MMD between a generated and a data batch, Gaussian kernels at six bandwidths
  summed;
* and scores a fresh draw of the data itself, the protocol's reference.

Every peer trains for ``--seconds`` of CPU time of its process (Adam, cosine decay of the learning rate over the
elapsed fraction of the budget, batches of 256), and drifting's CPU time is measured the same way: on one thread
that is about the wall time of an idle machine, and other work on the cores takes no share of it, though it can
slow every step (on two cores shared with a dozen other processes, a drifting run's 3,000 steps took 46 s of CPU
time instead of about 27, and the MMD generator made about 840 steps in its 30 s instead of about 1,500: compare
runs made on a quiet machine). The steps taken and the wall seconds are printed too. Every method, drifting
included, is sampled from the same exponential moving average of its weights, w_avg <- ema w_avg + (1 - ema) w
after each step (``--ema``, default the toys' 0.995; 0: the last weights), its cost inside the budget. Every
method is scored by ``drifting_min.toys.metrics.quality``: floor ratio, kNN precision and recall, share off the
support. One thread (``drifting_min.runtime``).

Usage: python bench/bench_toy_peers.py [--seconds 30] [--seeds 0] [--toys checkerboard rings ...]
                                       [--methods drifting mmd flow data] [--ema 0.995] [--update]
                                       [--json out.json] [--samples lessons/05/peers.npz] [--page docs/results.md]
       python bench/bench_toy_peers.py --table-only --json lessons/05/peers.json --page docs/results.md

``--page`` writes the JSON record's markdown tables between the page's markers for that record (``markers``):
``peers`` (every method) and ``defaults`` (drifting alone, seed by seed), each where the page has its markers;
``--table-only`` trains nothing and only remakes those tables from ``--json``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from toy_runs import median_cell

from course.pages import write_between
from drifting_min import toys
from drifting_min.runtime import set_threads
from drifting_min.toys import metrics
from drifting_min.toys.model import Generator, make_generator

FAMILIES = ("drifting", "mmd", "flow", "data")  # what --methods chooses from
FLOW_STEPS = (1, 4, 100)
MMD_BANDWIDTHS = (0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
BATCH = 256
KEEP = 1500  # samples a method kept for the figure
TOY_NAMES = {"eight_gaussians": "eight Gaussians", "swiss_roll": "swiss roll", "two_moons": "two moons"}


def _cosine(lr: float, lr_final: float, frac: float) -> float:
    return lr_final + 0.5 * (lr - lr_final) * (1 + math.cos(math.pi * min(frac, 1.0)))


def _timed_loop(net: torch.nn.Module, step_fn, seconds: float, lr: float, lr_final: float,
                ema: float) -> tuple[torch.nn.Module, int, float]:
    """Adam steps of ``step_fn(step) -> loss`` on ``net`` until ``seconds`` of CPU time have passed. With ``ema``
    > 0 a copy of the weights follows w_avg <- ema w_avg + (1 - ema) w after every step, as in ``toys.train``.
    Returns the network to sample (that copy, or ``net`` itself when ``ema`` is 0), the steps and the CPU
    seconds."""
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    averaged = copy.deepcopy(net) if ema > 0 else net
    start, step = time.process_time(), 0
    while (elapsed := time.process_time() - start) < seconds:
        for group in opt.param_groups:
            group["lr"] = _cosine(lr, lr_final, elapsed / seconds)
        opt.zero_grad(set_to_none=True)
        step_fn(step).backward()
        opt.step()
        if ema > 0:
            with torch.no_grad():
                for p_avg, p in zip(averaged.parameters(), net.parameters()):
                    p_avg.lerp_(p, 1.0 - ema)
        step += 1
    return averaged, step, time.process_time() - start


def train_drifting(cfg: toys.ToyConfig) -> tuple[Generator, int, float]:
    """The toys' own training (``toys.train``) with the config's settings: a fixed number of steps, its CPU time
    measured (the peers get ``--seconds``; the table shows both)."""
    start = time.process_time()
    run = toys.train(cfg, progress=False, evaluate=False)
    return run.generator, cfg.steps, time.process_time() - start


def train_flow(cfg: toys.ToyConfig, seconds: float, lr: float) -> tuple[Generator, int, float]:
    """Rectified flow: the MLP v(x_t, t), input 2 + 1, regresses y - eps at x_t = (1 - t) eps + t y."""
    torch.manual_seed(cfg.seed)
    net = Generator(3, cfg.hidden, cfg.depth)
    rng = torch.Generator().manual_seed(cfg.seed + 7)

    def loss(step):
        y = toys.sample_data(cfg.dataset, BATCH, seed=cfg.seed * 1_000_003 + step)
        eps = torch.randn(BATCH, 2, generator=rng)
        t = torch.rand(BATCH, 1, generator=rng)
        xt = (1 - t) * eps + t * y
        return (net(torch.cat([xt, t], 1)) - (y - eps)).square().sum(1).mean()

    return _timed_loop(net, loss, seconds, lr, lr * 0.05, cfg.ema)


def flow_sample(net: Generator, n: int, seed: int, euler_steps: int) -> torch.Tensor:
    """Euler from t = 0 (noise) to t = 1: x <- x + v(x, t) / K, K network evaluations a sample."""
    x = torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        for k in range(euler_steps):
            t = torch.full((n, 1), k / euler_steps)
            x = x + net(torch.cat([x, t], 1)) / euler_steps
    return x


def mmd_squared(x: torch.Tensor, y: torch.Tensor, bandwidths=MMD_BANDWIDTHS) -> torch.Tensor:
    """Biased squared MMD with k = sum_s exp(-|u - v|^2 / (2 s^2)) over the bandwidths."""
    z = torch.cat([x, y])
    d2 = torch.cdist(z, z).square()
    k = sum(torch.exp(-d2 / (2 * s * s)) for s in bandwidths)
    n = x.shape[0]
    return k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()


def train_mmd(cfg: toys.ToyConfig, seconds: float, lr: float) -> tuple[Generator, int, float]:
    """The drifting generator (``make_generator``: same MLP, same noise) trained on the squared MMD instead."""
    net = make_generator(cfg)
    rng = torch.Generator().manual_seed(cfg.seed + 7)

    def loss(step):
        y = toys.sample_data(cfg.dataset, BATCH, seed=cfg.seed * 1_000_003 + step)
        return mmd_squared(net(net.noise(BATCH, rng)), y)

    return _timed_loop(net, loss, seconds, lr, lr * 0.05, cfg.ema)


def run_one(dataset: str, seed: int, seconds: float, flow_lr: float, mmd_lr: float,
            families: Sequence[str] = FAMILIES, ema: float = toys.ToyConfig.ema) -> tuple[list[dict], dict]:
    """Every method of ``families`` on one (toy, seed), each sampled from its weights averaged with decay
    ``ema``: rows of the table and the kept samples."""
    cfg = toys.ToyConfig(dataset=dataset, seed=seed, ema=ema)
    rows, kept = [], {}

    def score(method, samples, secs, steps, nfe, wall=0.0):
        m = metrics.quality(samples, dataset)
        rows.append({"toy": dataset, "seed": seed, "method": method, "seconds": round(secs, 1),
                     "wall_seconds": round(wall, 1), "steps": steps,
                     "nfe": nfe, "ema": ema if nfe else None,
                     **{k: m[k] for k in ("floor_ratio", "precision", "recall", "off_support")}})
        kept[method] = samples[:KEEP].numpy().astype(np.float32)
        print(json.dumps(rows[-1]), flush=True)

    if "drifting" in families:
        start = time.perf_counter()
        net, steps, secs = train_drifting(cfg)
        score("drifting", net.sample(metrics.N_EVAL, metrics.NOISE_SEED), secs, steps, 1, time.perf_counter() - start)
    if "mmd" in families:
        start = time.perf_counter()
        net, steps, secs = train_mmd(cfg, seconds, mmd_lr)
        score("MMD generator", net.sample(metrics.N_EVAL, metrics.NOISE_SEED), secs, steps, 1,
              time.perf_counter() - start)
    if "flow" in families:
        start = time.perf_counter()
        net, steps, secs = train_flow(cfg, seconds, flow_lr)
        wall = time.perf_counter() - start
        for k in FLOW_STEPS:
            score(f"flow, {k} Euler", flow_sample(net, metrics.N_EVAL, metrics.NOISE_SEED, k), secs, steps, k, wall)
    if "data" in families:
        score("data itself", toys.sample_data(dataset, metrics.N_EVAL, seed=metrics.DATA_SEED + 1), 0.0, 0, 0)
    return rows, kept


METHOD_ORDER = ["drifting", "MMD generator", *(f"flow, {k} Euler" for k in FLOW_STEPS), "data itself"]


def _by_toy_and_method(rows: list[dict]) -> dict[tuple, list]:
    groups: dict[tuple, list] = {}
    for r in sorted(rows, key=lambda r: (r["toy"], METHOD_ORDER.index(r["method"]), r["seed"])):
        groups.setdefault((r["toy"], r["method"]), []).append(r)
    return groups


def peers_table(record: dict) -> str:
    """The record as a markdown table: per (toy, method) the median over seeds of every score, each seed's
    ``floor_ratio`` and share off the support in brackets."""
    seeds = sorted({r["seed"] for r in record["rows"]})
    which = (f"Medians over seeds {', '.join(map(str, seeds))}; in brackets each seed's value." if len(seeds) > 1
             else f"Seed {seeds[0]}.")
    sampled = (f"sampled from its weights averaged with decay {record['ema']}" if record["ema"] > 0
               else "sampled from its last weights (no average)")
    lines = [f"{which} Every method is {sampled} and trained for {record['seconds']:.0f} s of CPU time on one "
             "thread, except drifting, which takes the defaults' 3,000 steps and reports its CPU time.", "",
             "| toy | method | `floor_ratio` | precision | recall | off support | CPU s | steps | NFE |",
             "|---|---|---|---|---|---|---|---|---|"]
    for (toy, method), rs in _by_toy_and_method(record["rows"]).items():
        med = {k: statistics.median(r[k] for r in rs)
               for k in ("floor_ratio", "precision", "recall", "off_support", "seconds", "steps")}
        ratio, off = f"{med['floor_ratio']:.2f}", f"{100 * med['off_support']:.1f}%"
        training = "|  |  |  |"  # the data itself: nothing trained, nothing evaluated
        if method != "data itself":
            ratio = median_cell([r["floor_ratio"] for r in rs], ".2f")
            off = median_cell([r["off_support"] for r in rs], ".1f", 100, "%")
            training = f"| {med['seconds']:.1f} | {med['steps']:.0f} | {rs[0]['nfe']} |"
        lines.append(f"| {TOY_NAMES.get(toy, toy)} | {method} | {ratio} | {med['precision']:.3f} | "
                     f"{med['recall']:.3f} | {off} {training}")
    return "\n".join(lines)


def defaults_table(record: dict) -> str:
    """Drifting's rows of the record, seed by seed: the median of every score and, in brackets, each seed's."""
    def cell(rs, key, spec, scale=1.0, unit=""):
        return median_cell([r[key] for r in rs], spec, scale, unit)

    lines = ["| toy | `floor_ratio` median (each seed) | precision | recall | off support | CPU s |",
             "|---|---|---|---|---|---|"]
    for (toy, method), rs in _by_toy_and_method(record["rows"]).items():
        if method == "drifting":
            lines.append(f"| {TOY_NAMES.get(toy, toy)} | {cell(rs, 'floor_ratio', '.2f')} | "
                         f"{cell(rs, 'precision', '.3f')} | {cell(rs, 'recall', '.3f')} | "
                         f"{cell(rs, 'off_support', '.1f', 100, '%')} | {cell(rs, 'seconds', '.1f')} |")
    return "\n".join(lines)


TABLES = {"peers": peers_table, "defaults": defaults_table}


def markers(table: str, record_path: str) -> tuple[str, str]:
    """The marker lines around a page's copy of one table of one record."""
    return (f"<!-- {table} table of {record_path}: begin (bench/bench_toy_peers.py --table-only) -->",
            f"<!-- {table} table of {record_path}: end -->")


def write_tables(page: str, record_path: str, record: dict) -> None:
    """Every table of the record whose markers the page has, written between them."""
    body = Path(page).read_text()
    found = [name for name in TABLES if markers(name, record_path)[0] in body]
    if not found:
        raise SystemExit(f"{page} has no table markers for {record_path}, e.g. {markers('peers', record_path)[0]}")
    for name in found:
        write_between(page, *markers(name, record_path), TABLES[name](record))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0, help="CPU-time budget of each peer's training")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--toys", nargs="+", default=sorted(toys.DATASETS), choices=sorted(toys.DATASETS))
    parser.add_argument("--flow-lr", type=float, default=2e-3)
    parser.add_argument("--mmd-lr", type=float, default=1e-3)
    parser.add_argument("--ema", type=float, default=toys.ToyConfig.ema,
                        help="decay of every method's weight average (0: sample the last weights)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="write every row here")
    parser.add_argument("--samples", default=None, help="write the first seed's samples (1,500 a method) as .npz")
    parser.add_argument("--methods", nargs="+", default=list(FAMILIES), choices=FAMILIES,
                        help="which methods to train (flow: one training, sampled with 1, 4 and 100 Euler steps)")
    parser.add_argument("--update", action="store_true",
                        help="keep the rows and samples of --json and --samples that this run does not redo")
    parser.add_argument("--page", default=None,
                        help="write the record's markdown table between this page's markers (e.g. docs/results.md)")
    parser.add_argument("--table-only", action="store_true", help="train nothing: remake --page's tables from --json")
    args = parser.parse_args()
    if args.page and not args.json:
        parser.error("--page needs --json: a page's tables name the record they come from")
    if args.table_only:
        if not args.page:
            parser.error("--table-only needs --json (the record) and --page")
        for path in (args.json, args.page):
            if not Path(path).is_file():
                parser.error(f"no file {path}")
        record = json.loads(Path(args.json).read_text())
        write_tables(args.page, args.json, record)
        print(peers_table(record))
        return
    set_threads(args.threads)
    rows, arrays = [], {}
    if args.update:
        if args.json and Path(args.json).exists():
            rows = json.loads(Path(args.json).read_text())["rows"]
        if args.samples and Path(args.samples).exists():
            arrays = dict(np.load(args.samples))
    for seed in args.seeds:
        for dataset in args.toys:
            new_rows, kept = run_one(dataset, seed, args.seconds, args.flow_lr, args.mmd_lr, args.methods, args.ema)
            redone = {r["method"] for r in new_rows}
            rows = [r for r in rows if not (r["toy"] == dataset and r["seed"] == seed and r["method"] in redone)]
            rows += new_rows
            if seed == args.seeds[0]:
                arrays.update({f"{dataset}/{m}": a for m, a in kept.items()})
    record = {"command": "python bench/bench_toy_peers.py " + shlex.join(sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d", time.gmtime()), "torch": torch.__version__,
              "seconds": args.seconds, "threads": args.threads, "ema": args.ema, "rows": rows}
    print(peers_table(record))
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=1))
    if args.page:
        write_tables(args.page, args.json, record)
    if args.samples:
        np.savez_compressed(args.samples, **arrays)


if __name__ == "__main__":
    main()
