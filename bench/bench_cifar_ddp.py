"""Throughput of the CIFAR-10 trainer on 1 process against N processes under torchrun, in one run.

    python bench/bench_cifar_ddp.py                              # CPU: 1 against 2 processes of one thread (Gloo)
    python bench/bench_cifar_ddp.py --device cuda --procs 1 2 4  # GPUs: 1, 2 and 4 processes, one GPU each (NCCL)

Each measurement is ``torchrun --standalone --nproc_per_node N`` running this file with ``--worker``: the
trainer's step (``Trainer.train_step``: the whole batch's field on every rank, gradients summed over the ranks)
on random weights and random images, two warm-up steps, then ``--steps`` timed steps. The batch is the same for
every N (``batch_gen`` generated images a step, split over the ranks), so images/s of N processes against one
process is the speed-up of the same training run. The rounds alternate (1, N, 1, N, ...) so that a change in
the machine's load falls on both; the best round of each is kept.

On the CPU each process also reports its CPU time (``time.process_time``); batch / (the busiest rank's CPU
seconds a step) is the rate with a free core a process, the number to read when other work shares the
machine (wall-clock images/s then depend on how the scheduler shares the cores).

The field (distances, softmaxes, forces) is computed for the whole batch on every rank, so it is not
divided; its share f of the one-process step bounds the speed-up at 1 / ((1 - f) / N + f), printed beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from drifting_min.cifar import distributed  # noqa: E402
from drifting_min.cifar.config import CifarConfig  # noqa: E402
from drifting_min.cifar.encoder import Encoder, freeze  # noqa: E402
from drifting_min.cifar.precision import autocast  # noqa: E402
from drifting_min.cifar.train import Trainer, config_features  # noqa: E402
from drifting_min.features import feature_drift_loss  # noqa: E402
from drifting_min.runtime import set_threads  # noqa: E402

SMALL_CPU = {"batch_gen": 64, "batch_real": 64, "gen_width": 32, "encoder_width": 16}  # as bench_cifar_step.py


def config(device: str) -> CifarConfig:
    return CifarConfig(device=device, **(SMALL_CPU if device == "cpu" else {}))


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def worker(device_name: str, steps: int) -> None:
    """One process of the job: time ``steps`` training steps; rank 0 prints one JSON line."""
    set_threads(1 if device_name == "cpu" else None)
    world = distributed.start(torch.device(device_name))
    device, cfg = world.device, config(device_name)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    g = torch.Generator().manual_seed(0)
    n_images = 4 * max(cfg.batch_real, 1000)
    images = torch.randint(0, 256, (n_images, 32, 32, 3), dtype=torch.uint8, generator=g)
    data = {"images": images.to(device), "labels": torch.arange(n_images) % 10, "fingerprint": "bench",
            "classes": 10}
    torch.manual_seed(0)
    encoder = freeze(Encoder(cfg.encoder_width, 10).to(device))
    trainer = Trainer(cfg, data, encoder, device, world)
    for _ in range(2):  # warm-up (allocator, cuDNN autotuning, the process group's connections)
        trainer.train_step()
    sync(device)
    t0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        trainer.train_step()
    sync(device)
    seconds = time.perf_counter() - t0
    # CPU seconds of the busiest rank (all its threads, Gloo's included; waiting costs none): on a CPU shared
    # with other work, batch / that time is the rate the processes would reach with a free core each
    cpu = torch.tensor([time.process_time() - cpu0])
    if world.active and device.type == "cpu":
        torch.distributed.all_reduce(cpu, op=torch.distributed.ReduceOp.MAX)
    result = {"processes": world.size, "images_per_s": steps * cfg.batch_gen / seconds,
              "images_per_cpu_s": steps * cfg.batch_gen / cpu.item()}
    if world.size == 1:  # the field's share of the step: the part that every rank computes in full
        with torch.no_grad(), autocast(trainer.precision, device):
            eps, labels = trainer.gen_batch(0)
            fg = config_features(encoder, trainer.net(eps, labels), cfg)
            fr = config_features(encoder, trainer.real_batch(0), cfg)
            sync(device)
            t1 = time.perf_counter()
            for _ in range(steps):
                feature_drift_loss(fg, fr, taus=cfg.taus)
            sync(device)
        result["field_share"] = (time.perf_counter() - t1) / seconds
    if world.is_main:
        print("RESULT " + json.dumps(result), flush=True)
    distributed.stop()


def measure(n: int, device: str, steps: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n), __file__,
           "--worker", "--device", device, "--steps", str(steps)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("RESULT ")]
    if done.returncode or not lines:
        raise SystemExit(f"torchrun with {n} process(es) failed:\n{done.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--procs", type=int, nargs="+", default=[1, 2], help="numbers of processes to compare")
    p.add_argument("--steps", type=int, default=0, help="timed steps (default: 8 on CPU, 30 on CUDA)")
    p.add_argument("--rounds", type=int, default=2, help="alternating rounds over --procs")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    steps = args.steps or (8 if args.device == "cpu" else 30)
    if args.worker:
        return worker(args.device, steps)
    procs = sorted(set([1, *args.procs]))
    best: dict[int, dict] = {}
    for _ in range(args.rounds):
        for n in procs:
            r = measure(n, args.device, steps)
            if n not in best or r["images_per_s"] > best[n]["images_per_s"]:
                best[n] = r
    one = best[1]
    cfg = config(args.device)
    print(f"{'device':>24}: {args.device}" + (" (one thread a process, Gloo)" if args.device == "cpu" else " (NCCL)"))
    print(f"{'batch a step':>24}: {cfg.batch_gen} generated + {cfg.batch_real} real, split over the processes")
    print(f"{'field share (1 process)':>24}: {one['field_share']:.2f}")
    result = {"field_share": round(one["field_share"], 3)}
    for n in procs:
        speedup = best[n]["images_per_s"] / one["images_per_s"]
        bound = 1 / ((1 - one["field_share"]) / n + one["field_share"])
        line = f"{best[n]['images_per_s']:7.1f} images/s, x{speedup:.2f} (bound x{bound:.2f})"
        result[n] = {"images_per_s": round(best[n]["images_per_s"], 1), "speedup": round(speedup, 2),
                     "bound": round(bound, 2)}
        if args.device == "cpu":
            cpu_speedup = best[n]["images_per_cpu_s"] / one["images_per_cpu_s"]
            line += f"; per CPU second of the busiest rank {best[n]['images_per_cpu_s']:7.1f}, x{cpu_speedup:.2f}"
            result[n].update(images_per_cpu_s=round(best[n]["images_per_cpu_s"], 1), cpu_speedup=round(cpu_speedup, 2))
        print(f"{f'{n} process(es)':>24}: {line}")
    return result


if __name__ == "__main__":
    main()
