"""Floating-point work of the CIFAR-10 trainer, counted on a CPU, and the time it implies on a GPU of given speed.

    python bench/cifar_flops.py                          # the defaults (a few minutes on one CPU core)
    python bench/cifar_flops.py --rates 16 4 6.5 2.4     # and the time at 16 TFLOP/s in autocast and 4 in
                                                         # float32, then at 6.5 and 2.4
    python bench/cifar_flops.py --batch-gen 256 --batch-real 256 --gen-steps 5000   # any trainer setting
    python bench/cifar_flops.py --preset cpu             # a preset (explicit settings win over it)

One generator step (``Trainer.train_step`` on random images, in float32) runs under
``torch.utils.flop_counter.FlopCounterMode``, which counts the multiply-adds of convolutions and matrix products
(2 FLOP each), forward and backward. The count splits into the networks (generator, and encoder on generated and
real images: what autocast runs in bf16 or fp16 on a GPU) and the field (distances, softmaxes and forces, kept
in float32). The encoder stage is counted from one of its steps. The step's memory is the growth of the process's
peak resident memory (Linux), all in float32. Elementwise work and memory traffic are not counted: a time from
these counts is a lower bound at the rates given, and an estimate, not a measurement.
"""

from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drifting_min.cifar.config import PRESETS, CifarConfig, preset_overrides
from drifting_min.cifar.encoder import Encoder, freeze
from drifting_min.cifar.train import Trainer
from drifting_min.cli import add_config_options, config_from_args, given_options
from drifting_min.runtime import set_threads

CIFAR_TRAIN_IMAGES = 50_000
CLASSES = 10


def generator_step_flops(cfg: CifarConfig) -> tuple[float, float, float]:
    """FLOP of one generator step, (networks, field), and the growth of the process's peak memory in the step
    (bytes, float32 throughout: on a GPU the networks' activations in bf16 or fp16 take about half)."""
    n = max(2 * cfg.batch_real, 2 * CLASSES)
    data = {"images": torch.randint(0, 256, (n, 32, 32, 3), dtype=torch.uint8),
            "labels": torch.arange(n) % CLASSES, "fingerprint": "-", "classes": CLASSES}
    trainer = Trainer(cfg, data, freeze(Encoder(cfg.encoder_width, CLASSES)), torch.device("cpu"))
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with FlopCounterMode(display=False) as counter:
        trainer.train_step()
    memory = 1024 * (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before)  # Linux: ru_maxrss in KiB
    counts = counter.get_flop_counts()
    total = sum(counts["Global"].values())
    networks = sum(sum(counts[name].values()) for name in ("Generator", "Sequential") if name in counts)
    return networks, total - networks, memory


def encoder_stage_flops(cfg: CifarConfig) -> float:
    """FLOP of the own encoder's training: one step (forward and backward) times its number of steps."""
    encoder = Encoder(cfg.encoder_width, CLASSES)
    x = torch.randn(cfg.encoder_batch, 3, 32, 32)
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(encoder(x), torch.zeros(len(x), dtype=torch.long)).backward()
    return counter.get_total_flops() * cfg.encoder_epochs * CIFAR_TRAIN_IMAGES / cfg.encoder_batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[], metavar="TFLOPS",
                        help="pairs: sustained TFLOP/s of a GPU in autocast (networks), then in float32 (field)")
    parser.add_argument("--preset", default="gpu", choices=list(PRESETS), help="the trainer's preset")
    add_config_options(parser.add_argument_group("trainer settings"), CifarConfig)
    args = parser.parse_args()
    if len(args.rates) % 2:
        parser.error("--rates takes pairs: AUTOCAST FLOAT32 [AUTOCAST FLOAT32 ...]")
    preset = preset_overrides(args.preset, given_options(parser, None))
    cfg = config_from_args(CifarConfig, args, **{**preset, "device": "cpu", "amp": "fp32"})
    set_threads(cfg.threads or None)
    networks, field, memory = generator_step_flops(cfg)
    encoder = encoder_stage_flops(cfg) if not cfg.encoder else 0.0
    print(f"generator step ({cfg.batch_gen} + {cfg.batch_real} images): {(networks + field) / 1e12:.3f} TFLOP, "
          f"networks {networks / 1e12:.3f}, field {field / 1e12:.3f} ({field / (networks + field):.0%}); "
          f"peak memory of the step on this CPU: +{memory / 2**30:.1f} GiB "
          f"({memory / cfg.batch_gen / 2**20:.1f} MiB a generated image)")
    print(f"{cfg.gen_steps} generator steps: {cfg.gen_steps * (networks + field) / 1e15:.2f} PFLOP; "
          f"encoder stage: {encoder / 1e15:.2f} PFLOP")
    for fast, full in zip(args.rates[::2], args.rates[1::2]):
        step = networks / (fast * 1e12) + field / (full * 1e12)
        print(f"at {fast:g} TFLOP/s in autocast and {full:g} in float32: {step:.3f} s a step, "
              f"generator {cfg.gen_steps * step / 60:.0f} min, encoder {encoder / (fast * 1e12) / 60:.1f} min "
              "(lower bounds)")


if __name__ == "__main__":
    main()
