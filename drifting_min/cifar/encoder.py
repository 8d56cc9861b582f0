"""The feature encoder: the space in which the kernel compares generated and real images.

Pretrained weights cannot be assumed, so by default the trainer first trains its own small encoder on the
training images and caches it (weights, test accuracy, the data's fingerprint) in the run folder.

Why supervised classification. The kernel needs features in which images of the same kind are close and
images of different kinds are far; raw pixels are not such a space (drifting on CIFAR-10 pixels collapses,
REFERENCE.md). Of the routes to semantic features, supervised classification with light augmentation (random
4-pixel translations and horizontal flips) is by far the cheapest: small ResNets of this shape reach 90% test
accuracy and more within a minute on one modern GPU (the DAWNBench entries and their successors), where
self-supervised objectives (SimCLR, MoCo, MAE) need far longer to reach comparable linear-probe accuracy. This
encoder's test accuracy is measured after training and stored with its weights. The labels are CIFAR-10's own,
so nothing outside the training set is used, and the FID network is never involved (features it shaped would
make FID a flattering measure).

The network (after the fast CIFAR-10 ResNets of the DAWNBench line): a 3x3 stem, then three stages that each
double the channels and halve the resolution (16x16, 8x8, 4x4), the first and last with a residual block, then a
global max pool and a linear classifier. ``feature_maps`` returns the three stage outputs. Downsampling is by
average pooling, not max pooling, so that the gradient that reaches a generated image is spread over every
pixel rather than routed through one maximum per window.

While the generator trains the encoder is frozen (``freeze``: eval mode, no parameter gradients); gradients
still flow through it to the generated images.
"""

from __future__ import annotations

import math
import warnings
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import UsageError
from .precision import autocast, grad_scaler


def _conv_bn(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _Residual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.body = nn.Sequential(_conv_bn(c, c), _conv_bn(c, c))

    def forward(self, x):
        return x + self.body(x)


class Encoder(nn.Module):
    """Stages of w -> 2w (16x16) -> 4w (8x8) -> 8w (4x4) channels; ``forward`` gives class logits."""

    def __init__(self, width: int = 32, num_classes: int = 10):
        super().__init__()
        w = width
        self.width, self.num_classes = width, num_classes
        self.stem = _conv_bn(3, w)
        self.stage1 = nn.Sequential(_conv_bn(w, 2 * w), nn.AvgPool2d(2), _Residual(2 * w))
        self.stage2 = nn.Sequential(_conv_bn(2 * w, 4 * w), nn.AvgPool2d(2))
        self.stage3 = nn.Sequential(_conv_bn(4 * w, 8 * w), nn.AvgPool2d(2), _Residual(8 * w))
        self.head = nn.Linear(8 * w, num_classes)

    def feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Images (B, 3, 32, 32) in [-1, 1] -> the stage outputs [(B, 2w, 16, 16), (B, 4w, 8, 8), (B, 8w, 4, 4)]."""
        a = self.stage1(self.stem(images))
        b = self.stage2(a)
        return [a, b, self.stage3(b)]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.feature_maps(images)[-1].amax(dim=(2, 3))) * 0.125


class ScriptedEncoder(nn.Module):
    """Wraps a TorchScript module that has a ``feature_maps`` method (another encoder, by weights file)."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def feature_maps(self, images: torch.Tensor) -> list[torch.Tensor]:
        return list(self.module.feature_maps(images))


def freeze(encoder: nn.Module) -> nn.Module:
    """Eval mode (batch norm uses its running statistics) and no parameter gradients."""
    encoder.eval()
    for p in encoder.parameters():
        p.requires_grad_(False)
    return encoder


# ------------------------------------------------------------------------------------------ training


def augment(images: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random translations by up to 4 pixels (reflect padding) and horizontal flips, per image."""
    b, _, h, w = images.shape
    padded = F.pad(images, (4, 4, 4, 4), mode="reflect")
    dy, dx = (torch.randint(0, 9, (2, b), generator=gen)).to(images.device)
    rows = (dy[:, None] + torch.arange(h, device=images.device))[:, :, None]  # (b, h, 1)
    cols = (dx[:, None] + torch.arange(w, device=images.device))[:, None, :]  # (b, 1, w)
    flip = (torch.rand(b, generator=gen) < 0.5).to(images.device)
    cols = torch.where(flip[:, None, None], cols.flip(-1), cols)
    out = padded[torch.arange(b, device=images.device)[:, None, None], :, rows, cols]  # (b, h, w, c)
    return out.permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def accuracy(encoder: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int = 1000) -> float:
    """Top-1 accuracy of ``encoder(images)`` (float images in [-1, 1] on the encoder's device)."""
    was_training = encoder.training
    encoder.eval()
    correct = 0
    for i in range(0, len(images), batch):
        correct += (encoder(images[i:i + batch]).argmax(1) == labels[i:i + batch]).sum().item()
    encoder.train(was_training)
    return correct / max(len(images), 1)


def train_encoder(images: torch.Tensor, labels: torch.Tensor, *, width: int, num_classes: int, epochs: float,
                  batch: int, lr: float, seed: int, precision: str = "fp32", progress: bool = True,
                  resume: dict | None = None, save=None, save_every: int = 0, stop=None) -> Encoder | None:
    """Supervised training: AdamW, a one-cycle learning rate (triangular), label smoothing 0.1, light augmentation.

    ``images`` are float (N, 3, 32, 32) in [-1, 1] on the training device; ``precision`` is "bf16", "fp16" (with
    a gradient scaler) or "fp32" (``precision.choose_precision``). Resumable: ``save(state)`` is called
    every ``save_every`` steps (0: never) with a dict of everything the rest of the stage depends on (weights,
    optimiser, the gradient scaler, the sampling generator's state, the step), and ``resume=state`` continues
    from it exactly as the uninterrupted stage would have gone on. ``stop()`` is asked after every step; when it
    returns true, the state is saved and None is returned instead of the encoder.
    """
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    device = images.device
    enc = Encoder(width, num_classes).to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(enc.parameters(), lr=lr, weight_decay=5e-4, betas=(0.9, 0.99))
    steps = max(1, math.ceil(epochs * len(images) / batch))
    warm = max(1, steps // 4)
    gen = torch.Generator().manual_seed(seed)
    scaler = grad_scaler(precision, device)
    first = 0
    if resume is not None:
        if resume["steps"] != steps:
            raise ValueError(f"the encoder checkpoint is of a {resume['steps']}-step stage, this one has {steps}")
        enc.load_state_dict(resume["encoder"])
        opt.load_state_dict(resume["optimizer"])
        if scaler.is_enabled() and resume.get("scaler"):  # fp16: the loss scale reached so far
            scaler.load_state_dict(resume["scaler"])
        gen.set_state(resume["rng"])
        first = resume["step"]

    def state(step: int) -> dict:
        return {"step": step, "steps": steps, "encoder": enc.state_dict(), "optimizer": opt.state_dict(),
                "scaler": scaler.state_dict(), "rng": gen.get_state()}

    enc.train()
    for step in tqdm(range(first, steps), desc="encoder", initial=first, total=steps, disable=not progress,
                     leave=False):
        for group in opt.param_groups:  # one cycle: linear up over the first quarter, linear down to zero
            group["lr"] = lr * min((step + 1) / warm, (steps - step) / max(1, steps - warm))
        idx = torch.randint(0, len(images), (batch,), generator=gen).to(device)
        x = augment(images[idx], gen).contiguous(memory_format=torch.channels_last)
        with autocast(precision, device):
            loss = F.cross_entropy(enc(x).float(), labels[idx], label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)  # skipped when an fp16 gradient overflowed
        scaler.update()
        if stop is not None and step + 1 < steps and stop():
            if save is not None:
                save(state(step + 1))
            return None
        if save is not None and save_every and (step + 1) % save_every == 0 and step + 1 < steps:
            save(state(step + 1))
    return enc


# ------------------------------------------------------------------------------------------ files


def save_encoder(enc: Encoder, path: str | Path, **info) -> None:
    """Weights, architecture and ``info`` (test accuracy, data fingerprint, ...) in one file, atomically."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"kind": "drifting_min.cifar.Encoder", "width": enc.width, "num_classes": enc.num_classes,
                "state_dict": enc.state_dict(), **info}, tmp)
    tmp.replace(path)


def load_encoder(path: str | Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """An encoder from a file: an ``encoder.pt`` written by ``save_encoder`` or a TorchScript module with a
    ``feature_maps`` method. Returns it (on ``device``) and its info (without the weights)."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such encoder weights file (pass an encoder.pt of a run, or a TorchScript file)")
    if not _is_torchscript(path):
        try:
            blob = torch.load(path, map_location=device, weights_only=False)
        except Exception as e:  # a truncated or foreign file: say which and what is expected
            raise UsageError(f"{path}: neither an encoder.pt of this trainer nor a TorchScript module ({e})") from e
        if not (isinstance(blob, dict) and blob.get("kind") == "drifting_min.cifar.Encoder"):
            raise UsageError(f"{path}: neither an encoder.pt of this trainer nor a TorchScript module")
        enc = Encoder(blob["width"], blob["num_classes"])
        enc.load_state_dict(blob["state_dict"])
        return enc.to(device), {k: v for k, v in blob.items() if k != "state_dict"}
    with warnings.catch_warnings():  # newer torch marks TorchScript deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(path), map_location=device)
    if not hasattr(module, "feature_maps"):
        raise UsageError(f"{path}: the TorchScript module has no feature_maps method, which the trainer needs")
    return ScriptedEncoder(module).to(device), {"kind": "torchscript"}


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives are zip files with a constants.pkl; torch.save files have none."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(name.endswith("constants.pkl") for name in z.namelist())


def numpy_to_device(images: np.ndarray, labels: np.ndarray, device) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 NHWC images and labels -> float NCHW in [-1, 1] and int64 labels, on ``device``."""
    x = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    return x, torch.from_numpy(labels).to(device)
