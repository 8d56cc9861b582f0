"""Drifting on 2D toys: data, a generator, training, metrics, ablations and a command, one module each.

Imports run one way, each module using only those above it:

    data        the toy distributions, seeded samplers (``sample_data``, ``DATASETS``)
    config      ``ToyConfig``, every knob of a run (the command's options are made from it)
    model       the MLP ``Generator``, x = f(eps, k): Gaussian noise and one of K components
    metrics     the protocol (``quality``): energy distance over its noise floor, kNN precision and recall,
                share off the support
    training    the field at the generated samples, one step, the loop (``train``)
    field       the drift field on a grid, for quiver plots
    ablations   the lesson-05 ablation table
    command     ``python -m drifting_min.toys``
    plots       figures (matplotlib); imported by the command, the lessons and the site only

    python -m drifting_min.toys --dataset checkerboard --out outputs/demo     # train, draw, print metrics
    python -m drifting_min.toys ablations --out lessons/05/ablations.json     # the lesson's ablation table
"""

from . import metrics
from .ablations import ABLATIONS, ablation, run_ablations
from .command import main
from .config import PUBLISHED_DEMO, ToyConfig
from .data import (
    DATASETS,
    Dataset,
    checkerboard,
    eight_gaussian_centres,
    eight_gaussians,
    rings,
    sample_data,
    swiss_roll,
    two_moons,
)
from .field import field_on_grid
from .model import Generator, make_generator
from .training import Run, annealed_taus, learning_rate, toy_drift_field, train, train_step

__all__ = [
    "ABLATIONS",
    "DATASETS",
    "PUBLISHED_DEMO",
    "Dataset",
    "Generator",
    "Run",
    "ToyConfig",
    "ablation",
    "annealed_taus",
    "checkerboard",
    "eight_gaussian_centres",
    "eight_gaussians",
    "field_on_grid",
    "learning_rate",
    "main",
    "make_generator",
    "metrics",
    "rings",
    "run_ablations",
    "sample_data",
    "swiss_roll",
    "toy_drift_field",
    "train",
    "train_step",
    "two_moons",
]
