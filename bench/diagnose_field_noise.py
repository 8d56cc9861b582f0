"""How sharp can the field itself keep a toy? Particles started on the data, moved by the field alone.

No generator: 4,000 particles start as a draw of the data, and every step a random 256 of them take the step
x <- x + eta V(x), with V the toys' training field (``toy_drift_field``: the batch of 256 as its own negatives,
256 fresh data samples as positives, each temperature normalised to unit root mean square). At the data the field
should vanish; with finite batches it is sampling noise, and the normalisation keeps that noise at unit size. How
far the particles then drift off the support is the share off the support the field alone holds a perfect
generator to, per set of temperatures and step size. Scored by the toys' protocol (``metrics.quality``).

Usage: python bench/diagnose_field_noise.py [--dataset checkerboard] [--steps 4000] [--eta 0.003 0.01]
                                            [--taus "0.02 0.05 0.2 1" "0.02"] [--threads N]
"""

from __future__ import annotations

import argparse

import torch

from drifting_min import toys
from drifting_min.runtime import set_threads
from drifting_min.toys import metrics
from drifting_min.toys.training import toy_drift_field

PARTICLES = 4000
BATCH = 256


def drift_particles(dataset: str, taus: tuple[float, ...], eta: float, steps: int, seed: int = 0) -> torch.Tensor:
    """PARTICLES particles started on a data draw, after ``steps`` field steps of size ``eta`` on random batches."""
    cfg = toys.ToyConfig(dataset=dataset, taus=taus)
    rng = torch.Generator().manual_seed(seed)
    x = toys.sample_data(dataset, PARTICLES, seed=50_000 + seed)
    for step in range(steps):
        idx = torch.randperm(PARTICLES, generator=rng)[:BATCH]
        y_pos = toys.sample_data(dataset, BATCH, seed=60_000 + step)
        v, _ = toy_drift_field(x[idx], y_pos, cfg)
        x[idx] += eta * v
    return x


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="checkerboard", choices=sorted(toys.DATASETS))
    parser.add_argument("--steps", type=int, default=4000, help="field steps (each moves 256 of the 4,000)")
    parser.add_argument("--eta", type=float, nargs="+", default=[0.003, 0.01], help="step sizes")
    parser.add_argument("--taus", nargs="+", default=["0.02 0.05 0.2 1", "0.02 0.05 0.2", "0.02"],
                        help="sets of temperatures, each one quoted string")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    set_threads(args.threads)
    start = metrics.quality(toys.sample_data(args.dataset, PARTICLES, seed=50_000), args.dataset)
    print(f"{args.dataset}: the start (a data draw) is {100 * start['off_support']:.1f}% off the support")
    print(f"{'temperatures':<18} {'eta':>6} {'floor_ratio':>11} {'precision':>9} {'recall':>6} {'off support':>11}")
    for taus_text in args.taus:
        taus = tuple(float(t) for t in taus_text.split())
        for eta in args.eta:
            m = metrics.quality(drift_particles(args.dataset, taus, eta, args.steps), args.dataset)
            print(f"{taus_text:<18} {eta:>6g} {m['floor_ratio']:>11.2f} {m['precision']:>9.3f} {m['recall']:>6.3f} "
                  f"{100 * m['off_support']:>10.1f}%", flush=True)


if __name__ == "__main__":
    main()
