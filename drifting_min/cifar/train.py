"""Training: the encoder stage, then the generator under the feature-space drifting loss.

One generator step (``train_step``):

    eps, labels  = noise and classes of step s              (a function of (seed, s) only; data.noise)
    x            = generator(eps, labels)                   (autocast: bf16, or fp16 on older GPUs; precision)
    y            = the real images of step s                 (data.RealSampler)
    features     = multiscale_features(encoder.feature_maps(.)) + the raw pixels, of x and of y
    loss         = sum over features of the released batch loss (features.feature_drift_loss; every feature's
                   groups in one batched call, distances and softmaxes in float32); a conditional run puts
                   each class in its own groups, so generated images meet only real images of their class
    AdamW (0.9, 0.95), gradient norm clipped at 2.0, warm-up then cosine decay, EMA of the weights. In fp16 the
    loss is scaled before the backward pass and a step whose gradient overflowed is skipped (a GradScaler).

EMA. ema <- d ema + (1 - d) w with d = min(cfg.ema, (1 + s) / (10 + s)): the usual warm-up of the decay, so
that the first steps do not keep the random initialisation in the average. While the warm-up term is the
smaller one the half-life is about ln 2 (10 + s) / 9, roughly 0.077 (10 + s) steps (77 at step 1,000, 386 at
step 5,000): the average follows the generator closely through most of a run. With cfg.ema = 0.999 the cap
takes over only at step 8,990, where the half-life reaches its final value, ln 2 / 0.001, about 700 steps.

Run folder (``--out``): config.json, encoder.pt (the own encoder and its test accuracy; encoder_ckpt.pt while it
trains), ckpt.pt (everything needed to resume), ema.pt (the EMA weights alone, under 16 MB), log.jsonl, grid.png
and grids/, snapshots/ (copies of ema.pt every ``snapshot_every`` steps, if asked), and .lock (a trainer holds an
flock on it while it writes the folder; a second one is refused). Files are written to a temporary name and renamed
(``os.replace``), so a run killed at any moment leaves the last complete checkpoint. The same command again resumes
from it, in either stage: the data order, the noise and the learning rate are functions of (seed, step) and the
encoder stage saves its random state, so the resumed run continues exactly as an uninterrupted one would (bit for
bit on a CPU). Ctrl-C and SIGTERM stop either stage at the end of its current step and save; ``--minutes`` does the
same when time is up; a non-finite loss stops with ``NonFiniteLoss`` and leaves the last good checkpoint untouched.
Settings, device, paths, the lock and the data are checked before the encoder trains (``UsageError``), and a new
run that ends with nothing to resume from leaves no folder behind.

The log. Every ``log_every`` steps: the loss (nearly constant by construction, not a progress measure), raw |F_R|^2
per temperature, and ``energy``, the relative energy distance of the batch in the encoder's pooled features (of
the deepest of the run's ``feature_stages``); the first line holds both for two real batches (``real_vs_real``),
the levels a perfect generator would show, and the precision the run trains in.

More than one process (``torchrun``, ``distributed.py``): each rank computes its slice of the step's batch, the
features are gathered so that the loss is the whole batch's, the gradients are summed; rank 0 alone locks and
writes the run folder (and trains the encoder while the others wait), and the ranks agree after every step
whether to stop, so that all stop after the same step.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import math
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

try:  # advisory file locks (POSIX); where fcntl is missing the run folder is not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

import numpy as np
import torch

from ..features import feature_drift_loss, multiscale_features
from . import distributed
from .config import CifarConfig, UsageError
from .data import DataError, RealSampler, fingerprint, load_images, noise, to_float
from .encoder import Encoder, accuracy, freeze, load_encoder, numpy_to_device, save_encoder, train_encoder
from .generator import Generator
from .precision import autocast, choose_precision, grad_scaler
from .sample import grid_of

# settings that may change between the invocations of one run (they do not change the schedule; the precision
# follows the device of each invocation)
RUN_CONTROL = ("data", "test_data", "data_dir", "device", "amp", "minutes", "ckpt_every", "grid_every", "log_every",
               "snapshot_every", "threads")


class NonFiniteLoss(RuntimeError):
    """The loss or the gradient became NaN or infinite; the last good checkpoint is kept."""


def pick_device(name: str) -> torch.device:
    """``auto``: cuda when a GPU is visible, else cpu. A device that cannot be used here raises UsageError, so a
    command fails before it loads anything."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {name}: not a device name (auto, cpu, cuda, cuda:1, mps, ...)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: torch sees no CUDA GPU on this machine; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UsageError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s), numbered from 0")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise UsageError(f"--device {name}: no Apple GPU is available to torch here; use --device cpu")
    return device


def check_batches(cfg: CifarConfig, classes: int) -> None:
    """A conditional run splits each batch evenly over the classes (UsageError otherwise)."""
    if cfg.conditional and (cfg.batch_gen % classes or cfg.batch_real % classes):
        raise UsageError(f"a conditional run splits each batch over the {classes} classes: --batch-gen and "
                         f"--batch-real must be multiples of {classes} (got {cfg.batch_gen}, {cfg.batch_real})")


def check_paths(cfg: CifarConfig) -> None:
    """The files the settings name exist (UsageError otherwise): checked before any stage starts."""
    for name, value in (("data", cfg.data), ("test_data", cfg.test_data), ("encoder", cfg.encoder)):
        if value and value != "download" and not Path(value).exists():
            hint = " ('download' fetches the official archive)" if name == "data" else ""
            raise UsageError(f"--{name.replace('_', '-')} {value}: no such file or folder{hint}")


def save_atomic(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def ema_blob(ema: Generator, step: int, cfg: CifarConfig, encoder_info: dict) -> dict:
    """The EMA weights alone, with what is needed to sample from them: the content of ema.pt (and of a snapshot),
    which ``sample.load_generator`` reads."""
    return {"arch": ema.arch(), "ema": ema.state_dict(), "step": step, "config": cfg.to_dict(),
            "encoder": encoder_info}


# ------------------------------------------------------------------------------------------ stages


def prepare_data(cfg: CifarConfig, device: torch.device) -> dict:
    """Training images (uint8, on ``device``), labels, the test split for the encoder, the fingerprint."""
    images, labels = load_images(cfg.data, "train", cfg.data_dir)
    classes = int(labels.max()) + 1
    if classes < 2 and (cfg.conditional or not cfg.encoder):
        raise DataError(f"--data {cfg.data}: all {len(labels)} images are in one folder, so there is one class; the "
                        "own encoder learns from the classes: put each class in its own subfolder "
                        "(train/<class>/0001.jpg), or pass --encoder FILE")
    held_out = False
    if cfg.test_data:
        test = load_images(cfg.test_data, "test", cfg.data_dir)
    elif str(cfg.data) == "download" or str(cfg.data).endswith((".tar.gz", ".tgz", ".tar")):
        test = load_images(cfg.data, "test", cfg.data_dir)
    else:  # hold out 5% of the training images (a fixed choice) to measure the encoder
        order = np.random.default_rng(12345).permutation(len(images))
        k = max(1, len(images) // 20)
        test, held_out = (images[order[:k]], labels[order[:k]]), True
    return {"images": torch.from_numpy(images).to(device), "labels": torch.from_numpy(labels),
            "test": test, "fingerprint": fingerprint(images, labels), "classes": classes,
            "held_out": held_out}


def prepare_encoder(cfg: CifarConfig, out: Path, data: dict, device: torch.device, progress: bool, stop=None):
    """The frozen encoder and a description of it for the logs: another encoder's file, the cached own
    encoder of this run, or a new own encoder trained now (and cached). The training of the own encoder is
    checkpointed in ``encoder_ckpt.pt`` (every 5% of it, and when ``stop()`` says so; then this returns None,
    None) and continued from there by the next call."""
    if cfg.encoder:
        enc, info = load_encoder(cfg.encoder, device)
        return freeze(enc), {"encoder": f"file:{cfg.encoder}", **{k: v for k, v in info.items() if k != "kind"}}
    path, ckpt = out / "encoder.pt", out / "encoder_ckpt.pt"
    want = {"data_fingerprint": data["fingerprint"], "width": cfg.encoder_width, "epochs": cfg.encoder_epochs,
            "seed": cfg.seed}
    if path.exists():
        enc, info = load_encoder(path, device)
        if all(info.get(k) == v for k, v in want.items()):
            return freeze(enc), {"encoder": "own (cached)", "test_accuracy": info.get("test_accuracy")}
    stage = {**want, "batch": cfg.encoder_batch, "lr": cfg.encoder_lr}  # the precision may change on resuming
    resume = None
    if ckpt.exists():
        saved = torch.load(ckpt, map_location="cpu", weights_only=False)  # the RNG state stays a CPU tensor
        if saved["stage"] == stage:
            resume = saved
            print(f"resuming the encoder stage at step {saved['step']} of {saved['steps']}")
    t0 = time.time() - (resume["seconds"] if resume else 0.0)
    images = data["images"].permute(0, 3, 1, 2).float() / 127.5 - 1.0
    if data["held_out"]:  # do not train on the held-out images
        keep = np.ones(len(images), dtype=bool)
        keep[np.random.default_rng(12345).permutation(len(images))[: len(data["test"][0])]] = False
        images, labels = images[torch.from_numpy(keep).to(device)], data["labels"][keep]
    else:
        labels = data["labels"]
    steps = math.ceil(cfg.encoder_epochs * len(images) / cfg.encoder_batch)
    enc = train_encoder(images, labels.to(device), width=cfg.encoder_width, num_classes=data["classes"],
                        epochs=cfg.encoder_epochs, batch=cfg.encoder_batch, lr=cfg.encoder_lr, seed=cfg.seed,
                        precision=choose_precision(cfg.amp, device)[0], progress=progress, resume=resume,
                        save_every=max(1, steps // 20), stop=stop,
                        save=lambda state: save_atomic({"stage": stage, "seconds": time.time() - t0, **state}, ckpt))
    if enc is None:
        return None, None
    test_x, test_y = numpy_to_device(*data["test"], device)
    acc = accuracy(enc, test_x, test_y)
    seconds = time.time() - t0
    save_encoder(enc, path, test_accuracy=acc, seconds=seconds, test_images=len(test_y), **want)
    ckpt.unlink(missing_ok=True)
    print(f"own encoder: test accuracy {acc:.4f} on {len(test_y)} images, trained in {seconds:.1f} s")
    enc, _ = load_encoder(path, device)  # the same weights in the same layout as a resumed run will use
    return freeze(enc), {"encoder": "own", "test_accuracy": acc, "encoder_seconds": round(seconds, 1)}


# ------------------------------------------------------------------------------------------ one step


def learning_rate(step: int, cfg: CifarConfig) -> float:
    """Linear warm-up over ``cfg.warmup`` steps, then constant or cosine down to 10% of ``cfg.lr``."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    if cfg.decay == "none":
        return cfg.lr
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.gen_steps - cfg.warmup))
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def ema_update(ema: torch.nn.Module, net: torch.nn.Module, step: int, decay: float) -> None:
    d = min(decay, (1 + step) / (10 + step))
    for pe, p in zip(ema.parameters(), net.parameters()):
        pe.lerp_(p.detach(), 1 - d)


def drift_features(encoder, images: torch.Tensor, raw: bool, stages: tuple[int, ...] | None = None,
                   locations: bool = True, patch_sizes: tuple[int, ...] = (2, 4)) -> dict[str, torch.Tensor]:
    """The features the loss compares: multi-scale features of the encoder's stages (all by default; the
    per-location vectors unless ``locations`` is False; patch statistics for ``patch_sizes``), plus the raw
    pixels if ``raw``."""
    maps = encoder.feature_maps(images)
    stages = range(len(maps)) if stages is None else stages
    feats = multiscale_features([maps[i] for i in stages], [f"s{i}" for i in stages], patch_sizes)
    if not locations:
        feats = {name: f for name, f in feats.items() if not name.endswith(".loc")}
    if raw:
        feats["raw"] = images.flatten(1)[None]
    return feats


def config_features(encoder, images: torch.Tensor, cfg: CifarConfig) -> dict[str, torch.Tensor]:
    """``drift_features`` with the run's choice of features."""
    return drift_features(encoder, images, cfg.raw_feature, cfg.feature_stages, cfg.locations, cfg.patch_sizes)


def by_class(feats: dict[str, torch.Tensor], k: int) -> dict[str, torch.Tensor]:
    """[G, K n, C] with samples class by class -> [G K, n, C]: each class in its own groups."""
    return {name: f.reshape(f.shape[0] * k, f.shape[1] // k, f.shape[2]) for name, f in feats.items()}


def feature_loss(encoder, gen_images, real_images, cfg: CifarConfig, k: int = 1,
                 world: distributed.World | None = None) -> tuple[torch.Tensor, dict]:
    """The summed feature-space loss, and the raw mean square force per temperature summed over features.
    Under torchrun the loss is that of the whole batch: every rank's features are gathered (distributed.py)."""
    fg = config_features(encoder, gen_images, cfg)
    with torch.no_grad():
        fr = config_features(encoder, real_images, cfg)
    if world is not None:
        fg, fr = distributed.gather_samples([fg, fr], k, world)
    if k > 1:
        fg, fr = by_class(fg, k), by_class(fr, k)
    try:
        loss, info = feature_drift_loss(fg, fr, taus=cfg.taus)
    except ValueError as e:
        if "NaN or Inf" in str(e):
            raise NonFiniteLoss(f"non-finite features ({e})") from e
        raise
    raw = [sum(v["raw_drift_sq"][i] for v in info.values()) for i in range(len(cfg.taus))]
    pooled = max((name for name in fg if re.fullmatch(r"s\d+\.mean", name)), key=lambda name: int(name[1:-5]))
    energy = relative_energy_distance(fg[pooled].flatten(0, 1).detach(), fr[pooled].flatten(0, 1))
    return loss, {"raw_drift_sq": raw, "energy": energy}


def relative_energy_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """(2 E|a - b| - E|a - a'| - E|b - b'|) / E|b - b'|, means over distinct pairs of the rows of a [N, C] and
    b [M, C] (float32, exact distances). The unbiased energy distance, relative to the spread of b: its
    expected value is 0 when a and b are drawn from one distribution, and it grows as they part (0.41 for
    every row of a at the mean of a Gaussian b in many dimensions, more when a sits away from b). The trainer
    applies it to the pooled encoder features of the generated and the real batch, at the deepest of the run's
    feature stages."""
    with torch.autocast(device_type=a.device.type, enabled=False):
        a, b = a.float(), b.float()
        d_ab = torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist").mean()
        d_aa = torch.cdist(a, a, compute_mode="donot_use_mm_for_euclid_dist").sum() / (len(a) * (len(a) - 1))
        d_bb = torch.cdist(b, b, compute_mode="donot_use_mm_for_euclid_dist").sum() / (len(b) * (len(b) - 1))
        return float((2 * d_ab - d_aa - d_bb) / d_bb)


class Trainer:
    """The generator, its EMA, the optimiser and the step count, with the data and the frozen encoder."""

    def __init__(self, cfg: CifarConfig, data: dict, encoder, device: torch.device,
                 world: distributed.World | None = None):
        self.cfg, self.data, self.encoder, self.device = cfg, data, encoder, device
        self.world = world or distributed.World(device=device)
        self.k = data["classes"] if cfg.conditional else 1
        check_batches(cfg, data["classes"])
        torch.manual_seed(cfg.seed)
        self.net = Generator(cfg.noise_dim, cfg.gen_width, data["classes"] if cfg.conditional else 0).to(device)
        # channels-last tensors: the fastest layout for bf16 and fp16 convolutions on GPUs, and 10% faster for the
        # cpu preset's float32 step on a CPU (bench/bench_cifar_step.py --options)
        self.net.to(memory_format=torch.channels_last)
        if isinstance(encoder, Encoder):
            encoder.to(memory_format=torch.channels_last)
        self.ema = copy.deepcopy(self.net).eval().requires_grad_(False)
        self.opt = torch.optim.AdamW(self.net.parameters(), lr=cfg.lr, betas=(0.9, 0.95),
                                     weight_decay=cfg.weight_decay)
        self.real = RealSampler(data["labels"], cfg.seed, cfg.batch_real, per_class=cfg.conditional)
        # this process's rows of the whole step's batch (all of them in one process)
        self.rows_gen = distributed.shard(cfg.batch_gen, self.k, self.world)
        self.rows_real = distributed.shard(cfg.batch_real, self.k, self.world)
        self.step = 0
        self.precision, _ = choose_precision(cfg.amp, device)  # "bf16", "fp16" or "fp32"
        self.scaler = grad_scaler(self.precision, device)  # enabled for fp16 only

    def gen_batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        eps = noise(step, self.cfg.batch_gen, self.cfg.noise_dim, self.cfg.seed)[self.rows_gen].to(self.device)
        if not self.cfg.conditional:
            return eps, None
        labels = torch.arange(self.k).repeat_interleave(self.cfg.batch_gen // self.k)[self.rows_gen]
        return eps, labels.to(self.device)

    def real_batch(self, step: int) -> torch.Tensor:
        return to_float(self.data["images"][self.real(step)[self.rows_real].to(self.device)])

    def train_step(self) -> dict:
        """One optimiser step; raises NonFiniteLoss (before touching the weights) if the loss or gradient is
        not finite. In fp16 a non-finite gradient is the scaler's overflow: the step is skipped (the weights and
        the EMA stay) and the scale halved, unless the scale is already below 1."""
        step, cfg = self.step, self.cfg
        lr = learning_rate(step, cfg)
        for group in self.opt.param_groups:
            group["lr"] = lr
        eps, labels = self.gen_batch(step)
        real = self.real_batch(step)
        with autocast(self.precision, self.device):
            images = self.net(eps, labels)
            loss, info = feature_loss(self.encoder, images, real, cfg, self.k, self.world)
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        distributed.sum_gradients(self.net.parameters(), self.world)  # the whole batch's gradient on every rank
        self.scaler.unscale_(self.opt)  # clip the true gradient, not the scaled one
        grad_norm = torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg.clip)
        values = torch.stack([loss.detach().float(), grad_norm.float()]).tolist()
        overflow = self.scaler.is_enabled() and math.isfinite(values[0]) and self.scaler.get_scale() >= 1
        if not all(math.isfinite(v) for v in values) and not overflow:
            raise NonFiniteLoss(f"loss {values[0]} and gradient norm {values[1]} at step {step}")
        if self.scaler.is_enabled():
            info["loss_scale"] = self.scaler.get_scale()
        self.scaler.step(self.opt)  # skipped if the gradient is not finite
        self.scaler.update()
        if math.isfinite(values[1]):
            ema_update(self.ema, self.net, step, cfg.ema)
        self.step += 1
        return {"loss": values[0], "grad_norm": values[1], "lr": lr, **info}

    @torch.no_grad()
    def real_vs_real(self) -> dict:
        """The logged measures with a batch of real images in the place of the generated one (another draw
        than the positives): what a generator that matched the data exactly would show with these batch
        sizes. Raw |F|^2 does not fall to zero but to this level; the energy distance falls to about 0."""
        fake = RealSampler(self.data["labels"], self.cfg.seed + 1, self.cfg.batch_gen, self.cfg.conditional)
        stand_in = to_float(self.data["images"][fake(0)[self.rows_gen].to(self.device)])  # this rank's slice
        with autocast(self.precision, self.device):
            _, info = feature_loss(self.encoder, stand_in, self.real_batch(0), self.cfg, self.k, self.world)
        return info

    def state(self) -> dict:
        return {"step": self.step, "config": self.cfg.to_dict(), "arch": self.net.arch(),
                "generator": self.net.state_dict(), "ema": self.ema.state_dict(),
                "optimizer": self.opt.state_dict(), "scaler": self.scaler.state_dict(),
                "data_fingerprint": self.data["fingerprint"], "rng_cpu": torch.get_rng_state()}

    def load(self, state: dict) -> None:
        self.net.load_state_dict(state["generator"])
        self.ema.load_state_dict(state["ema"])
        self.opt.load_state_dict(state["optimizer"])
        if state.get("scaler"):  # an fp16 run's loss scale (empty in other precisions)
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        torch.set_rng_state(state["rng_cpu"])

    def save(self, out: Path, encoder_info: dict) -> None:
        """ckpt.pt (to resume) and ema.pt (the EMA weights alone), each written atomically (by rank 0 alone)."""
        if not self.world.is_main:
            return
        save_atomic({**self.state(), "encoder": encoder_info}, out / "ckpt.pt")
        save_atomic(ema_blob(self.ema, self.step, self.cfg, encoder_info), out / "ema.pt")


# ------------------------------------------------------------------------------------------ the loop


def resume_config(cfg: CifarConfig, out: Path) -> tuple[CifarConfig, dict | None]:
    """The config to use and the checkpoint to resume from (None when the generator has not started). A run
    resumed in either stage keeps its stored settings, except those in RUN_CONTROL, which come from the new
    command; a run stopped in the encoder stage has its settings in config.json."""
    path = out / "ckpt.pt"
    state = torch.load(path, map_location="cpu", weights_only=False) if path.exists() else None
    if state is not None:
        stored = CifarConfig.from_dict(state["config"])
    elif (out / "encoder_ckpt.pt").exists() and (out / "config.json").exists():
        stored = CifarConfig.from_dict(json.loads((out / "config.json").read_text()))
    else:
        return cfg, None
    changed = [k for k, v in cfg.to_dict().items() if k not in RUN_CONTROL and stored.to_dict()[k] != v]
    if changed:
        print(f"resuming {out}: keeping the run's stored {', '.join(changed)} (use another --out to start anew)")
    merged = CifarConfig.from_dict({**stored.to_dict(), **{k: getattr(cfg, k) for k in RUN_CONTROL}})
    return merged, state


def check_same_data(out: Path, state: dict | None, data_fingerprint: str) -> None:
    """A run folder holds one run: refuse (UsageError) data other than the data its checkpoints were made of."""
    stored = state["data_fingerprint"] if state is not None else None
    for name in ("encoder_ckpt.pt", "encoder.pt"):
        if stored is None and (out / name).exists():
            blob = torch.load(out / name, map_location="cpu", weights_only=False)
            stored = blob.get("stage", blob).get("data_fingerprint")
    if stored is not None and stored != data_fingerprint:
        raise UsageError(f"--out {out} holds a run trained on other data (fingerprint {stored}, this --data gives "
                         f"{data_fingerprint}): pass that run's --data, or use another --out")


def _truncate_log(log: Path, step: int) -> None:
    """Drop log lines written after the checkpoint we resume from (they will be written again)."""
    if log.exists():
        lines = [ln for ln in log.read_text().splitlines() if ln.strip()]
        keep = [ln for ln in lines if json.loads(ln).get("step", 0) <= step]
        log.write_text("".join(ln + "\n" for ln in keep))


class RunLock:
    """An exclusive lock on a run folder while a trainer writes it (``flock`` on ``OUT/.lock``, which holds the
    holder's pid). The system drops the lock when the process ends, however it ends, so a killed run never
    leaves a stale lock. A second trainer on the same folder gets UsageError naming the holder's pid."""

    def __init__(self, out: Path):
        self.path, self.file = out / ".lock", None

    def __enter__(self):
        if fcntl is None:
            return self
        self.file = open(self.path, "a+")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.seek(0)
            holder = self.file.read().strip() or "unknown"
            self.file.close()
            raise UsageError(f"--out {self.path.parent} is in use by another trainer (pid {holder}): wait for it to "
                             "end or stop it (Ctrl-C saves), or use another --out") from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(str(os.getpid()))
        self.file.flush()
        return self

    def __exit__(self, *exc):
        if self.file is not None:
            self.file.truncate(0)  # an unlocked folder's lock file is empty
            self.file.close()  # closing releases the lock


class _StopFlag:
    """When to stop: SIGINT or SIGTERM received, or the ``minutes`` of this invocation spent (``check()`` says
    which, or None). The stages ask after every step, save and return. A second Ctrl-C aborts at once."""

    def __init__(self, minutes: float = 0.0, t_start: float | None = None):
        self.reason, self._old, self.minutes = None, {}, minutes
        self.deadline = (t_start or time.monotonic()) + 60 * minutes if minutes else None

    def _handle(self, signum, frame):
        if self.reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.reason = f"interrupted ({signal.Signals(signum).name})"

    def check(self) -> str | None:
        if self.reason is None and self.deadline is not None and time.monotonic() > self.deadline:
            self.reason = f"time limit ({self.minutes} min)"
        return self.reason

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def train(cfg: CifarConfig, out: str | Path, progress: bool = True, max_steps: int | None = None,
          on_step=None) -> dict:
    """Train (or resume) the run in ``out``; returns a summary ("stopped" says why this call ended, "saved" the
    file the next call resumes from). ``max_steps`` stops this invocation after that many generator steps (with
    a checkpoint), as ``--minutes`` does; ``on_step(trainer)`` is called after every step.

    Before anything is written the device and the paths are checked and the folder is locked (UsageError
    otherwise). A new run folder left with nothing to resume from (an error, or a stop before the encoder stage
    saved anything) is removed again. Under torchrun every process calls this: rank 0 alone creates, locks,
    writes and removes the folder and trains the encoder (the others wait for it at a barrier), and all ranks
    stop after the same step (``distributed.py``)."""
    t_start = time.monotonic()
    out = Path(out)
    device = pick_device(cfg.device)
    check_paths(cfg)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; a run needs a folder")
    world = distributed.start(device)  # under torchrun: join the other processes (each takes its own GPU)
    existed = out.exists()
    new = world.is_main and (not existed or not any(out.iterdir()))
    if world.is_main:  # rank 0 alone creates, locks, writes and removes the run folder
        out.mkdir(parents=True, exist_ok=True)
    try:
        with _locked(out, world), _StopFlag(cfg.minutes, t_start) as flag:
            result = _run(cfg, out, world, flag, progress, max_steps, on_step, t_start)
    except BaseException:
        if new:
            _remove_if_nothing_to_resume(out, existed)
        raise
    if new:
        _remove_if_nothing_to_resume(out, existed)
    return result


@contextlib.contextmanager
def _locked(out: Path, world: distributed.World):
    """The run folder's lock (RunLock), held by rank 0 alone; every rank learns whether rank 0 got it, so that
    a refused job stops on every rank with the same UsageError."""
    lock = RunLock(out)
    _main_checks(lock.__enter__, world)
    try:
        yield lock
    finally:
        if world.is_main:
            lock.__exit__(None, None, None)


def _main_checks(check, world: distributed.World) -> None:
    """``check()``, which raises UsageError, on rank 0 alone (it reads files that rank 0 may be rewriting); the
    other ranks raise a UsageError too when it failed there, so that the whole job stops."""
    error = None
    if world.is_main:
        try:
            check()
        except UsageError as e:
            error = e
    (failed,) = distributed.any_rank([error is not None], world)
    if error is not None:
        raise error
    if failed:
        raise UsageError("rank 0 refused the run folder (its message says why)")


def _remove_if_nothing_to_resume(out: Path, keep_folder: bool) -> None:
    """Remove what a new run wrote in ``out`` (and ``out`` itself unless it was there before) when none of the
    files that a run resumes from was written."""
    if any((out / name).exists() for name in ("ckpt.pt", "encoder.pt", "encoder_ckpt.pt")):
        return
    shutil.rmtree(out, ignore_errors=True)
    if keep_folder:
        out.mkdir(exist_ok=True)


def _run(cfg: CifarConfig, out: Path, world: distributed.World, flag: _StopFlag, progress: bool, max_steps,
         on_step, t_start: float) -> dict:
    """The stages of ``train``, in the locked run folder (on every rank; rank 0 alone writes)."""
    from tqdm import tqdm

    device = world.device
    cfg, state = resume_config(cfg, out)  # before the first barrier: rank 0 has not written anything yet
    precision, why = choose_precision(cfg.amp, device)
    print(f"precision: {precision} ({why})")
    cfg = dataclasses.replace(cfg, amp=precision)  # the run's config says what ran, not "auto"
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest convolutions
    with distributed.main_first(world):  # rank 0 downloads and caches, the others wait and read the cache
        data = prepare_data(cfg, device)
    _main_checks(lambda: check_same_data(out, state, data["fingerprint"]), world)
    check_batches(cfg, data["classes"])
    if world.is_main:
        save_text(json.dumps(cfg.to_dict(), indent=1), out / "config.json")
    progress = progress and world.is_main
    encoder = enc_info = None
    with distributed.main_first(world):  # rank 0 trains (or resumes) and caches the encoder; the others wait
        if world.is_main:
            encoder, enc_info = prepare_encoder(cfg, out, data, device, progress, stop=flag.check)
    (stopped,) = distributed.any_rank([world.is_main and encoder is None], world)  # rank 0 saved and stopped
    if stopped:
        saved = torch.load(out / "encoder_ckpt.pt", map_location="cpu", weights_only=False)
        where = f"in the encoder stage at step {saved['step']} of {saved['steps']}"
        return {"step": 0, "stopped": flag.reason or "interrupted (on rank 0)", "where": where,
                "saved": str(out / "encoder_ckpt.pt"), "seconds": round(time.monotonic() - t_start, 1)}
    if not world.is_main:  # rank 0's encoder, from the file it has just written (or the --encoder file)
        encoder, enc_info = prepare_encoder(cfg, out, data, device, progress=False)
    trainer = Trainer(cfg, data, encoder, device, world)
    real = trainer.real_vs_real()
    log = out / "log.jsonl"
    if state is not None:
        trainer.load(state)
    distributed.check_same("the step to start from", trainer.step, world)  # all read the same checkpoint
    if world.is_main and state is not None:
        _truncate_log(log, trainer.step)
        print(f"resumed {out} at step {trainer.step} ({world.size} process(es))")
    elif world.is_main:
        start = {"step": 0, "event": "start", **enc_info, "device": str(device), "precision": precision,
                 "processes": world.size, "real_vs_real": real}
        log.write_text(json.dumps(start) + "\n")
    reason, first = "done", trainer.step
    bar = tqdm(total=cfg.gen_steps, initial=trainer.step, disable=not progress, desc="generator")
    t_log, n_log = time.monotonic(), 0
    try:
        with open(log if world.is_main else os.devnull, "a") as log_file:
            while trainer.step < cfg.gen_steps:
                try:
                    info = trainer.train_step()
                except NonFiniteLoss as e:
                    raise NonFiniteLoss(f"{e}: stopped; the last good checkpoint {out / 'ckpt.pt'} is kept "
                                        "(lower --lr or check the data)") from None
                n_log += 1
                bar.update(1)
                step = trainer.step
                if step % cfg.log_every == 0 or step == cfg.gen_steps:
                    now = time.monotonic()
                    rate = n_log * cfg.batch_gen / max(now - t_log, 1e-9)
                    line = {"step": step, **info, "images_per_s": round(rate, 1), "time": round(now - t_start, 2)}
                    log_file.write(json.dumps(line) + "\n")
                    log_file.flush()
                    bar.set_postfix(bar_fields(info, real, rate))
                    t_log, n_log = now, 0
                if world.is_main and (step % cfg.grid_every == 0 or step == cfg.gen_steps):
                    grid = grid_of(trainer.ema, out / "grids" / f"step_{step:06d}.png", cfg.seed, device)
                    shutil.copyfile(grid, out / "grid.png.tmp")
                    os.replace(out / "grid.png.tmp", out / "grid.png")
                if step % cfg.ckpt_every == 0 or step == cfg.gen_steps:
                    trainer.save(out, enc_info)
                if world.is_main and cfg.snapshot_every and step % cfg.snapshot_every == 0:
                    snapshot = out / "snapshots" / f"ema_step_{step:06d}.pt"
                    snapshot.parent.mkdir(exist_ok=True)
                    save_atomic(ema_blob(trainer.ema, step, cfg, enc_info), snapshot)
                if on_step is not None:
                    on_step(trainer)
                if step < cfg.gen_steps:  # every rank asks, and all stop if one was told to (the same step)
                    why = flag.check() or ""
                    signalled, time_up = distributed.any_rank([why.startswith("interrupted"),
                                                               why.startswith("time limit")], world)
                    if signalled or time_up:
                        reason = why or ("interrupted (on another rank)" if signalled
                                         else f"time limit ({cfg.minutes} min, on another rank)")
                        break
                if max_steps is not None and step < cfg.gen_steps and step - first >= max_steps:
                    reason = f"step limit ({max_steps} steps this call)"
                    break
            with distributed.main_first(world):  # the others return once rank 0 has saved
                if trainer.step % cfg.ckpt_every or trainer.step == first:  # not saved yet (or nothing trained)
                    trainer.save(out, enc_info)
    finally:
        bar.close()
    where = "" if reason == "done" else f"in the generator stage at step {trainer.step} of {cfg.gen_steps}"
    return {"step": trainer.step, "stopped": reason, "where": where, "saved": str(out / "ckpt.pt"), **enc_info,
            "seconds": round(time.monotonic() - t_start, 1)}


def bar_fields(info: dict, real: dict, rate: float) -> dict:
    """What the progress bar shows after a logged step: the batch's relative energy distance in the encoder's
    features (falls towards 0), each temperature's raw |F|^2 over its level between two real batches (moves
    towards 1: from below at the small temperatures, from above at the large one), and the throughput."""
    ratios = ",".join(f"{v / max(r, 1e-12):.2f}" for v, r in zip(info["raw_drift_sq"], real["raw_drift_sq"]))
    return {"energy": f"{info['energy']:.3f}", "F2/real": ratios, "img_s": f"{rate:.0f}"}


def save_text(text: str, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
