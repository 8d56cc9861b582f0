"""Speed of the CIFAR-10 trainer's step: images per second and where the time goes.

    python bench/bench_cifar_step.py                 # CPU: a small configuration (see SMALL_CPU)
    python bench/bench_cifar_step.py --device cuda   # CUDA: the default configuration, the device's precision
    python bench/bench_cifar_step.py --preset cpu    # the cpu preset's step and where its time goes
    python bench/bench_cifar_step.py --options       # CPU preset: speed options against its plain step

Prints (1) generated images per second of the whole training step (``Trainer.train_step``), (2) the share of
the step spent in the generator (forward and backward), the encoder (forward on generated and real images,
backward to the images), the field (the feature losses: distances, softmaxes, forces) and the optimiser
(clipping, AdamW, EMA), each section timed on its own with a synchronisation on CUDA, and (3) the field's cost
with every feature's groups batched in one call against a Python loop over the groups, as a ratio. Random
weights and random images: the cost does not depend on them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drifting_min.cifar.config import PRESETS, CifarConfig
from drifting_min.cifar.encoder import Encoder, freeze
from drifting_min.cifar.precision import autocast
from drifting_min.cifar.train import Trainer, config_features, ema_update
from drifting_min.features import feature_drift_loss, released_drift_loss
from drifting_min.runtime import set_threads

SMALL_CPU = {"batch_gen": 64, "batch_real": 64, "gen_width": 32, "encoder_width": 16}


def timer(device: torch.device):
    def now() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    return now


def sections(tr: Trainer, now) -> dict[str, float]:
    """One training step cut into timed sections (the same computation as Trainer.train_step)."""
    cfg = tr.cfg
    eps, labels = tr.gen_batch(tr.step)
    real = tr.real_batch(tr.step)
    with autocast(tr.precision, tr.device):
        t0 = now()
        images = tr.net(eps, labels)
        t1 = now()
        fg = config_features(tr.encoder, images, cfg)
        with torch.no_grad():
            fr = config_features(tr.encoder, real, cfg)
        t2 = now()
        loss, _ = feature_drift_loss(fg, fr, taus=cfg.taus)
        t3 = now()
    (grad_images,) = torch.autograd.grad(loss, images)  # field (trivial) and encoder backward
    t4 = now()
    tr.opt.zero_grad(set_to_none=True)
    images.backward(grad_images)
    t5 = now()
    torch.nn.utils.clip_grad_norm_(tr.net.parameters(), cfg.clip)
    tr.opt.step()
    ema_update(tr.ema, tr.net, tr.step, cfg.ema)
    t6 = now()
    return {"generator": (t1 - t0) + (t5 - t4), "encoder": (t2 - t1) + (t4 - t3), "field": t3 - t2,
            "optimiser": t6 - t5}


def field_batched_vs_loop(tr: Trainer, now, repeats: int) -> tuple[float, float]:
    """Seconds of the feature losses' forward: all groups of a feature in one call, against one call per group."""
    cfg = tr.cfg
    eps, labels = tr.gen_batch(0)
    with torch.no_grad(), autocast(tr.precision, tr.device):
        fg = config_features(tr.encoder, tr.net(eps, labels), cfg)
        fr = config_features(tr.encoder, tr.real_batch(0), cfg)
        batched, looped = [], []
        for _ in range(repeats):
            t0 = now()
            feature_drift_loss(fg, fr, taus=cfg.taus)
            t1 = now()
            for k in fg:
                for g in range(fg[k].shape[0]):
                    released_drift_loss(fg[k][g:g + 1], fr[k][g:g + 1], taus=cfg.taus)
            t2 = now()
            batched.append(t1 - t0)
            looped.append(t2 - t1)
    return statistics.median(batched), statistics.median(looped)


def _random_data(cfg: CifarConfig, device: torch.device) -> dict:
    n_images = 4 * max(cfg.batch_real, 1000)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n_images, 32, 32, 3), dtype=torch.uint8, generator=g)
    labels = torch.arange(n_images) % 10
    return {"images": images.to(device), "labels": labels, "fingerprint": "bench", "classes": 10}


def speed_options(rounds: int, steps: int) -> dict:
    """The CPU preset's step (one thread, channels-last, as the trainer runs it) against other options, timed in
    interleaved rounds (plain, option, plain, option, ...) so that a change in the machine's load hits all
    alike; the ratio is the median of the option's step time over the median of the plain one's. The options
    that change the numbers computed (not only their speed) are marked: they belong to the recipe search."""
    cfg = CifarConfig(**{**PRESETS["cpu"], "device": "cpu"})
    data = _random_data(cfg, torch.device("cpu"))

    def trainer(**overrides) -> Trainer:
        c = CifarConfig(**{**cfg.to_dict(), **overrides})
        return Trainer(c, data, freeze(Encoder(c.encoder_width, 10)), torch.device("cpu"))

    def contiguous() -> Trainer:  # the layout the trainer used on a CPU before channels-last measured faster
        tr = trainer()
        tr.net.to(memory_format=torch.contiguous_format)
        tr.encoder.to(memory_format=torch.contiguous_format)
        return tr

    def compiled() -> Trainer:
        tr = trainer()
        tr.net = torch.compile(tr.net)
        tr.encoder.feature_maps = torch.compile(tr.encoder.feature_maps)
        return tr

    options = {"plain": (trainer, 1), "contiguous layout": (contiguous, 1), "two_threads": (trainer, 2),
               "per-location features in (changes the loss)": (lambda: trainer(locations=True), 1),
               "torch.compile": (compiled, 1)}
    trainers, setup_s = {}, {}
    for name, (make, threads) in options.items():
        torch.set_num_threads(threads)
        t0 = time.perf_counter()
        try:
            trainers[name] = make()
            for _ in range(2):  # warm-up (and, for torch.compile, the compilation)
                trainers[name].train_step()
        except Exception as e:  # torch.compile needs a working C++ toolchain; report instead of failing
            print(f"{name}: unavailable ({type(e).__name__}: {str(e).splitlines()[0][:120]})")
            trainers.pop(name, None)
        setup_s[name] = time.perf_counter() - t0
    times: dict[str, list[float]] = {name: [] for name in trainers}
    for _ in range(rounds):
        for name, tr in trainers.items():
            torch.set_num_threads(options[name][1])
            t0 = time.perf_counter()
            for _ in range(steps):
                tr.train_step()
            times[name].append((time.perf_counter() - t0) / steps)
    torch.set_num_threads(1)
    plain = statistics.median(times["plain"])
    result = {name: {"step_ms": round(1000 * statistics.median(t), 1),
                     "ratio_to_plain": round(statistics.median(t) / plain, 3),
                     "setup_and_warmup_s": round(setup_s[name], 1)} for name, t in times.items()}
    for name, r in result.items():
        print(f"{name:>45}: {r}")
    return result


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--steps", type=int, default=0, help="timed steps (default: 5 on CPU, 30 on CUDA)")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: OMP_NUM_THREADS if set, else 1)")
    p.add_argument("--preset", default=None, choices=list(PRESETS), help="time a preset's step instead")
    p.add_argument("--options", action="store_true", help="the CPU preset's speed options, as ratios")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds of --options")
    args = p.parse_args(argv)
    if args.options:
        return speed_options(args.rounds, args.steps or 3)
    set_threads(args.threads or None)
    device = torch.device(args.device)
    if args.preset:
        cfg = CifarConfig(**{**PRESETS[args.preset], "device": args.device})
    else:
        cfg = CifarConfig(device=args.device, **(SMALL_CPU if device.type == "cpu" else {}))
    steps = args.steps or (5 if device.type == "cpu" else 30)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    data = _random_data(cfg, device)
    encoder = freeze(Encoder(cfg.encoder_width, 10).to(device))
    tr = Trainer(cfg, data, encoder, device)
    now = timer(device)
    for _ in range(2):  # warm-up (cudnn autotuning, allocator)
        tr.train_step()
    t0 = now()
    for _ in range(steps):
        tr.train_step()
    step_s = (now() - t0) / steps
    parts = [sections(tr, now) for _ in range(max(3, steps // 2))]
    share = {k: statistics.median(p[k] for p in parts) for k in parts[0]}
    total = sum(share.values())
    batched, looped = field_batched_vs_loop(tr, now, repeats=2 if device.type == "cpu" else 5)
    groups = sum(f.shape[0] for f in config_features(tr.encoder, tr.real_batch(0), cfg).values())
    result = {
        "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
                                 f" ({torch.get_num_threads()} threads)"),
        "config": {k: getattr(cfg, k) for k in ("batch_gen", "batch_real", "gen_width", "encoder_width")},
        "precision": tr.precision,
        "step_ms": round(1000 * step_s, 1),
        "images_per_s": round(cfg.batch_gen / step_s, 1),
        "share": {k: round(v / total, 3) for k, v in share.items()},
        "field_batched_ms": round(1000 * batched, 1),
        "field_loop_over_groups_ms": round(1000 * looped, 1),
        "loop_over_batched": round(looped / batched, 1),
        "features": len(config_features(tr.encoder, tr.real_batch(0), cfg)),
        "groups": groups,
    }
    for k, v in result.items():
        print(f"{k:>28}: {v}")
    return result


if __name__ == "__main__":
    main()
