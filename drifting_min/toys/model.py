"""The toy generator: an MLP from noise to the plane, x = f(eps), eps ~ N(0, I_noise_dim)."""

from __future__ import annotations

import torch
from torch import nn

from .config import ToyConfig
from .data import _rng


class Generator(nn.Module):
    """x = f(eps): an MLP from noise_dim to 2, ``depth`` hidden layers of width ``hidden``, SiLU."""

    def __init__(self, noise_dim: int = 32, hidden: int = 256, depth: int = 3, out_dim: int = 2):
        super().__init__()
        layers, width = [], noise_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)
        self.noise_dim = noise_dim

    def forward(self, eps: torch.Tensor) -> torch.Tensor:
        return self.net(eps)

    def sample(self, n: int, seed: int) -> torch.Tensor:
        """n samples from seeded noise, without a graph."""
        with torch.no_grad():
            return self(torch.randn(n, self.noise_dim, generator=_rng(seed)))


def make_generator(cfg: ToyConfig) -> Generator:
    """A seeded generator. With ``init="collapsed"`` the last layer is shrunk 1000x and its bias set to
    ``collapse_at``: every sample starts (almost) on one point, e.g. one mode of the eight Gaussians."""
    torch.manual_seed(cfg.seed)
    generator = Generator(cfg.noise_dim, cfg.hidden, cfg.depth)
    if cfg.init == "collapsed":
        last = generator.net[-1]
        with torch.no_grad():
            last.weight.mul_(1e-3)
            last.bias.copy_(torch.tensor(cfg.collapse_at))
    return generator
