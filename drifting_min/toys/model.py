"""The toy generator: an MLP from noise to the plane, x = f(eps, k).

The noise has two parts: a Gaussian eps ~ N(0, I_noise_dim) and, with ``components`` = K > 1, a component index
k drawn uniformly from {0, ..., K - 1} and fed as a one-hot vector. The first layer then computes
W eps + b + c_k, where c_k (the k-th column of its one-hot block, drawn N(0, component_scale^2) at the start and
learned) shifts every hidden unit by a component's own offset. Each component starts as a different function of
eps, and the generator is a mixture of K maps that share all other weights. A continuous map of one Gaussian
must cover the gaps between the modes or rings of a toy; a mixture can leave them empty (lesson 05, section 6).
"""

from __future__ import annotations

import torch
from torch import nn

from .config import ToyConfig
from .data import _rng


class Generator(nn.Module):
    """x = f(eps, k): an MLP from [eps | one_hot(k)] to 2, ``depth`` hidden layers of width ``hidden``, SiLU.

    ``components`` = 1 gives the plain generator x = f(eps) (no one-hot block).
    """

    def __init__(self, noise_dim: int = 32, hidden: int = 256, depth: int = 3, out_dim: int = 2,
                 components: int = 1, component_scale: float = 5.0):
        super().__init__()
        if components < 1:
            raise ValueError(f"components must be at least 1, got {components}")
        self.noise_dim, self.components = noise_dim, components
        layers, width = [], noise_dim + (components if components > 1 else 0)
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)
        if components > 1:
            with torch.no_grad():
                self.net[0].weight[:, noise_dim:].normal_(0.0, component_scale)

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        return self.net(noise)

    def noise(self, n: int, rng: torch.Generator) -> torch.Tensor:
        """n draws of the generator's input: eps (n x noise_dim), then one_hot(k) (n x components) if K > 1."""
        eps = torch.randn(n, self.noise_dim, generator=rng)
        if self.components == 1:
            return eps
        k = torch.randint(0, self.components, (n,), generator=rng)
        return torch.cat([eps, nn.functional.one_hot(k, self.components).to(eps.dtype)], dim=1)

    def sample(self, n: int, seed: int) -> torch.Tensor:
        """n samples from seeded noise, without a graph."""
        with torch.no_grad():
            return self(self.noise(n, _rng(seed)))


def make_generator(cfg: ToyConfig) -> Generator:
    """A seeded generator. With ``init="collapsed"`` the last layer is shrunk 1000x and its bias set to
    ``collapse_at``: every sample starts (almost) on one point, e.g. one mode of the eight Gaussians."""
    torch.manual_seed(cfg.seed)
    generator = Generator(cfg.noise_dim, cfg.hidden, cfg.depth, components=cfg.components,
                          component_scale=cfg.component_scale)
    if cfg.init == "collapsed":
        last = generator.net[-1]
        with torch.no_grad():
            last.weight.mul_(1e-3)
            last.bias.copy_(torch.tensor(cfg.collapse_at))
    return generator
