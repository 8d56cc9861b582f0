"""A peer at the same budget: a small GAN with the drifting run's generator, trained on the same CPU.

    python bench/cifar_gan_peer.py --out runs/gan --cpu-minutes 30            # then score it like a drifting run:
    python bench/cifar_judge.py score --run runs/gan
    python -m drifting_min.cifar fid --out runs/gan --n 2000 --inception PATH --ref-stats PATH

The generator is ``drifting_min.cifar.generator.Generator`` with the CPU preset's width, noise and classes; its
weights are averaged exactly as the drifting trainer averages them (``train.ema_update``, the same decay), and
the run folder holds an ``ema.pt`` in the trainer's format, so ``sample``, ``fid`` and the judge read it
unchanged. The discriminator is a small convolutional network with spectral normalisation on every layer
(Miyato et al. 2018) and, for a conditional run, the projection of a class embedding onto its features
(Miyato and Koyama 2018). The loss is the non-saturating one of Goodfellow et al. (2014):

    D:  softplus(-D(x_real)) + softplus(D(G(eps)))        G:  softplus(-D(G(eps)))

Adam (lr 2e-4, betas 0.5, 0.999) for both, one discriminator step per generator step, batches of the preset's
size. The budget is process CPU time (one thread unless ``--threads``), so that other work on the machine does
not change what the GAN gets; the data order and noise come from the trainer's (seed, step) functions.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drifting_min.cifar.config import PRESETS, CifarConfig  # noqa: E402
from drifting_min.cifar.data import RealSampler, load_images, noise, to_float  # noqa: E402
from drifting_min.cifar.generator import Generator  # noqa: E402
from drifting_min.cifar.sample import grid_of  # noqa: E402
from drifting_min.cifar.train import ema_blob, ema_update, save_atomic  # noqa: E402
from drifting_min.runtime import set_threads  # noqa: E402


class Discriminator(nn.Module):
    """32x32 -> w (16x16) -> 2w (8x8) -> 4w (4x4) -> sum over locations -> a score (+ class projection)."""

    def __init__(self, width: int = 32, num_classes: int = 0):
        super().__init__()

        def conv(cin, cout, k, s):
            return spectral_norm(nn.Conv2d(cin, cout, k, s, padding=k // 2 if s == 1 else 1))

        w = width
        self.body = nn.Sequential(conv(3, w, 3, 1), nn.LeakyReLU(0.1), conv(w, w, 4, 2), nn.LeakyReLU(0.1),
                                  conv(w, 2 * w, 3, 1), nn.LeakyReLU(0.1), conv(2 * w, 2 * w, 4, 2),
                                  nn.LeakyReLU(0.1), conv(2 * w, 4 * w, 3, 1), nn.LeakyReLU(0.1),
                                  conv(4 * w, 4 * w, 4, 2), nn.LeakyReLU(0.1))
        self.head = spectral_norm(nn.Linear(4 * w, 1))
        self.embed = spectral_norm(nn.Embedding(num_classes, 4 * w)) if num_classes else None

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        h = self.body(images).sum(dim=(2, 3))
        out = self.head(h).squeeze(1)
        if self.embed is not None:
            out = out + (self.embed(labels) * h).sum(1)
        return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/gan")
    p.add_argument("--data", default="data/cifar10-jpeg/train.zip")
    p.add_argument("--preset", default="cpu", choices=list(PRESETS), help="generator size, batch, EMA from it")
    p.add_argument("--cpu-minutes", type=float, default=30.0, help="budget of process CPU time")
    p.add_argument("--d-width", type=int, default=32)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--grid-every", type=int, default=500)
    args = p.parse_args(argv)
    set_threads(args.threads)
    cfg = CifarConfig(**{**PRESETS[args.preset], "seed": args.seed, "device": "cpu"})
    t0, cpu0 = time.monotonic(), time.process_time()
    images, labels = load_images(args.data, "train")
    images = torch.from_numpy(images)
    k = int(labels.max()) + 1 if cfg.conditional else 0
    torch.manual_seed(args.seed)
    gen = Generator(cfg.noise_dim, cfg.gen_width, k)
    ema = copy.deepcopy(gen).eval().requires_grad_(False)
    disc = Discriminator(args.d_width, k)
    opt_g = torch.optim.Adam(gen.parameters(), lr=args.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=args.lr, betas=(0.5, 0.999))
    sampler = RealSampler(labels, args.seed, cfg.batch_real, per_class=cfg.conditional)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log = open(out / "log.jsonl", "w")
    step, budget = 0, 60 * args.cpu_minutes
    fake_labels = torch.arange(k).repeat_interleave(cfg.batch_gen // k) if k else None
    real_labels = torch.arange(k).repeat_interleave(cfg.batch_real // k) if k else None
    while time.process_time() - cpu0 < budget:
        real = to_float(images[sampler(step)])
        eps = noise(step, cfg.batch_gen, cfg.noise_dim, cfg.seed)
        fake = gen(eps, fake_labels)
        d_loss = F.softplus(-disc(real, real_labels)).mean() + F.softplus(disc(fake.detach(), fake_labels)).mean()
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        g_loss = F.softplus(-disc(fake, fake_labels)).mean()
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        ema_update(ema, gen, step, cfg.ema)
        step += 1
        if step % 50 == 0:
            log.write(json.dumps({"step": step, "d_loss": d_loss.item(), "g_loss": g_loss.item(),
                                  "cpu_s": round(time.process_time() - cpu0, 1),
                                  "time": round(time.monotonic() - t0, 1)}) + "\n")
            log.flush()
        if step % args.grid_every == 0:
            grid_of(ema, out / "grids" / f"step_{step:06d}.png", cfg.seed)
    save_atomic(ema_blob(ema, step, cfg, {"encoder": "none (GAN peer)"}), out / "ema.pt")
    grid_of(ema, out / "grid.png", cfg.seed)
    summary = {"steps": step, "cpu_s": round(time.process_time() - cpu0, 1),
               "wall_s": round(time.monotonic() - t0, 1), "images_per_cpu_s":
               round(step * cfg.batch_gen / max(time.process_time() - cpu0, 1e-9), 1), "threads": args.threads,
               "preset": args.preset, "d_width": args.d_width, "lr": args.lr}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
