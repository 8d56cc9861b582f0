"""Lesson 06's experiments, on a CPU: pixel-space against feature-space kernels on small images, distance
concentration, and the clip of the released loss on eight Gaussians.

    python -m drifting_min.feature_demo --out lessons/06/results.npz          # a few minutes on two cores

1. **Encoders.** Two shape classifiers trained on ``images.shapes`` for a few hundred steps: the *kernel's*
   encoder (``Encoder``: three 3x3 conv stages, 16 x 16 -> 8 x 8 -> 4 x 4), frozen and used for features,
   and an independent *judge* (``Judge``: 5x5 convs, max-pooling, a 64-unit hidden layer; another seed,
   other training images) used only to measure samples.
2. **Generators.** The same conv generator (noise 32 -> 4 x 4 -> 8 x 8 -> 16 x 16 x 3), trained with the
   released batch loss (``features.released_drift_loss``) either on raw pixels (one group, 768 dims) or on
   raw pixels *plus* the multi-scale features of the frozen encoder (``features.feature_drift_loss``), for the
   same number of steps with the same batches; the pixel kernel also without its clip, and that once more for
   three times the steps (a feature step costs about three pixel steps on a CPU).
3. **Quality**, never with the kernel's encoder (that would reward feature space by construction): in the
   judge's 64-unit hidden layer, the Frechet distance (``cifar.fid.frechet_distance``, the FID formula) between
   2,000 generated and 2,000 fresh real images (and the same between two real sets: the floor); the share of
   samples the judge calls each class; and the judge's mean confidence (its top softmax probability).
4. **Concentration**: nearest over mean distance as the dimension grows, for Gaussian data, pixels and
   encoder features.
5. **The clip**: an MLP generator started collapsed at the origin of the eight Gaussians (radius 2, std 0.05),
   trained with the released loss (three temperatures, normalised) with and without the clip.

Everything is seeded; results go to one ``.npz`` (uint8 samples, encoder weights, numbers) and a JSON summary
next to it.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .cifar.fid import feature_stats, frechet_distance
from .cli import add_config_options, config_from_args, setting
from .features import feature_drift_loss, multiscale_features, released_drift_loss
from .images import CLASSES, shapes, to_uint8
from .toys.data import eight_gaussian_centres, eight_gaussians


@dataclass
class DemoConfig:
    steps: int = setting(800, "generator training steps (each kernel)")
    batch_gen: int = setting(64, "generated images per step")
    batch_data: int = setting(64, "real images per step")
    lr: float = setting(2e-3, "Adam learning rate of the generators (cosine decay to 5%)")
    taus: tuple[float, ...] = setting((0.02, 0.05, 0.2), "temperatures R of the released loss")
    encoder_steps: int = setting(600, "training steps of each classifier (kernel's encoder and judge)")
    n_eval: int = setting(2000, "samples for the quality metric")
    long_factor: int = setting(3, "the pixel kernel without clip runs again for this many times the steps")
    clip_steps: int = setting(600, "training steps of the eight-Gaussians clip experiment")
    seed: int = setting(0, "seed of everything")
    threads: int = setting(1, "torch threads")


# ------------------------------------------------------------------------------------------------ networks


class Encoder(nn.Module):
    """The kernel's encoder: 3x3 convs with group normalisation, stages at 16 x 16 (16 ch), 8 x 8 (32 ch) and
    4 x 4 (64 ch); a linear classifier on the last map (used only to train it)."""

    def __init__(self, n_classes: int = len(CLASSES)):
        super().__init__()

        def conv(c_in: int, c_out: int, stride: int = 1) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1), nn.GroupNorm(4, c_out), nn.SiLU()]

        self.stages = nn.ModuleList([
            nn.Sequential(*conv(3, 16), *conv(16, 16)),
            nn.Sequential(*conv(16, 32, 2), *conv(32, 32)),
            nn.Sequential(*conv(32, 64, 2), *conv(64, 64)),
        ])
        self.head = nn.Linear(64 * 16, n_classes)

    def feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """images [B, 3, 16, 16] in [0, 1] -> the three stages' maps [B, C, h, w]."""
        h = 2 * images - 1
        maps = []
        for stage in self.stages:
            h = stage(h)
            maps.append(h)
        return maps

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.feature_maps(images)[-1].flatten(1))


class Judge(nn.Module):
    """The independent classifier that measures samples: 5x5 convs with max-pooling and a 64-unit hidden
    layer (its activations are the features of the Frechet distance)."""

    def __init__(self, n_classes: int = len(CLASSES)):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 24, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(24, 48, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(48 * 16, 64), nn.ReLU(),
        )
        self.head = nn.Linear(64, n_classes)

    def hidden(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images - 0.5)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(images))


class ImageGenerator(nn.Module):
    """noise [B, 32] -> images [B, 3, 16, 16] in (0, 1): a linear map to 64 x 4 x 4, two (upsample, conv)
    stages, a 3-channel conv and a sigmoid."""

    def __init__(self, noise_dim: int = 32, width: int = 64):
        super().__init__()
        self.noise_dim = noise_dim
        act = nn.SiLU
        self.fc = nn.Linear(noise_dim, width * 16)
        self.body = nn.Sequential(
            act(), nn.Upsample(scale_factor=2), nn.Conv2d(width, width, 3, padding=1), act(),
            nn.Upsample(scale_factor=2), nn.Conv2d(width, width // 2, 3, padding=1), act(),
            nn.Conv2d(width // 2, width // 2, 3, padding=1), act(), nn.Conv2d(width // 2, 3, 3, padding=1),
        )
        self.width = width

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        h = self.fc(noise).view(-1, self.width, 4, 4)
        return torch.sigmoid(self.body(h))


def train_classifier(model: nn.Module, steps: int, data_seed: int, batch: int = 64, lr: float = 2e-3) -> float:
    """Train a shape classifier on fresh images every step; returns its accuracy on 1,000 held-out images."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for step in range(steps):
        images, labels = shapes(batch, seed=data_seed * 100_000 + step)
        loss = nn.functional.cross_entropy(model(images), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval().requires_grad_(False)
    images, labels = shapes(1000, seed=data_seed * 100_000 + 99_999)
    with torch.no_grad():
        return float((model(images).argmax(1) == labels).float().mean())


# ------------------------------------------------------------------------------------------------ the losses


def pixel_loss(gen: torch.Tensor, real: torch.Tensor, taus, encoder=None) -> torch.Tensor:
    """The released loss on raw pixels: one group, D = 3 H W."""
    loss, _ = released_drift_loss(gen.flatten(1)[None], real.flatten(1)[None], taus=taus)
    return loss


def image_features(encoder: Encoder, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Multi-scale features of the encoder's three stages, plus the raw pixels as one more feature."""
    feats = multiscale_features(encoder.feature_maps(images))
    # The first stage's 256 per-location vectors would cost two thirds of a CPU step; its 2x2 and 4x4 patch
    # statistics (and the later stages' locations) stay.
    del feats["s0.loc"]
    feats["raw"] = images.flatten(1)[None]
    return feats


def feature_loss(gen: torch.Tensor, real: torch.Tensor, taus, encoder: Encoder) -> torch.Tensor:
    """The released loss summed over the encoder's features (and the raw pixels); gradients flow through
    the frozen encoder into the generated images."""
    with torch.no_grad():
        real_feats = image_features(encoder, real)
    loss, _ = feature_drift_loss(image_features(encoder, gen), real_feats, taus=taus)
    return loss


def pixel_loss_no_clip(gen: torch.Tensor, real: torch.Tensor, taus, encoder=None) -> torch.Tensor:
    """The released loss on raw pixels without its clip (section 8 of the lesson)."""
    loss, _ = released_drift_loss(gen.flatten(1)[None], real.flatten(1)[None], taus=taus, clip=False)
    return loss


KINDS = {"pixels": pixel_loss, "pixels_no_clip": pixel_loss_no_clip, "features": feature_loss}


def train_generator(
    cfg: DemoConfig, kind: str, encoder: Encoder, steps: int | None = None
) -> tuple[ImageGenerator, float]:
    """Train the image generator with the pixel-space (kind "pixels", or "pixels_no_clip") or feature-space
    ("features") kernel for ``steps`` (default cfg.steps); the same initial weights, noise and real batches for
    all. Returns it and its training seconds."""
    loss_fn = KINDS[kind]
    steps = cfg.steps if steps is None else steps
    torch.manual_seed(cfg.seed)
    gen = ImageGenerator()
    opt = torch.optim.Adam(gen.parameters(), lr=cfg.lr, betas=(0.9, 0.95))
    noise_rng = torch.Generator().manual_seed(cfg.seed + 1)
    start = time.perf_counter()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        real, _ = shapes(cfg.batch_data, seed=1_000_000 + cfg.seed * 100_000 + step)
        noise = torch.randn(cfg.batch_gen, gen.noise_dim, generator=noise_rng)
        loss = loss_fn(gen(noise), real, cfg.taus, encoder)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return gen.eval(), time.perf_counter() - start


# ------------------------------------------------------------------------------------------------ quality


@torch.no_grad()
def judge_report(judge: Judge, images: torch.Tensor, real: torch.Tensor) -> dict:
    """The judge's view of ``images`` against ``real``: Frechet distance in its hidden layer, class shares,
    class balance (entropy of the shares / log 4), mean confidence."""
    probs = judge(images).softmax(1)
    shares = torch.bincount(probs.argmax(1), minlength=len(CLASSES)).double() / images.shape[0]
    entropy = float(-(shares * shares.clamp_min(1e-12).log()).sum() / math.log(len(CLASSES)))
    return {
        "frechet": frechet_distance(feature_stats(judge.hidden(images)), feature_stats(judge.hidden(real))),
        "class_shares": shares.tolist(),
        "class_balance": entropy,
        "confidence": float(probs.max(1).values.mean()),
    }


# ------------------------------------------------------------------------------------------------ concentration


def concentration(x: torch.Tensor) -> float:
    """Mean over points of (nearest distance to another point) / (mean distance to the others)."""
    x = x.double()
    d = torch.cdist(x, x)
    n = x.shape[0]
    nearest = d.masked_fill(torch.eye(n, dtype=torch.bool), float("inf")).amin(1)
    return float((nearest / (d.sum(1) / (n - 1))).mean())


def concentration_table(encoder: Encoder, n: int = 500, seed: int = 7) -> dict:
    """Ratios for Gaussian data of growing dimension, and for shapes: pixels against encoder features."""
    rng = torch.Generator().manual_seed(seed)
    dims = [2, 8, 32, 128, 512, 2048]
    gaussian = [concentration(torch.randn(n, d, generator=rng)) for d in dims]
    images, _ = shapes(n, seed=seed)
    with torch.no_grad():
        feats = multiscale_features(encoder.feature_maps(images))
    per = {"pixels (768)": concentration(images.flatten(1))}
    for key in ("s0.loc", "s1.loc", "s2.loc", "s2.mean", "s1.p2.std"):
        f = feats[key]
        groups = range(0, f.shape[0], max(1, f.shape[0] // 16))
        per[f"{key} ({f.shape[2]})"] = float(np.mean([concentration(f[g]) for g in groups]))
    return {"dims": dims, "gaussian": gaussian, "images": per}


# ------------------------------------------------------------------------------------------------ the clip


def inward_share(x: torch.Tensor, y: torch.Tensor, tau: float, clip: bool) -> float:
    """Share of samples whose field at one temperature points towards the origin (F . x < 0); the field is
    minus the gradient of the released loss."""
    x = x.detach().clone().requires_grad_(True)
    loss, _ = released_drift_loss(x[None], y[None], taus=(tau,), clip=clip)
    (grad,) = torch.autograd.grad(loss, x)
    return float(((-grad * x.detach()).sum(1) < 0).float().mean())


def clip_run(clip: bool, steps: int, seed: int, taus, n: int = 256) -> dict:
    """An MLP generator (32 -> 256 -> 256 -> 256 -> 2, SiLU) whose last layer starts at 1% of its default
    size, so every sample starts within a few hundredths of the origin; Adam 1e-3, n + n samples a step."""
    torch.manual_seed(seed)
    layers, width = [], 32
    for _ in range(3):
        layers += [nn.Linear(width, 256), nn.SiLU()]
        width = 256
    last = nn.Linear(256, 2)
    with torch.no_grad():
        last.weight.mul_(0.01)
        last.bias.zero_()
    net = nn.Sequential(*layers, last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    rng = torch.Generator().manual_seed(seed + 1)
    eval_noise = torch.randn(1000, 32, generator=torch.Generator().manual_seed(seed + 2))
    probe_y = eight_gaussians(1000, seed=seed + 3)
    history = []
    for step in range(steps + 1):
        if step % 50 == 0:
            with torch.no_grad():
                x = net(eval_noise)
            history.append([step, float(x.norm(dim=1).mean())] +
                           [inward_share(x[:n], probe_y[:n], t, clip) for t in taus])
        if step == steps:
            break
        y = eight_gaussians(n, seed=10_000 * seed + step)
        loss, _ = released_drift_loss(net(torch.randn(n, 32, generator=rng))[None], y[None], taus=taus, clip=clip)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        samples = net(eval_noise)
    near = (torch.cdist(samples, eight_gaussian_centres()) <= 0.15).float().mean(0)
    return {"samples": samples.numpy().astype(np.float32), "history": np.array(history, dtype=np.float64),
            "mode_shares": near.tolist(), "modes_covered": int((near >= 0.05).sum())}


# ------------------------------------------------------------------------------------------------ the command


def run(cfg: DemoConfig, out: Path) -> dict:
    torch.set_num_threads(cfg.threads)
    timings, arrays = {}, {}
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    encoder = Encoder()
    enc_acc = train_classifier(encoder, cfg.encoder_steps, data_seed=cfg.seed + 1)
    torch.manual_seed(cfg.seed + 1000)
    judge = Judge()
    judge_acc = train_classifier(judge, cfg.encoder_steps, data_seed=cfg.seed + 2)
    timings["classifiers"] = time.perf_counter() - t0
    print(f"classifiers: encoder accuracy {enc_acc:.3f}, judge accuracy {judge_acc:.3f} "
          f"({timings['classifiers']:.0f} s)", flush=True)

    real_a, _ = shapes(cfg.n_eval, seed=5_000_000)
    real_b, _ = shapes(cfg.n_eval, seed=6_000_000)
    report = {"real": judge_report(judge, real_a, real_b)}
    eval_noise = torch.randn(cfg.n_eval, 32, generator=torch.Generator().manual_seed(7_000_000))
    runs = [(kind, kind, cfg.steps) for kind in KINDS]
    # a feature step costs about three pixel steps: the pixel kernel (no clip) again, for about the same time
    runs.append(("pixels_no_clip_long", "pixels_no_clip", cfg.long_factor * cfg.steps))
    for name, kind, steps in runs:
        gen, seconds = train_generator(cfg, kind, encoder, steps)
        timings[name] = seconds
        with torch.no_grad():
            samples = gen(eval_noise)
        report[name] = {**judge_report(judge, samples, real_b), "steps": steps, "seconds": seconds}
        arrays[f"samples_{name}"] = to_uint8(samples[:256]).numpy()
        print(f"{name}: {json.dumps(report[name])}", flush=True)
    arrays["samples_real"] = to_uint8(real_a[:256]).numpy()

    t0 = time.perf_counter()
    conc = concentration_table(encoder)
    timings["concentration"] = time.perf_counter() - t0

    clip = {}
    t0 = time.perf_counter()
    for on in (True, False):
        res = clip_run(on, cfg.clip_steps, cfg.seed, cfg.taus)
        name = "clip_on" if on else "clip_off"
        arrays[f"{name}_samples"] = res.pop("samples")
        arrays[f"{name}_history"] = res.pop("history")
        clip[name] = res
        print(f"{name}: {json.dumps(res)}", flush=True)
    timings["clip"] = time.perf_counter() - t0

    for k, v in encoder.state_dict().items():
        arrays[f"encoder.{k}"] = v.numpy()
    summary = {
        "config": asdict(cfg), "torch": torch.__version__, "timings_s": timings,
        "encoder_accuracy": enc_acc, "judge_accuracy": judge_acc, "quality": report,
        "concentration": conc, "clip": clip,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    out.with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def load_encoder(path: Path) -> Encoder:
    """The kernel's encoder with the weights cached by ``run`` (frozen, in eval mode)."""
    arrays = np.load(path)
    encoder = Encoder()
    encoder.load_state_dict(
        {k[len("encoder."):]: torch.from_numpy(arrays[k]) for k in arrays.files if k.startswith("encoder.")}
    )
    return encoder.eval().requires_grad_(False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("lessons/06/results.npz"),
                        help="the cache to write (.npz, and .json beside it)")
    add_config_options(parser, DemoConfig)
    args = parser.parse_args(argv)
    cfg = config_from_args(DemoConfig, args)
    summary = run(cfg, args.out)
    print(json.dumps({k: summary[k] for k in ("timings_s", "encoder_accuracy", "judge_accuracy")}))


if __name__ == "__main__":
    main()
