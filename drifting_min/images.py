"""Small images made by code: coloured shapes over textured, graded backgrounds (lesson 06).

Nothing is downloaded: ``shapes(n, seed)`` draws n RGB images of side 16 (or ``size``) with values in [0, 1],
each showing one shape of one of four classes,

    0 disc,  1 square,   2 triangle,  3 stripes (a striped disc),

at a random position and size, in a random colour, over a background that is a linear colour gradient in a
random direction with a faint random texture. The same seed gives the same images. Shapes are drawn at
twice the resolution and averaged down (2 x 2), so their edges are antialiased like those of a photograph.
"""

from __future__ import annotations

import math

import torch

CLASSES = ("disc", "square", "triangle", "stripes")


def _rng(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def _uniform(rng: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=rng)


def _masks(labels: torch.Tensor, cx, cy, r, angle, period, size: int) -> torch.Tensor:
    """The shape of each image as a mask in {0, 1}, n x size x size, at pixel centres in [0, 1]^2."""
    axis = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    dx = xx[None] - cx[:, None, None]
    dy = yy[None] - cy[:, None, None]
    c, s = angle.cos()[:, None, None], angle.sin()[:, None, None]
    u, v = c * dx + s * dy, -s * dx + c * dy  # coordinates in the shape's own rotated frame
    rr = r[:, None, None]
    disc = dx.square() + dy.square() <= rr.square()
    square = (u.abs() <= 0.8 * rr) & (v.abs() <= 0.8 * rr)
    # an equilateral triangle with circumradius r: three half-planes at 120 degrees
    tri = torch.ones_like(disc)
    for k in range(3):
        a = 2 * math.pi * k / 3
        tri &= (math.cos(a) * u + math.sin(a) * v) <= 0.55 * rr
    stripes = disc & (torch.cos(2 * math.pi * u / period[:, None, None]) > 0)
    out = torch.stack([disc, square, tri, stripes], dim=1)  # n x 4 x size x size
    return out[torch.arange(labels.shape[0]), labels].float()


def shapes(
    n: int, seed: int, size: int = 16, classes: tuple[int, ...] = (0, 1, 2, 3)
) -> tuple[torch.Tensor, torch.Tensor]:
    """n images (n x 3 x size x size, float32 in [0, 1]) and their class labels (n, int64).

    Classes are drawn uniformly from ``classes``.
    """
    if n <= 0 or size < 8:
        raise ValueError(f"need n > 0 and size >= 8, got n={n}, size={size}")
    rng = _rng(seed)
    pick = torch.tensor(classes)[torch.randint(0, len(classes), (n,), generator=rng)]
    # background: a gradient from colour a to colour b along a random direction, plus a faint texture
    col_a, col_b = torch.rand(n, 3, generator=rng), torch.rand(n, 3, generator=rng)
    theta = _uniform(rng, n, 0, 2 * math.pi)
    axis = (torch.arange(size, dtype=torch.float32) + 0.5) / size
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    t = (theta.cos()[:, None, None] * (xx - 0.5) + theta.sin()[:, None, None] * (yy - 0.5)) / math.sqrt(0.5) + 0.5
    background = col_a[:, :, None, None] + (col_b - col_a)[:, :, None, None] * t[:, None]
    texture = torch.randn(n, 1, size // 4, size // 4, generator=rng)
    texture = torch.nn.functional.interpolate(texture, size=(size, size), mode="bilinear", align_corners=False)
    background = background + 0.06 * texture
    # the shape: colour far from the background's mean colour so that it is visible
    colour = torch.rand(n, 3, generator=rng)
    mean_bg = 0.5 * (col_a + col_b)
    colour = torch.where((colour - mean_bg).norm(dim=1, keepdim=True) < 0.5, 1.0 - mean_bg, colour)
    r = _uniform(rng, n, 0.2, 0.34)
    cx, cy = _uniform(rng, n, 0.0, 1.0), _uniform(rng, n, 0.0, 1.0)
    cx, cy = r + (1 - 2 * r) * cx, r + (1 - 2 * r) * cy  # the shape stays inside the image
    angle = _uniform(rng, n, 0, 2 * math.pi)
    period = _uniform(rng, n, 0.12, 0.2)
    mask = _masks(pick, cx, cy, r, angle, period, 2 * size)
    mask = torch.nn.functional.avg_pool2d(mask[:, None], 2)  # antialiased edges
    images = background * (1 - mask) + colour[:, :, None, None] * mask
    return images.clamp(0, 1), pick


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """n x 3 x H x W floats in [0, 1] -> n x H x W x 3 uint8 (for saving and for drawing)."""
    return (images.detach().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def grid(images: torch.Tensor, rows: int, cols: int, pad: int = 1):
    """Tile n x H x W x 3 uint8 images (or n x 3 x H x W floats) into one array for ``plt.imshow``."""
    import numpy as np

    if images.dtype != torch.uint8:
        images = to_uint8(images)
    arr = images[: rows * cols].numpy()
    n, h, w, _ = arr.shape
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, dtype=np.uint8)
    for k in range(n):
        i, j = divmod(k, cols)
        out[pad + i * (h + pad): pad + i * (h + pad) + h, pad + j * (w + pad): pad + j * (w + pad) + w] = arr[k]
    return out
