"""Drifting on 2D toys: data, a generator, a training loop, a command.

A generator x = f(eps), eps ~ N(0, I_32), is an MLP. Each step draws N generated samples x and M data
samples y+, computes the drift field V at x (the generated batch is its own set of negatives) and takes a
gradient step on the drift loss

    L = (1/N) sum_i |x_i - stopgrad(x_i + V_i)|^2,        dL/dx_i = -2 V_i / N,

so the generator's outputs move along V. The field is drifting_min's: several temperatures, each
normalised to unit mean square and summed (``multi_temperature_drift``), or, for the ablations, one
temperature, another kernel, another normalisation, attraction only.

    python -m drifting_min.toys --dataset checkerboard --out outputs/demo     # train, draw, print metrics
    python -m drifting_min.toys ablations --out lessons/05/ablations.json     # the lesson's ablation table

The last line printed by a training run is its metrics as JSON (see ``drifting_min.metrics``: the headline
is ``floor_ratio``, the energy distance to data over the noise floor). ``torch.set_num_threads`` is left to
the caller (the command has ``--threads``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import torch
from torch import nn

from .drift import drift_field, mean_shift, multi_temperature_drift
from .loss import drift_regression_loss
from .metrics import quality

# ------------------------------------------------------------------------------------------------ data


def _rng(seed: int) -> torch.Generator:
    """A seeded random-number generator (not to be confused with the ``Generator`` network)."""
    return torch.Generator().manual_seed(int(seed))


def eight_gaussians(n: int, seed: int) -> torch.Tensor:
    """Eight isotropic Gaussians, std 0.05, centred on the circle of radius 2 at angles k pi / 4."""
    rng = _rng(seed)
    k = torch.randint(0, 8, (n,), generator=rng)
    return eight_gaussian_centres()[k] + 0.05 * torch.randn(n, 2, generator=rng)


def eight_gaussian_centres() -> torch.Tensor:
    angles = torch.arange(8) * (math.pi / 4)
    return 2.0 * torch.stack([angles.cos(), angles.sin()], dim=1)


def checkerboard(n: int, seed: int) -> torch.Tensor:
    """Uniform on the 8 dark cells of a 4 x 4 board covering [-2, 2]^2."""
    rng = _rng(seed)
    col = torch.randint(0, 4, (n,), generator=rng)
    row = 2 * torch.randint(0, 2, (n,), generator=rng) + (col % 2)  # rows of the same parity as the column
    cell = torch.stack([col, row], dim=1).float()
    return cell + torch.rand(n, 2, generator=rng) - 2.0


def swiss_roll(n: int, seed: int) -> torch.Tensor:
    """The 2D swiss roll (t cos t, t sin t) / 7 with t = 1.5 pi (1 + 2u), plus N(0, 0.05^2) noise."""
    rng = _rng(seed)
    t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=rng))
    return torch.stack([t * t.cos(), t * t.sin()], dim=1) / 7.0 + 0.05 * torch.randn(n, 2, generator=rng)


def two_moons(n: int, seed: int) -> torch.Tensor:
    """Two interleaved half circles (radius 1, scaled by 1.5), plus N(0, 0.05^2) noise."""
    rng = _rng(seed)
    theta = math.pi * torch.rand(n, generator=rng)
    lower = torch.rand(n, generator=rng) < 0.5
    upper_pt = torch.stack([theta.cos(), theta.sin()], dim=1)
    lower_pt = torch.stack([1 - theta.cos(), 0.5 - theta.sin()], dim=1)
    pts = torch.where(lower[:, None], lower_pt, upper_pt) - torch.tensor([0.5, 0.25])
    return 1.5 * pts + 0.05 * torch.randn(n, 2, generator=rng)


def rings(n: int, seed: int) -> torch.Tensor:
    """Three concentric circles of radii 0.5, 1.25 and 2 (samples in proportion to length), N(0, 0.05^2) noise."""
    rng = _rng(seed)
    radii = torch.tensor([0.5, 1.25, 2.0])
    ring = torch.multinomial(radii / radii.sum(), n, replacement=True, generator=rng)
    angle = 2 * math.pi * torch.rand(n, generator=rng)
    pts = radii[ring, None] * torch.stack([angle.cos(), angle.sin()], dim=1)
    return pts + 0.05 * torch.randn(n, 2, generator=rng)


@dataclass(frozen=True)
class Dataset:
    """A toy distribution: a seeded sampler ``sample(n, seed) -> n x 2``; mixtures also give their modes."""

    sample: Callable[[int, int], torch.Tensor]
    centres: Callable[[], torch.Tensor] | None = None
    std: float = 0.0


DATASETS = {
    "eight_gaussians": Dataset(eight_gaussians, eight_gaussian_centres, 0.05),
    "checkerboard": Dataset(checkerboard),
    "swiss_roll": Dataset(swiss_roll),
    "two_moons": Dataset(two_moons),
    "rings": Dataset(rings),
}


def sample_data(dataset: str, n: int, seed: int) -> torch.Tensor:
    """n samples (float32, n x 2) of a named toy; the same seed gives the same samples."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[dataset].sample(n, seed).float()


# ------------------------------------------------------------------------------------------------ model


@dataclass
class ToyConfig:
    """Every knob of a toy run. The defaults reach the noise floor on every toy in under 30 s on two cores."""

    dataset: str = "checkerboard"
    steps: int = 3000
    batch_gen: int = 256  # N generated samples a step (also the negatives)
    batch_data: int = 256  # M data samples a step (the positives)
    taus: tuple[float, ...] = (0.02, 0.05, 0.2)
    kernel: str = "laplace"  # "laplace" exp(-|x - y| / tau) or "gaussian" exp(-|x - y|^2 / (2 tau^2))
    normalisation: str = "double"  # "double", "targets" or "uncoupled" (see drifting_min.drift)
    normalise_each: bool = True  # divide each temperature's field by its root mean square before summing
    attraction_only: bool = False  # V = V+ only (no repulsion): the ablation that collapses
    lr: float = 2e-3
    lr_final: float = 1e-4  # cosine decay of the learning rate from lr to lr_final
    noise_dim: int = 32
    hidden: int = 256
    depth: int = 3  # hidden layers
    init: str = "default"  # "default" or "collapsed" (every output starts at one point: ``collapse_at``)
    collapse_at: tuple[float, float] = (2.0, 0.0)
    seed: int = 0

    def __post_init__(self):
        self.taus = tuple(float(t) for t in self.taus)
        if self.dataset not in DATASETS:
            raise ValueError(f"unknown dataset {self.dataset!r}; choose one of {sorted(DATASETS)}")
        if self.init not in ("default", "collapsed"):
            raise ValueError(f"unknown init {self.init!r}; choose default or collapsed")
        if self.steps < 0 or self.batch_gen < 2 or self.batch_data < 1 or not self.taus:
            raise ValueError("steps >= 0, batch_gen >= 2, batch_data >= 1 and at least one temperature are needed")


# The authors' demo (REFERENCE.md): 2,000 steps of 2,048 + 2,048 samples, one raw temperature 0.05, Adam 1e-3.
PUBLISHED_DEMO = dict(steps=2000, batch_gen=2048, batch_data=2048, taus=(0.05,), normalise_each=False, lr_final=1e-3)


class Generator(nn.Module):
    """x = f(eps): an MLP from noise_dim to 2, ``depth`` hidden layers of width ``hidden``, SiLU."""

    def __init__(self, noise_dim: int = 32, hidden: int = 256, depth: int = 3, out_dim: int = 2):
        super().__init__()
        layers, width = [], noise_dim
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, out_dim))
        self.net = nn.Sequential(*layers)
        self.noise_dim = noise_dim

    def forward(self, eps: torch.Tensor) -> torch.Tensor:
        return self.net(eps)

    def sample(self, n: int, seed: int) -> torch.Tensor:
        """n samples from seeded noise, without a graph."""
        with torch.no_grad():
            return self(torch.randn(n, self.noise_dim, generator=_rng(seed)))


def make_generator(cfg: ToyConfig) -> Generator:
    """A seeded generator. With ``init="collapsed"`` the last layer is shrunk 1000x and its bias set to
    ``collapse_at``: every sample starts (almost) on one point, e.g. one mode of the eight Gaussians."""
    torch.manual_seed(cfg.seed)
    generator = Generator(cfg.noise_dim, cfg.hidden, cfg.depth)
    if cfg.init == "collapsed":
        last = generator.net[-1]
        with torch.no_grad():
            last.weight.mul_(1e-3)
            last.bias.copy_(torch.tensor(cfg.collapse_at))
    return generator


# ------------------------------------------------------------------------------------------------ training


def toy_drift_field(x: torch.Tensor, y_pos: torch.Tensor, cfg: ToyConfig) -> tuple[torch.Tensor, list[float]]:
    """The field V at the generated samples x (N x 2), with the config's kernel, temperatures, normalisation.

    Default: V = sum_tau V_tau / rms(V_tau) with the batch field (x its own negatives, self-masked).
    ``attraction_only``: V = sum_tau V+_tau / rms(V+_tau), V+ = sum_j k~(x, y+_j) (y+_j - x) (nothing repels).
    Returns V and each temperature's raw (1/N) sum_i |V_tau,i|^2.
    """
    if not cfg.attraction_only:
        return multi_temperature_drift(x, y_pos, None, cfg.taus, cfg.kernel, cfg.normalisation, cfg.normalise_each)
    total, raw = torch.zeros_like(x), []
    for tau in cfg.taus:
        v = mean_shift(x, y_pos, tau, cfg.kernel).to(x.dtype)
        raw.append(float(v.square().sum(1).mean()))
        total = total + (v / v.square().mean().sqrt().clamp_min(1e-12) if cfg.normalise_each else v)
    return total, raw


def train_step(
    generator: nn.Module, optimizer: torch.optim.Optimizer, noise: torch.Tensor, y_pos: torch.Tensor, cfg: ToyConfig
) -> tuple[float, list[float]]:
    """One step: x = f(eps); V = toy_drift_field(x, y+) with no graph; L = (1/N) sum |x - stopgrad(x + V)|^2; Adam step.

    Returns the loss before the step and the raw per-temperature (1/N) sum |V_tau|^2. With normalised fields the
    loss stays near a constant (exactly D for one temperature, at most len(taus)^2 D), so the raw numbers are
    the ones to watch.
    """
    optimizer.zero_grad(set_to_none=True)
    x = generator(noise)
    with torch.no_grad():
        v, raw = toy_drift_field(x, y_pos, cfg)
    loss = drift_regression_loss(x, v)
    loss.backward()
    optimizer.step()
    return float(loss.detach()), raw


def learning_rate(step: int, cfg: ToyConfig) -> float:
    """Cosine decay from lr (step 0) to lr_final (last step): lr_final + (lr - lr_final)(1 + cos(pi t)) / 2."""
    t = step / max(cfg.steps - 1, 1)
    return cfg.lr_final + 0.5 * (cfg.lr - cfg.lr_final) * (1 + math.cos(math.pi * t))


@dataclass
class Run:
    """What a training run leaves: the generator, a log, snapshots of samples, the metrics, the time."""

    generator: Generator
    config: ToyConfig
    log: list[dict] = field(default_factory=list)
    frames: list[tuple[int, torch.Tensor]] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    seconds: float = 0.0


def train(
    cfg: ToyConfig,
    *,
    progress: bool = True,
    frames_at: Iterable[int] = (),
    frame_size: int = 1000,
    log_every: int = 50,
    evaluate: bool = True,
) -> Run:
    """Train a generator on ``cfg.dataset``; step t uses data seed cfg.seed * 1_000_003 + t and fresh noise.

    ``frames_at``: steps at which to keep ``frame_size`` samples from fixed noise (step 0 is before training,
    ``cfg.steps`` after the last step). ``seconds`` counts the training loop only (not the evaluation).
    """
    from tqdm.auto import tqdm

    generator = make_generator(cfg)
    opt = torch.optim.Adam(generator.parameters(), lr=cfg.lr)
    run = Run(generator, cfg)
    frames_at = set(frames_at)
    noise_rng = _rng(cfg.seed + 7)
    frame_noise = torch.randn(frame_size, cfg.noise_dim, generator=_rng(cfg.seed + 11))

    def keep_frame(step):
        if step in frames_at:
            with torch.no_grad():
                run.frames.append((step, generator(frame_noise).clone()))

    start = time.perf_counter()
    keep_frame(0)
    bar = tqdm(range(cfg.steps), desc=f"{cfg.dataset}", disable=not progress, leave=False, mininterval=0.5)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, cfg)
        y_pos = sample_data(cfg.dataset, cfg.batch_data, seed=cfg.seed * 1_000_003 + step)
        noise = torch.randn(cfg.batch_gen, cfg.noise_dim, generator=noise_rng)
        loss, raw = train_step(generator, opt, noise, y_pos, cfg)
        if step % log_every == 0 or step == cfg.steps - 1:
            run.log.append({"step": step, "loss": loss, "raw_drift_sq": raw})
            bar.set_postfix(loss=f"{loss:.3g}", raw=f"{sum(raw):.2e}")
        keep_frame(step + 1)
    run.seconds = time.perf_counter() - start
    if evaluate:
        run.metrics = quality(generator.sample, cfg.dataset)
    return run


# ------------------------------------------------------------------------------------------------ the field on a grid


def field_on_grid(
    samples: torch.Tensor,
    data: torch.Tensor,
    taus: Sequence[float] = (0.02, 0.05, 0.2),
    kernel: str = "laplace",
    lim: float = 2.5,
    n: int = 21,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The drift field on an n x n grid over [-lim, lim]^2: the arrays behind a quiver plot.

    At a grid point g (not itself a generated sample), the field is the population form for each temperature,
    V_tau(g) = sum_j k~(g, y+_j)(y+_j - g) - sum_j k~(g, x_j)(x_j - g), with data y+ and generated samples x as
    the negatives, and the temperatures are summed after dividing each by its root mean square over the grid.
    The batch form's softmax over queries would couple the grid points to one another, so it is not used here.

    Returns (points, V), both n^2 x 2, points in row-major order (y outer, x inner, as ``torch.meshgrid(...,
    indexing="xy")``).
    """
    axis = torch.linspace(-lim, lim, n, dtype=samples.dtype)
    gx, gy = torch.meshgrid(axis, axis, indexing="xy")
    points = torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)
    total = torch.zeros_like(points)
    for tau in taus:
        v = drift_field(points, data.to(points.dtype), samples.detach(), tau, kernel).to(points.dtype)
        total = total + v / v.square().mean().sqrt().clamp_min(1e-12)
    return points, total


# ------------------------------------------------------------------------------------------------ ablations


def ablation(base: ToyConfig, **change) -> dict:
    """Train ``base`` and ``base`` with ``change`` applied; return {"base": metrics, "variant": metrics}."""
    variant = dataclasses.replace(base, **change)
    return {"base": train(base, progress=False).metrics, "variant": train(variant, progress=False).metrics}


# Each entry: (group, label, dataset, changes from the defaults). One default run per dataset is shared.
ABLATIONS: list[tuple[str, str, str, dict]] = [
    ("kernel", "Laplace (default)", "checkerboard", {}),
    ("kernel", "Gaussian", "checkerboard", {"kernel": "gaussian"}),
    ("temperature", "tau = 0.02 only", "checkerboard", {"taus": (0.02,)}),
    ("temperature", "tau = 0.05 only", "checkerboard", {"taus": (0.05,)}),
    ("temperature", "tau = 0.2 only", "checkerboard", {"taus": (0.2,)}),
    ("temperature", "tau = 0.5 only", "checkerboard", {"taus": (0.5,)}),
    ("temperature", "0.02 + 0.05 + 0.2 (default)", "checkerboard", {}),
    ("normalisation", "double softmax (default)", "checkerboard", {}),
    ("normalisation", "targets only", "checkerboard", {"normalisation": "targets"}),
    ("normalisation", "uncoupled V+ - V-", "checkerboard", {"normalisation": "uncoupled"}),
    ("anti-symmetry", "V = V+ - V- (default)", "eight_gaussians", {}),
    ("anti-symmetry", "attraction only", "eight_gaussians", {"attraction_only": True}),
    ("collapsed start", "default start", "eight_gaussians", {}),
    ("collapsed start", "collapsed on one mode", "eight_gaussians", {"init": "collapsed"}),
    ("collapsed start", "collapsed, one raw tau = 0.05", "eight_gaussians", {"init": "collapsed", "taus": (0.05,), "normalise_each": False}),
    ("batch size", "N = M = 32", "checkerboard", {"batch_gen": 32, "batch_data": 32}),
    ("batch size", "N = M = 64", "checkerboard", {"batch_gen": 64, "batch_data": 64}),
    ("batch size", "N = M = 128", "checkerboard", {"batch_gen": 128, "batch_data": 128}),
    ("batch size", "N = M = 256 (default)", "checkerboard", {}),
    ("batch size", "N = M = 512", "checkerboard", {"batch_gen": 512, "batch_data": 512}),
]


def run_ablations(out: Path, keep: int = 600, progress: bool = True) -> dict:
    """Train every entry of ``ABLATIONS`` (identical configs once), write metrics and ``keep`` samples as JSON."""
    cache, rows = {}, []
    for group, label, dataset, change in ABLATIONS:
        cfg = dataclasses.replace(ToyConfig(dataset=dataset), **change)
        key = json.dumps(dataclasses.asdict(cfg), sort_keys=True)
        if key not in cache:
            run = train(cfg, progress=False)
            cache[key] = {
                "metrics": {k: round(v, 4) if isinstance(v, float) else v for k, v in run.metrics.items()},
                "seconds": round(run.seconds, 1),
                "samples": [[round(float(a), 3), round(float(b), 3)] for a, b in run.generator.sample(keep, 1)],
            }
            if progress:
                print(f"{group:>16} | {label:<30} | {dataset:<15} | ratio {run.metrics['floor_ratio']:9.2f} | "
                      f"{run.seconds:5.1f} s", file=sys.stderr)
        rows.append({"group": group, "label": label, "dataset": dataset, "change": _jsonable(change), **cache[key]})
    result = {
        "command": "python -m drifting_min.toys ablations --out " + str(out),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "defaults": _jsonable(dataclasses.asdict(ToyConfig())),
        "rows": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=None, separators=(",", ":")) + "\n")
    return result


def _jsonable(d: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


# ------------------------------------------------------------------------------------------------ command


def _parser() -> argparse.ArgumentParser:
    d = ToyConfig()
    p = argparse.ArgumentParser(
        prog="python -m drifting_min.toys",
        description="Train a drifting generator on a 2D toy, draw data, samples and the drift field, and print "
        "the metrics as JSON on the last line (floor_ratio: energy distance to data over the noise floor). "
        "`ablations` instead trains the lesson-05 ablations and writes their metrics and samples as JSON.",
    )
    p.add_argument("command", nargs="?", default="train", choices=["train", "ablations"],
                   help="train one toy (default) or run the ablation table")
    p.add_argument("--dataset", default=d.dataset, choices=sorted(DATASETS), help="the toy distribution")
    p.add_argument("--out", default=None,
                   help="train: folder for the figure DATASET.png (default: no figure); ablations: the JSON file "
                   "(default lessons/05/ablations.json)")
    p.add_argument("--steps", type=int, default=d.steps, help="training steps")
    p.add_argument("--batch-gen", type=int, default=d.batch_gen, help="generated samples (negatives) a step, N")
    p.add_argument("--batch-data", type=int, default=d.batch_data, help="data samples (positives) a step, M")
    p.add_argument("--taus", type=float, nargs="+", default=list(d.taus), help="temperatures")
    p.add_argument("--kernel", default=d.kernel, choices=["laplace", "gaussian"], help="kernel of the field")
    p.add_argument("--normalisation", default=d.normalisation, choices=["double", "targets", "uncoupled"],
                   help="batch normalisation of the kernel weights")
    p.add_argument("--no-normalise-each", action="store_true",
                   help="sum the raw per-temperature fields instead of dividing each by its RMS")
    p.add_argument("--attraction-only", action="store_true", help="drop the repulsion: V = V+ (collapses)")
    p.add_argument("--lr", type=float, default=d.lr, help="Adam learning rate at the start")
    p.add_argument("--lr-final", type=float, default=d.lr_final, help="learning rate at the end (cosine decay)")
    p.add_argument("--noise-dim", type=int, default=d.noise_dim, help="dimension of the generator's noise")
    p.add_argument("--hidden", type=int, default=d.hidden, help="width of the MLP's hidden layers")
    p.add_argument("--depth", type=int, default=d.depth, help="number of hidden layers")
    p.add_argument("--init", default=d.init, choices=["default", "collapsed"],
                   help="collapsed: every sample starts at --collapse-at")
    p.add_argument("--collapse-at", type=float, nargs=2, default=list(d.collapse_at), help="the collapsed start")
    p.add_argument("--published", action="store_true",
                   help="the authors' demo settings (2,000 steps, 2,048 + 2,048, one raw tau 0.05, constant lr)")
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the generator's weights, noise and data")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's choice)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def config_from_args(args: argparse.Namespace) -> ToyConfig:
    cfg = ToyConfig(
        dataset=args.dataset, steps=args.steps, batch_gen=args.batch_gen, batch_data=args.batch_data,
        taus=tuple(args.taus), kernel=args.kernel, normalisation=args.normalisation,
        normalise_each=not args.no_normalise_each, attraction_only=args.attraction_only, lr=args.lr,
        lr_final=args.lr_final, noise_dim=args.noise_dim, hidden=args.hidden, depth=args.depth, init=args.init,
        collapse_at=tuple(args.collapse_at), seed=args.seed,
    )
    return dataclasses.replace(cfg, **PUBLISHED_DEMO) if args.published else cfg


def main(argv: list[str] | None = None) -> dict:
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.command == "ablations":
        return run_ablations(Path(args.out or "lessons/05/ablations.json"), progress=not args.quiet)
    cfg = config_from_args(args)
    run = train(cfg, progress=not args.quiet)
    metrics = {"dataset": cfg.dataset, **run.metrics, "train_seconds": round(run.seconds, 2), "steps": cfg.steps}
    if args.out:
        from .plots import plot_run

        path = Path(args.out) / f"{cfg.dataset}.png"
        plot_run(run, path)
        print(f"wrote {path}", file=sys.stderr)
    print(json.dumps(metrics))
    return metrics


if __name__ == "__main__":
    main()
