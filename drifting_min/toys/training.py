"""Training a toy generator with the drift loss.

Each step draws N generated samples x = f(eps, k) (``model``) and M data samples y+, computes the drift field V
at x (the generated batch is its own set of negatives) and takes a gradient step on

    L = (1/N) sum_i |x_i - stopgrad(x_i + V_i)|^2,        dL/dx_i = -2 V_i / N,

so the generator's outputs move along V. The field is drifting_min's: several temperatures, each normalised
to unit mean square and summed (``multi_temperature_drift``), or, for the ablations, one temperature, another
kernel, another normalisation, attraction only. A finished run is scored by the protocol of ``metrics``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from ..drift import mean_shift, multi_temperature_drift
from ..loss import drift_regression_loss
from .config import ToyConfig
from .data import _rng, sample_data
from .metrics import quality
from .model import Generator, make_generator


def toy_drift_field(
    x: torch.Tensor, y_pos: torch.Tensor, cfg: ToyConfig, taus: tuple[float, ...] | None = None
) -> tuple[torch.Tensor, list[float]]:
    """The field V at the generated samples x (N x 2), with the config's kernel, temperatures (or ``taus``, the
    annealed ones of the step), normalisation.

    Default: V = sum_tau V_tau / rms(V_tau) with the batch field (x its own negatives, self-masked).
    ``attraction_only``: V = sum_tau V+_tau / rms(V+_tau), V+ = sum_j k~(x, y+_j) (y+_j - x) (nothing repels).
    Returns V and each temperature's raw (1/N) sum_i |V_tau,i|^2.
    """
    taus = cfg.taus if taus is None else taus
    if not cfg.attraction_only:
        return multi_temperature_drift(x, y_pos, None, taus, cfg.kernel, cfg.normalisation, cfg.normalise_each)
    total, raw = torch.zeros_like(x), []
    for tau in taus:
        v = mean_shift(x, y_pos, tau, cfg.kernel).to(x.dtype)
        raw.append(float(v.square().sum(1).mean()))
        total = total + (v / v.square().mean().sqrt().clamp_min(1e-12) if cfg.normalise_each else v)
    return total, raw


def train_step(
    generator: nn.Module,
    optimizer: torch.optim.Optimizer,
    noise: torch.Tensor,
    y_pos: torch.Tensor,
    cfg: ToyConfig,
    taus: tuple[float, ...] | None = None,
) -> tuple[float, list[float]]:
    """One step: x = f(noise); V = toy_drift_field(x, y+) without a graph; L = (1/N) sum |x - sg(x + V)|^2; Adam step.

    Returns the loss before the step and the raw per-temperature (1/N) sum |V_tau|^2. With normalised fields the
    loss stays near a constant (exactly D for one temperature, at most len(taus)^2 D), so the raw numbers are
    the ones to watch.
    """
    optimizer.zero_grad(set_to_none=True)
    x = generator(noise)
    with torch.no_grad():
        v, raw = toy_drift_field(x, y_pos, cfg, taus)
    loss = drift_regression_loss(x, v)
    loss.backward()
    optimizer.step()
    return float(loss.detach()), raw


def learning_rate(step: int, cfg: ToyConfig) -> float:
    """Cosine decay from lr (step 0) to lr_final (last step): lr_final + (lr - lr_final)(1 + cos(pi t)) / 2."""
    t = step / max(cfg.steps - 1, 1)
    return cfg.lr_final + 0.5 * (cfg.lr - cfg.lr_final) * (1 + math.cos(math.pi * t))


def annealed_taus(step: int, cfg: ToyConfig) -> tuple[float, ...]:
    """The temperatures at a step: tau(t) = tau a^(1 - t), t = step / (steps - 1), a = ``cfg.tau_anneal``.

    An exponential decay in time, tau(t) = tau_0 exp(-r t) with tau_0 = a tau and r = log a (the schedule of
    arXiv 2603.09936), that ends on the configured temperatures; a = 1 keeps them constant.
    """
    t = step / max(cfg.steps - 1, 1)
    return tuple(tau * cfg.tau_anneal ** (1.0 - t) for tau in cfg.taus)


@dataclass
class Run:
    """What a training run leaves: the generator (its EMA weights when ``config.ema`` > 0), a log, snapshots of
    samples, the metrics, the time."""

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
    With ``cfg.ema`` > 0 a copy of the weights follows w_ema <- ema w_ema + (1 - ema) w after every step; frames,
    the returned generator and the metrics use that copy.
    """
    from tqdm.auto import tqdm

    generator = make_generator(cfg)
    opt = torch.optim.Adam(generator.parameters(), lr=cfg.lr)
    shown = copy.deepcopy(generator) if cfg.ema > 0 else generator
    run = Run(shown, cfg)
    frames_at = set(frames_at)
    noise_rng = _rng(cfg.seed + 7)
    frame_noise = generator.noise(frame_size, _rng(cfg.seed + 11))

    def keep_frame(step):
        if step in frames_at:
            with torch.no_grad():
                run.frames.append((step, shown(frame_noise).clone()))

    start = time.perf_counter()
    keep_frame(0)
    bar = tqdm(range(cfg.steps), desc=f"{cfg.dataset}", disable=not progress, leave=False, mininterval=0.5)
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = learning_rate(step, cfg)
        y_pos = sample_data(cfg.dataset, cfg.batch_data, seed=cfg.seed * 1_000_003 + step)
        noise = generator.noise(cfg.batch_gen, noise_rng)
        loss, raw = train_step(generator, opt, noise, y_pos, cfg, annealed_taus(step, cfg))
        if cfg.ema > 0:
            with torch.no_grad():
                for p_ema, p in zip(shown.parameters(), generator.parameters()):
                    p_ema.lerp_(p, 1.0 - cfg.ema)
        if step % log_every == 0 or step == cfg.steps - 1:
            run.log.append({"step": step, "loss": loss, "raw_drift_sq": raw})
            bar.set_postfix(loss=f"{loss:.3g}", raw=f"{sum(raw):.2e}")
        keep_frame(step + 1)
    run.seconds = time.perf_counter() - start
    if evaluate:
        run.metrics = quality(shown.sample, cfg.dataset)
    return run
