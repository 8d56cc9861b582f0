"""What a GPU preset's step costs, counted on a CPU: FLOPs a step and activation memory, scaled to its batch.

    python bench/cifar_gpu_plan.py                  # the gpu preset
    python bench/cifar_gpu_plan.py --preset cpu

Runs real training steps of the preset's networks and loss at three small batch sizes (the preset's generator,
encoder, features and temperatures; random weights and images: the cost does not depend on them), with
``torch.utils.flop_counter.FlopCounterMode`` counting the FLOPs of every matrix multiply and convolution,
forward and backward, and a saved-tensors hook adding up the bytes that autograd keeps for the backward pass
(the activation memory of a step). Both are fitted as a + b B + c B^2 in the batch B (the field's distance
matrices grow as B^2 inside a group) and evaluated at the preset's batch, so the first GPU call can be sized
before it is made: seconds a step at an assumed sustained rate, and memory against the card's.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drifting_min.cifar.config import PRESETS, CifarConfig  # noqa: E402
from drifting_min.cifar.encoder import Encoder, freeze  # noqa: E402
from drifting_min.cifar.train import Trainer  # noqa: E402
from drifting_min.runtime import set_threads  # noqa: E402


def step_cost(cfg: CifarConfig) -> tuple[float, float]:
    """(FLOPs, bytes saved for backward) of one Trainer.train_step at cfg's batch, on the CPU in float32."""
    g = torch.Generator().manual_seed(0)
    n_images = max(4 * cfg.batch_real, 200)
    images = torch.randint(0, 256, (n_images, 32, 32, 3), dtype=torch.uint8, generator=g)
    data = {"images": images, "labels": torch.arange(n_images) % 10, "fingerprint": "plan", "classes": 10}
    tr = Trainer(cfg, data, freeze(Encoder(cfg.encoder_width, 10)), torch.device("cpu"))
    saved = [0]

    def pack(t):
        saved[0] += t.numel() * t.element_size()
        return t

    with FlopCounterMode(display=False) as counter, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        tr.train_step()
    return float(counter.get_total_flops()), float(saved[0])


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="gpu", choices=list(PRESETS))
    p.add_argument("--tflops", type=float, default=200.0,
                   help="assumed sustained bf16 rate of the GPU in TFLOP/s, for the seconds a step (H100: a "
                   "fraction of its 990 dense peak is realistic for these small convolutions)")
    args = p.parse_args(argv)
    set_threads(None)
    target = CifarConfig(**{**PRESETS[args.preset], "device": "cpu"})
    unit = 10 if target.conditional else 1
    sizes = [2 * unit, 4 * unit, 8 * unit] if target.conditional else [16, 32, 64]
    rows = []
    for b in sizes:
        ratio = target.batch_real / target.batch_gen
        cfg = CifarConfig(**{**target.to_dict(), "batch_gen": b, "batch_real": max(unit, round(b * ratio))})
        flops, saved = step_cost(cfg)
        rows.append((b, flops, saved))
    bs = np.array([r[0] for r in rows], dtype=float)
    design = np.stack([np.ones_like(bs), bs, bs**2], axis=1)
    fit_f = np.linalg.solve(design, np.array([r[1] for r in rows]))
    fit_m = np.linalg.solve(design, np.array([r[2] for r in rows]))
    big = float(target.batch_gen)
    at = np.array([1.0, big, big**2])
    flops, memory = float(at @ fit_f), float(at @ fit_m)
    result = {
        "preset": args.preset,
        "batch_gen": target.batch_gen, "batch_real": target.batch_real, "gen_steps": target.gen_steps,
        "measured": [{"batch_gen": int(b), "gflops": round(f / 1e9, 2), "saved_mb": round(m / 2**20, 1)}
                     for b, f, m in rows],
        "tflop_per_step": round(flops / 1e12, 3),
        "gflop_per_generated_image": round(flops / big / 1e9, 3),
        "activation_gb_per_step_fp32": round(memory / 2**30, 2),
        "activation_mb_per_generated_image_fp32": round(memory / big / 2**20, 2),
        "quadratic_share_of_flops": round(float(fit_f[2] * big**2 / flops), 3),
        f"seconds_per_step_at_{args.tflops:g}_tflops": round(flops / (args.tflops * 1e12), 4),
        f"minutes_for_all_steps_at_{args.tflops:g}_tflops": round(target.gen_steps * flops / (args.tflops * 1e12)
                                                                   / 60, 1),
    }
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
