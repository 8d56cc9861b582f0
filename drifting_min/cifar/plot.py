"""Curves of a run's log (``log.jsonl``): loss, raw |V|^2 per temperature, learning rate, throughput, FID.

The only module of the trainer that imports matplotlib.
"""

from __future__ import annotations

import json
from pathlib import Path


def read_log(run: str | Path) -> list[dict]:
    path = Path(run) / "log.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: no log to plot")
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def plot_log(run: str | Path, to: str | Path | None = None) -> Path:
    """Draw the curves into ``to`` (default ``RUN/curves.png``) and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = read_log(run)
    steps = [ln for ln in lines if "loss" in ln]
    fids = [ln for ln in lines if "fid" in ln]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
    x = [ln["step"] for ln in steps]
    axes[0].plot(x, [ln["loss"] for ln in steps])
    axes[0].set_title("loss (normalised: not a progress measure)")
    for i in range(len(steps[0]["raw_drift_sq"]) if steps else 0):
        axes[1].plot(x, [ln["raw_drift_sq"][i] for ln in steps], label=f"tau #{i}")
    axes[1].set_yscale("log")
    axes[1].set_title("raw mean |V|^2 before normalisation (sum over features)")
    if steps:
        axes[1].legend(fontsize=8)
    axes[2].plot(x, [ln["images_per_s"] for ln in steps], color="C2")
    axes[2].set_title("generated images / s")
    twin = axes[2].twinx()
    twin.plot(x, [ln["lr"] for ln in steps], color="C3", lw=1)
    twin.set_ylabel("learning rate", color="C3")
    axes[3].plot([ln["step"] for ln in fids], [ln["fid"] for ln in fids], "o-", color="C4")
    axes[3].set_title("FID" if fids else "FID (none measured yet: run the fid command)")
    for ax in axes:
        ax.set_xlabel("step")
    fig.tight_layout()
    out = Path(to) if to else Path(run) / "curves.png"
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return out
