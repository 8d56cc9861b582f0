"""How sharp can the field itself keep a toy? Particles started on the data, moved by the field alone.

No generator: 4,000 particles start as a draw of the data, and every step a random 256 of them take the step
x <- x + eta V(x), with V the toys' training field (``toy_drift_field``: the batch of 256 as its own negatives,
256 fresh data samples as positives, each temperature normalised to unit root mean square). At the data the field
should vanish; with finite batches it is sampling noise, and the normalisation keeps that noise at unit size. How
far the particles then drift off the support is the share off the support the field alone holds a perfect
generator to, per set of temperatures and step size. Scored by the toys' protocol (``metrics.quality``).

Which step size is the generator's? ``--generator-step`` trains the default generator (``toys.train``'s loop,
same seeds, weight average included) and measures, at every step, how far its outputs for that step's noise moved
along the field: eta = <x_after - x_before, V> / <V, V> (the step a particle would have taken), and the same for
the averaged weights; it prints the median over each third of the training.

Usage: python bench/diagnose_field_noise.py [--dataset checkerboard] [--steps 4000] [--eta 0.003 0.01]
                                            [--taus "0.02 0.05 0.2 1" "0.02"] [--threads N] [--generator-step]
"""

from __future__ import annotations

import argparse
import copy
import statistics

import torch

from drifting_min import toys
from drifting_min.runtime import set_threads
from drifting_min.toys import metrics
from drifting_min.toys.data import _rng
from drifting_min.toys.model import make_generator
from drifting_min.toys.training import learning_rate, toy_drift_field, train_step

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


def generator_step_sizes(dataset: str) -> list[tuple[float, float]]:
    """(eta of the trained weights, eta of the averaged weights) at every step of ``toys.train``'s loop with the
    defaults: eta = <dx, V> / <V, V>, dx the move of the outputs for that step's noise and V the field there."""
    cfg = toys.ToyConfig(dataset=dataset)
    generator = make_generator(cfg)
    averaged = copy.deepcopy(generator)
    opt = torch.optim.Adam(generator.parameters(), lr=cfg.lr)
    noise_rng = _rng(cfg.seed + 7)
    etas = []
    for step in range(cfg.steps):
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, cfg)
        y_pos = toys.sample_data(dataset, cfg.batch_data, seed=cfg.seed * 1_000_003 + step)
        noise = generator.noise(cfg.batch_gen, noise_rng)
        with torch.no_grad():
            x, x_avg = generator(noise), averaged(noise)
            v, _ = toy_drift_field(x, y_pos, cfg)
            v_avg, _ = toy_drift_field(x_avg, y_pos, cfg)
        train_step(generator, opt, noise, y_pos, cfg)  # the same field (same x, same y+), then the Adam step
        with torch.no_grad():
            for p_avg, p in zip(averaged.parameters(), generator.parameters()):
                p_avg.lerp_(p, 1.0 - cfg.ema)
            dx, dx_avg = generator(noise) - x, averaged(noise) - x_avg
        etas.append((float((dx * v).sum() / v.square().sum()), float((dx_avg * v_avg).sum() / v_avg.square().sum())))
    return etas


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="checkerboard", choices=sorted(toys.DATASETS))
    parser.add_argument("--steps", type=int, default=4000, help="field steps (each moves 256 of the 4,000)")
    parser.add_argument("--eta", type=float, nargs="+", default=[0.003, 0.01], help="step sizes")
    parser.add_argument("--taus", nargs="+", default=["0.02 0.05 0.2 1", "0.02 0.05 0.2", "0.02"],
                        help="sets of temperatures, each one quoted string")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--generator-step", action="store_true",
                        help="measure the default generator's step along the field instead")
    args = parser.parse_args()
    set_threads(args.threads)
    if args.generator_step:
        etas = generator_step_sizes(args.dataset)
        third = len(etas) // 3
        print(f"{args.dataset}: the generator's step along the field, eta = <dx, V> / <V, V>, median per third")
        for k, name in enumerate(("first", "second", "last")):
            part = etas[k * third:(k + 1) * third]
            print(f"  {name} third of the steps: trained weights {statistics.median(e for e, _ in part):.2e}, "
                  f"averaged weights {statistics.median(e for _, e in part):.2e}")
        return
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
