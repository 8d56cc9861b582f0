"""The toy command: train one toy and draw it, or run the ablation table.

    python -m drifting_min.toys --dataset checkerboard --out outputs/demo     # train, draw, print metrics
    python -m drifting_min.toys ablations --out lessons/05/ablations.json     # the lesson's ablation table
    python -m drifting_min.toys --help                                        # every option of ToyConfig

The options are made from ``ToyConfig``'s fields (``drifting_min.cli``); the last line a training run prints is
its metrics as JSON (``floor_ratio``: the energy distance to data over the noise floor; ``precision``, ``recall``,
``off_support``: where the samples are, see ``metrics``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from ..cli import add_config_options, config_from_args
from ..runtime import set_threads
from .ablations import run_ablations
from .config import PUBLISHED_DEMO, ToyConfig
from .training import train


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m drifting_min.toys",
        description="Train a drifting generator on a 2D toy, draw data, samples and the drift field, and print "
        "the metrics as JSON on the last line (floor_ratio: energy distance to data over the noise floor). "
        "`ablations` instead trains the lesson-05 ablations and writes their metrics and samples as JSON.",
    )
    p.add_argument("command", nargs="?", default="train", choices=["train", "ablations"],
                   help="train one toy (default) or run the ablation table")
    p.add_argument("--out", default=None,
                   help="train: folder for the figure DATASET.png (default: no figure); ablations: the JSON file "
                   "(default lessons/05/ablations.json)")
    p.add_argument("--published", action="store_true",
                   help="the authors' demo settings (2,000 steps, 2,048 + 2,048, one raw tau 0.05, constant lr)")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for torch (default: OMP_NUM_THREADS if set, else 1; see drifting_min.runtime)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_options(p.add_argument_group("training (ToyConfig)"), ToyConfig)
    return p


def main(argv: list[str] | None = None) -> dict:
    args = parser().parse_args(argv)
    set_threads(args.threads)
    if args.command == "ablations":
        return run_ablations(Path(args.out or "lessons/05/ablations.json"), progress=not args.quiet)
    cfg = config_from_args(ToyConfig, args)
    if args.published:
        cfg = dataclasses.replace(cfg, **PUBLISHED_DEMO)
    run = train(cfg, progress=not args.quiet)
    metrics = {"dataset": cfg.dataset, **run.metrics, "train_seconds": round(run.seconds, 2), "steps": cfg.steps}
    if args.out:
        from .plots import plot_run

        path = Path(args.out) / f"{cfg.dataset}.png"
        plot_run(run, path)
        print(f"wrote {path}", file=sys.stderr)
    print(json.dumps(metrics))
    return metrics
