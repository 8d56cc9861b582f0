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
    fids = [ln for ln in lines if "fid" in ln and ln.get("step") is not None]
    config = Path(run) / "config.json"
    taus = json.loads(config.read_text()).get("taus") if config.exists() else None
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    (ax_loss, ax_raw), (ax_speed, ax_fid) = axes
    x = [ln["step"] for ln in steps]
    ax_loss.plot(x, [ln["loss"] for ln in steps])
    ax_loss.set_title("loss (normalised drifts: not a progress measure)", fontsize=10)
    for i in range(len(steps[0]["raw_drift_sq"]) if steps else 0):
        name = f"tau = {taus[i]}" if taus and i < len(taus) else f"temperature {i}"
        ax_raw.plot(x, [ln["raw_drift_sq"][i] for ln in steps], label=name)
    ax_raw.set_yscale("log")
    ax_raw.set_title("raw mean square drift before normalisation\n(summed over features)", fontsize=10)
    if steps:
        ax_raw.legend(fontsize=8)
    ax_speed.plot(x, [ln["images_per_s"] for ln in steps], color="C2")
    ax_speed.set_ylabel("generated images / s", color="C2")
    ax_speed.set_title("throughput and learning rate", fontsize=10)
    twin = ax_speed.twinx()
    twin.plot(x, [ln["lr"] for ln in steps], color="C3", lw=1)
    twin.set_ylabel("learning rate", color="C3")
    ax_fid.plot([ln["step"] for ln in fids], [ln["fid"] for ln in fids], "o-", color="C4")
    counts = sorted({ln.get("n") for ln in fids})
    ax_fid.set_title(f"FID ({', '.join(map(str, counts))} samples)" if fids else
                     "FID (none measured yet: see the fid command)", fontsize=10)
    for ax in axes.flat:
        ax.set_xlabel("step")
    fig.tight_layout()
    out = Path(to) if to else Path(run) / "curves.png"
    fig.savefig(out, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return out
