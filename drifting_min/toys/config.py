"""Every knob of a toy run, in one dataclass. The command's options are made from its fields (``drifting_min.cli``),
so a setting is written once: its default, type and help text here, and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..cli import setting
from ..drift import Normalisation
from .data import DATASETS


@dataclass
class ToyConfig:
    """Every knob of a toy run. The defaults train in 30-45 s on one CPU thread (machines differ); over seeds 0-2 their
    medians reach precision >= 0.96, at most 3% of the samples off the support (8.7% on the checkerboard) and
    0.7-1x the noise floor, depending on the toy (docs/results.md)."""

    dataset: str = setting("checkerboard", "the toy distribution", choices=DATASETS)
    steps: int = setting(3000, "training steps")
    batch_gen: int = setting(256, "generated samples a step, N (they are also the negatives)")
    batch_data: int = setting(256, "data samples a step, M (the positives)")
    taus: tuple[float, ...] = setting((0.02, 0.05, 0.2, 1.0), "temperatures of the field")
    kernel: Literal["laplace", "gaussian"] = setting(
        "laplace", "kernel of the field: laplace exp(-|x - y| / tau), gaussian exp(-|x - y|^2 / (2 tau^2))")
    normalisation: Normalisation = setting("double", "batch normalisation of the kernel weights (drifting_min.drift)")
    tau_anneal: float = setting(1.0, "start every temperature this many times larger and shrink it exponentially to "
                                "its value at the last step, tau(t) = tau a^(1 - t / T) (1: constant temperatures)")
    normalise_each: bool = setting(True, "divide each temperature's field by its root mean square before summing")
    attraction_only: bool = setting(False, "V = V+ only, no repulsion: the ablation that collapses")
    lr: float = setting(2e-3, "Adam learning rate at the first step")
    lr_final: float = setting(1e-4, "learning rate at the last step (cosine decay from lr)")
    noise_dim: int = setting(32, "dimension of the generator's Gaussian noise")
    components: int = setting(256, "K: the generator's noise also holds a component drawn uniformly from K, fed as "
                              "a one-hot vector (1: Gaussian noise only)")
    component_scale: float = setting(5.0, "std of each component's learned first-layer offset at the start")
    hidden: int = setting(256, "width of the MLP's hidden layers")
    depth: int = setting(3, "number of hidden layers")
    init: Literal["default", "collapsed"] = setting("default", "collapsed: every sample starts at collapse_at")
    collapse_at: tuple[float, float] = setting((2.0, 0.0), "the point of the collapsed start")
    seed: int = setting(0, "seed of the generator's weights, noise and data")
    ema: float = setting(0.995, "decay of an exponential moving average of the generator's weights, used for "
                         "sampling and evaluation (0: the last weights)")

    def __post_init__(self):
        self.taus = tuple(float(t) for t in self.taus)
        self.collapse_at = tuple(float(c) for c in self.collapse_at)
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; choose one of {sorted(DATASETS)}")
        if self.init not in ("default", "collapsed"):
            raise ValueError(f"unknown init {self.init!r}; choose default or collapsed")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ema is a decay in [0, 1), got {self.ema}")
        if not self.tau_anneal >= 1.0:
            raise ValueError(f"tau_anneal is a factor >= 1 (1: no annealing), got {self.tau_anneal}")
        if self.components < 1:
            raise ValueError(f"components must be at least 1, got {self.components}")
        if self.steps < 0 or self.batch_gen < 2 or self.batch_data < 1 or not self.taus:
            raise ValueError("steps >= 0, batch_gen >= 2, batch_data >= 1 and at least one temperature are needed")


# The authors' demo (REFERENCE.md): 2,000 steps of 2,048 + 2,048 samples, one raw temperature 0.05, Adam 1e-3.
# Their generator is a plain MLP of Gaussian noise, without weight averaging.
PUBLISHED_DEMO = dict(steps=2000, batch_gen=2048, batch_data=2048, taus=(0.05,), normalise_each=False, lr_final=1e-3,
                      components=1, ema=0.0)
