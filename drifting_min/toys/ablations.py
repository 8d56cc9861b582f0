"""The ablations of lesson 05: each trains the defaults with one thing changed and keeps the metrics.

    python -m drifting_min.toys ablations --out lessons/05/ablations.json
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import torch

from .config import ToyConfig
from .training import train


def ablation(base: ToyConfig, **change) -> dict:
    """Train ``base`` and ``base`` with ``change`` applied; return {"base": metrics, "variant": metrics}."""
    variant = dataclasses.replace(base, **change)
    return {"base": train(base, progress=False).metrics, "variant": train(variant, progress=False).metrics}


# Each entry: (group, label, dataset, changes from the defaults). One default run per dataset is shared.
ABLATIONS: list[tuple[str, str, str, dict]] = [
    ("generator", "K = 256 components (default)", "rings", {}),
    ("generator", "K = 16 components", "rings", {"components": 16}),
    ("generator", "Gaussian noise only, K = 1", "rings", {"components": 1}),
    ("generator", "K = 256 components (default)", "checkerboard", {}),
    ("generator", "Gaussian noise only, K = 1", "checkerboard", {"components": 1}),
    ("generator", "K = 256, offsets' std 1", "checkerboard", {"component_scale": 1.0}),
    ("kernel", "Laplace (default)", "checkerboard", {}),
    ("kernel", "Gaussian", "checkerboard", {"kernel": "gaussian"}),
    ("temperature", "tau = 0.02 only", "checkerboard", {"taus": (0.02,)}),
    ("temperature", "tau = 0.2 only", "checkerboard", {"taus": (0.2,)}),
    ("temperature", "tau = 1 only", "checkerboard", {"taus": (1.0,)}),
    ("temperature", "0.02 + 0.05 + 0.2", "checkerboard", {"taus": (0.02, 0.05, 0.2)}),
    ("temperature", "0.02 + 0.05 + 0.2 + 1 (default)", "checkerboard", {}),
    ("temperature", "0.02 + 0.05 + 0.2", "eight_gaussians", {"taus": (0.02, 0.05, 0.2)}),
    ("temperature", "0.02 + 0.05 + 0.2 + 1 (default)", "eight_gaussians", {}),
    ("normalisation", "double softmax (default)", "checkerboard", {}),
    ("normalisation", "targets only", "checkerboard", {"normalisation": "targets"}),
    ("normalisation", "uncoupled V+ - V-", "checkerboard", {"normalisation": "uncoupled"}),
    ("anti-symmetry", "V = V+ - V- (default)", "eight_gaussians", {}),
    ("anti-symmetry", "attraction only", "eight_gaussians", {"attraction_only": True}),
    ("collapsed start", "default start", "eight_gaussians", {}),
    ("collapsed start", "collapsed on one mode", "eight_gaussians", {"init": "collapsed"}),
    ("collapsed start", "collapsed, one raw tau = 0.05", "eight_gaussians",
     {"init": "collapsed", "taus": (0.05,), "normalise_each": False}),
    ("weight average", "EMA 0.995 (default)", "checkerboard", {}),
    ("weight average", "last weights", "checkerboard", {"ema": 0.0}),
    ("weight average", "EMA 0.995 (default)", "eight_gaussians", {}),
    ("weight average", "last weights", "eight_gaussians", {"ema": 0.0}),
    ("weight average", "EMA 0.998", "eight_gaussians", {"ema": 0.998}),
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
                "metrics": {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in run.metrics.items()},
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
