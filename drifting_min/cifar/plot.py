"""Curves of a run's log (``log.jsonl``): the batch's energy distance in the encoder's features (the progress
measure) beside the loss, raw |V|^2 per temperature beside its level between two real batches, learning rate,
throughput, FID.

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
    real = next((ln["real_vs_real"] for ln in lines if "real_vs_real" in ln), {})  # the levels of a perfect fit
    x = [ln["step"] for ln in steps]
    if steps and "energy" in steps[0]:
        ax_loss.plot(x, [ln["energy"] for ln in steps], color="C0")
        ax_loss.axhline(real.get("energy", 0.0), color="C0", ls="--", lw=1)
        ax_loss.set_ylabel("relative energy distance", color="C0")
        ax_loss.set_title("progress: energy distance of each batch in the encoder's features\n(dashed: two real "
                          "batches); loss in grey (normalised: not a progress measure)", fontsize=10)
        ax_loss = ax_loss.twinx()
    ax_loss.plot(x, [ln["loss"] for ln in steps], color="0.6", lw=1)
    ax_loss.set_ylabel("loss", color="0.4")
    for i in range(len(steps[0]["raw_drift_sq"]) if steps else 0):
        name = f"tau = {taus[i]}" if taus and i < len(taus) else f"temperature {i}"
        ax_raw.plot(x, [ln["raw_drift_sq"][i] for ln in steps], label=name, color=f"C{i}")
        if "raw_drift_sq" in real:
            ax_raw.axhline(real["raw_drift_sq"][i], color=f"C{i}", ls="--", lw=1)
    ax_raw.set_yscale("log")
    ax_raw.set_title("raw mean square drift before normalisation, summed over\nfeatures (dashed: two real batches)",
                     fontsize=10)
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
