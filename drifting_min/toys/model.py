"""The toy generator: an MLP from noise to the plane, x = f(eps, k).

The noise has two parts: a Gaussian eps ~ N(0, I_noise_dim) and, with ``components`` = K > 1, a component index
k drawn uniformly from {0, ..., K - 1}. The first layer computes W eps + b + c_k, where the offset c_k (drawn
N(0, component_scale^2) per entry at the start, then learned) shifts every hidden unit by the component's own
amount: the same as feeding a one-hot vector of k to the first layer, with c_k the weights that meet it, but
looked up instead of multiplied. Each component starts as a different function of eps, and the generator is a
mixture of K maps that share all other weights. A continuous map of one Gaussian must cover the gaps between the
modes or rings of a toy; a mixture can leave them empty (lesson 05, section 6).
"""

from __future__ import annotations

import torch
from torch import nn

from .config import ToyConfig
from .data import _rng


class Generator(nn.Module):
    """x = f(eps, k): an MLP of ``depth`` hidden layers of width ``hidden``, SiLU, with the offset c_k added to the
    first layer's pre-activations.

    Its input is one tensor, ``noise`` = [eps | k]: the noise_dim Gaussian coordinates, then (only when K > 1) one
    column holding the component's index k as a number. ``components`` = 1 gives the plain x = f(eps).
    """

    def __init__(self, noise_dim: int = 32, hidden: int = 256, depth: int = 3, out_dim: int = 2,
                 components: int = 1, component_scale: float = 5.0):
        super().__init__()
        if components < 1:
            raise ValueError(f"components must be at least 1, got {components}")
        self.noise_dim, self.components = noise_dim, components
        layers, width = [], noise_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)
        self.offsets = nn.Parameter(component_scale * torch.randn(components, hidden)) if components > 1 else None

    def forward(self, noise: torch.Tensor) -> torch.Tensor:
        if self.offsets is None:
            return self.net(noise)
        eps, k = noise[:, : self.noise_dim], noise[:, self.noise_dim].long()
        return self.net[1:](self.net[0](eps) + self.offsets[k])

    def noise(self, n: int, rng: torch.Generator) -> torch.Tensor:
        """n draws of the input [eps | k] (n x noise_dim, plus the index column when K > 1), in the weights' dtype."""
        eps = torch.randn(n, self.noise_dim, generator=rng, dtype=self.net[0].weight.dtype)
        if self.components == 1:
            return eps
        k = torch.randint(0, self.components, (n, 1), generator=rng)
        return torch.cat([eps, k.to(eps.dtype)], dim=1)

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
