"""Images from a trained generator: uint8 arrays and a grid (PNG).

Samples are a function of the seed only (the noise of each chunk of 500 comes from ``data.noise``). The
command writes them as ``.npz`` shards of at most 15 MB with ``fid.write_shards`` (key ``images``,
(n, 32, 32, 3) uint8).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from ..images import grid
from .data import mix, noise, to_uint8
from .generator import Generator

SHARD_IMAGES = 4000


def load_generator(path: str | Path, device="cpu", which: str = "ema") -> tuple[Generator, dict]:
    """The generator of a run folder (its ema.pt) or of a file (ema.pt or ckpt.pt): ``which`` is "ema" or
    "generator" (the raw weights, only in ckpt.pt). Returns the network in eval mode and the file's dict."""
    path = Path(path)
    if path.is_dir():
        path = path / ("ema.pt" if which == "ema" else "ckpt.pt")
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: train a run first (python -m drifting_min.cifar train --out DIR)")
    blob = torch.load(path, map_location="cpu", weights_only=False)
    net = Generator(**blob["arch"])
    net.load_state_dict(blob[which])
    return net.to(device).eval(), blob


@torch.no_grad()
def generate(net: Generator, n: int, seed: int, device="cpu", labels: torch.Tensor | None = None,
             batch: int = 500, amp: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images as uint8 (n, 32, 32, 3) and their labels; a conditional generator gets classes 0, 1, ...,
    K-1, 0, 1, ... unless ``labels`` says otherwise."""
    device = torch.device(device)
    if net.num_classes and labels is None:
        labels = torch.arange(n) % net.num_classes
    out = []
    for chunk, start in enumerate(range(0, n, batch)):
        m = min(batch, n - start)
        eps = noise(chunk, m, net.noise_dim, mix(seed, 5)).to(device)
        y = labels[start:start + m].to(device) if labels is not None else None
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"):
            out.append(to_uint8(net(eps, y)).cpu())
    lab = labels.numpy().astype(np.int64) if labels is not None else np.full(n, -1, dtype=np.int64)
    return torch.cat(out).numpy(), lab


def save_grid(images: np.ndarray, path: str | Path, nrow: int | None = None, pad: int = 2) -> Path:
    """Tile uint8 (n, 32, 32, 3) images into one PNG (white gaps), written atomically."""
    from PIL import Image

    nrow = nrow or math.ceil(math.sqrt(len(images)))
    canvas = grid(torch.from_numpy(np.ascontiguousarray(images)), math.ceil(len(images) / nrow), nrow, pad=pad)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    Image.fromarray(canvas).save(tmp, format="PNG")
    os.replace(tmp, path)
    return path


def grid_of(net: Generator, path: str | Path, seed: int, device="cpu") -> Path:
    """An 8 x 8 grid (10 x 10, one row per class, for a conditional generator) from fixed noise."""
    if net.num_classes:
        k = net.num_classes
        labels = torch.arange(k).repeat_interleave(10)
        images, _ = generate(net, 10 * k, seed, device, labels=labels)
        return save_grid(images, path, nrow=10)
    images, _ = generate(net, 64, seed, device)
    return save_grid(images, path, nrow=8)
