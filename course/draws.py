"""Seeded random draws for the checks and tests: the same seed gives the same numbers on every machine.

``draw(seed, (7, 3), (11, 3))`` returns one float64 tensor per shape, drawn one after another from a fresh
generator seeded with ``seed``; ``randn(seed, 7, 3)`` returns a single tensor. Either accepts, instead of a
seed, a ``torch.Generator`` (from ``generator(seed)``) to keep drawing from the same stream. Draws are made on
the CPU (reproducible across devices) and then moved to ``device``.
"""

from __future__ import annotations

import torch


def generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed``."""
    return torch.Generator().manual_seed(int(seed))


def _stream(seed) -> torch.Generator:
    return seed if isinstance(seed, torch.Generator) else generator(seed)


def randn(
    seed,
    *shape: int,
    scale: float = 1.0,
    shift: float = 0.0,
    dtype: torch.dtype = torch.float64,
    device=None,
) -> torch.Tensor:
    """One tensor of standard-normal draws of ``shape``, times ``scale`` plus ``shift``."""
    values = torch.randn(*shape, generator=_stream(seed), dtype=dtype) * scale + shift
    return values if device is None else values.to(device)


def draw(
    seed,
    *shapes: tuple[int, ...],
    scale: float = 1.0,
    shift: float = 0.0,
    dtype: torch.dtype = torch.float64,
    device=None,
) -> list[torch.Tensor]:
    """One tensor of standard-normal draws per shape (times ``scale`` plus ``shift``), all from one stream."""
    stream = _stream(seed)
    return [randn(stream, *shape, scale=scale, shift=shift, dtype=dtype, device=device) for shape in shapes]
