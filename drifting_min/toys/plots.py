"""Figures for the 2D toys: data, samples, the drift field as a quiver plot, training frames.

Only the command, the lessons and the site import this module (it needs matplotlib); no other module of the
toys package imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from .data import sample_data
from .field import field_on_grid


def _axes_style(ax, title: str, lim: float) -> None:
    ax.set_title(title)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")


def draw_field(ax, samples: torch.Tensor, data: torch.Tensor, taus: Sequence[float], kernel: str, lim: float = 2.5,
               n: int = 21, title: str = "drift field V") -> None:
    """Samples (orange), data (grey) and the field of ``field_on_grid`` as arrows (one length scale)."""
    points, v = field_on_grid(samples.double(), data.double(), taus, kernel, lim, n)
    ax.scatter(*data.T, s=2, c="0.7", label="data $y^+$")
    ax.scatter(*samples.T, s=2, c="tab:orange", label="generated $x$")
    ax.quiver(*points.T, *v.T, color="tab:blue", angles="xy", scale_units="xy", scale=2.5 * n / lim, width=0.004)
    _axes_style(ax, title, lim)
    ax.legend(loc="upper right", fontsize=7, markerscale=3)


def plot_run(run, path: Path, lim: float = 2.5) -> None:
    """Three panels: the data, the generated samples (with the metrics), and the drift field at the end."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cfg = run.config
    data = sample_data(cfg.dataset, 2000, seed=1)
    samples = run.generator.sample(2000, seed=2)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.4))
    axes[0].scatter(*data.T, s=2, c="0.3")
    _axes_style(axes[0], f"data: {cfg.dataset}", lim)
    axes[1].scatter(*samples.T, s=2, c="tab:orange")
    m = {k: run.metrics.get(k, float("nan")) for k in ("floor_ratio", "precision", "off_support")}
    _axes_style(axes[1], f"generated after {cfg.steps} steps: {m['floor_ratio']:.2f} x noise floor,\n"
                f"precision {m['precision']:.2f}, {100 * m['off_support']:.1f}% off the support", lim)
    draw_field(axes[2], samples[:1000], data[:1000], cfg.taus, cfg.kernel, lim,
               title=f"drift field, taus = {', '.join(f'{t:g}' for t in cfg.taus)}")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_frames(ax_row, frames, data: torch.Tensor, lim: float = 2.5, taus=(0.02, 0.05, 0.2), kernel="laplace",
                field: bool = True) -> None:
    """One panel per (step, samples) frame: samples over the data, with the field as arrows when ``field``."""
    for ax, (step, samples) in zip(ax_row, frames):
        if field:
            draw_field(ax, samples, data, taus, kernel, lim, n=15, title=f"step {step}")
            ax.get_legend().remove()
        else:
            ax.scatter(*data.T, s=2, c="0.7")
            ax.scatter(*samples.T, s=2, c="tab:orange")
            _axes_style(ax, f"step {step}", lim)
