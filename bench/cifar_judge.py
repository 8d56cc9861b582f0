"""A judge of CIFAR-10 samples that owes nothing to the run it judges.

    python bench/cifar_judge.py train --data TRAIN --test TEST --out runs/judge.pt     # about 10 min, one thread
    python bench/cifar_judge.py score --judge runs/judge.pt --run runs/NAME --n 2000   # a run's EMA samples

The judge is a plain VGG-style network (max pooling, no residual blocks, a global average pool), another
architecture than the trainer's own encoder (``drifting_min.cifar.encoder``: average pooling, residual blocks,
global max pool) and trained with another seed and optimiser (SGD with Nesterov momentum). It is trained on the
training images only; its accuracy on the real test images is stored with it and printed beside every score.

``score`` generates ``--n`` samples of a run's EMA weights (class-balanced for a conditional run) and reports:

* ``judge_agreement``: the share of the samples of class c that the judge assigns to class c (chance 0.1),
  beside ``judge_test_accuracy`` (the same judge on real test images: the ceiling of the agreement);
* ``own_encoder_agreement``: the same with the run's own encoder (the features the generator was trained
  against); the gap to the judge's agreement says how far the generator fools its own features;
* ``judge_fd``: the Frechet distance between the judge's 256-d penultimate features of the samples and of
  real test images (a cheap screening measure; ``judge_fd_floor`` is the same for ``--n`` real training
  images, the floor at that sample count). FID proper is ``python -m drifting_min.cifar fid``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drifting_min.cifar.data import load_images, to_float  # noqa: E402
from drifting_min.cifar.encoder import accuracy, augment, load_encoder, numpy_to_device  # noqa: E402
from drifting_min.cifar.fid import feature_stats, frechet_distance  # noqa: E402
from drifting_min.cifar.sample import generate, load_generator  # noqa: E402
from drifting_min.runtime import set_threads  # noqa: E402

JUDGE_SEED = 20261206


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class Judge(nn.Module):
    """32 -> 32 (pool) -> 64 -> 64 (pool) -> 128 -> 128 (pool) -> 256 (global average) -> 10 classes."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.body = nn.Sequential(*_block(3, 32), *_block(32, 32), nn.MaxPool2d(2), *_block(32, 64),
                                  *_block(64, 64), nn.MaxPool2d(2), *_block(64, 128), *_block(128, 128),
                                  nn.MaxPool2d(2), *_block(128, 256))
        self.head = nn.Linear(256, num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images).mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images))


@torch.no_grad()
def _features(judge: Judge, images: np.ndarray, batch: int = 500) -> torch.Tensor:
    """The judge's 256-d features of uint8 NHWC images, in float64 for their statistics."""
    x = to_float(torch.from_numpy(images))
    return torch.cat([judge.features(x[i:i + batch]) for i in range(0, len(x), batch)]).double()


def train_judge(args) -> dict:
    torch.manual_seed(JUDGE_SEED)
    x, y = numpy_to_device(*load_images(args.data, "train", cache_dir=args.cache), "cpu")
    tx, ty = numpy_to_device(*load_images(args.test, "test", cache_dir=args.cache), "cpu")
    net = Judge(int(y.max()) + 1)
    steps = math.ceil(args.epochs * len(x) / args.batch)
    opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(JUDGE_SEED)
    t0 = time.time()
    net.train()
    from tqdm import tqdm

    for step in tqdm(range(steps), desc="judge", disable=not args.progress):
        for group in opt.param_groups:  # linear warm-up over 15%, then linear decay to zero
            group["lr"] = args.lr * min((step + 1) / (0.15 * steps), (steps - step) / (0.85 * steps))
        idx = torch.randint(0, len(x), (args.batch,), generator=gen)
        loss = F.cross_entropy(net(augment(x[idx], gen)), y[idx], label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    net.eval()
    acc = accuracy(net, tx, ty)
    info = {"test_accuracy": round(acc, 4), "test_images": len(ty), "epochs": args.epochs,
            "seconds": round(time.time() - t0, 1), "seed": JUDGE_SEED, "data": str(args.data)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": net.state_dict(), "num_classes": int(y.max()) + 1, **info}, args.out)
    return info


def load_judge(path: str) -> tuple[Judge, dict]:
    blob = torch.load(path, map_location="cpu", weights_only=False)
    net = Judge(blob["num_classes"])
    net.load_state_dict(blob["state_dict"])
    return net.eval(), {k: v for k, v in blob.items() if k != "state_dict"}


def score(args) -> dict:
    judge, info = load_judge(args.judge)
    net, blob = load_generator(args.run, "cpu")
    images, labels = generate(net, args.n, args.seed, "cpu")
    x = to_float(torch.from_numpy(images))
    result = {"run": str(args.run), "step": blob.get("step"), "n": args.n,
              "judge_test_accuracy": info["test_accuracy"]}
    if net.num_classes:
        y = torch.from_numpy(labels)
        result["judge_agreement"] = round(accuracy(judge, x, y), 4)
        run_dir = Path(args.run) if Path(args.run).is_dir() else Path(args.run).parent
        given = (blob.get("config") or {}).get("encoder")  # a run trained on another encoder's file
        enc_path = Path(given) if given else next((d / "encoder.pt" for d in (run_dir, run_dir.parent)
                                                   if (d / "encoder.pt").exists()), run_dir / "encoder.pt")
        if enc_path.exists():
            enc, enc_info = load_encoder(enc_path, "cpu")
            result["own_encoder_agreement"] = round(accuracy(enc, x, y), 4)
            result["own_encoder_test_accuracy"] = enc_info.get("test_accuracy")
    real_stats = feature_stats(_features(judge, load_images(args.test, "test", cache_dir=args.cache)[0]))
    result["judge_fd"] = round(frechet_distance(feature_stats(_features(judge, images)), real_stats), 4)
    if args.floor:
        train = load_images(args.data, "train", cache_dir=args.cache)[0]
        pick = np.random.default_rng(0).choice(len(train), args.n, replace=False)
        floor = feature_stats(_features(judge, train[pick]))
        result["judge_fd_floor"] = round(frechet_distance(floor, real_stats), 4)
    return result


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("train", "score"):
        s = sub.add_parser(name)
        s.add_argument("--data", default="data/cifar10-jpeg/train.zip", help="training images (zip/folder/archive)")
        s.add_argument("--test", default="data/cifar10-jpeg/test.zip", help="test images")
        s.add_argument("--cache", default=None, help="folder for the decoded-image cache (default: data/cifar10, "
                       "as the trainer's --data-dir)")
        s.add_argument("--threads", type=int, default=0)
        s.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    t = sub.choices["train"]
    t.add_argument("--out", default="runs/judge.pt")
    t.add_argument("--epochs", type=float, default=3.0)
    t.add_argument("--batch", type=int, default=128)
    t.add_argument("--lr", type=float, default=0.05)
    s = sub.choices["score"]
    s.add_argument("--judge", default="runs/judge.pt")
    s.add_argument("--run", required=True, help="a run folder (its ema.pt), or an ema.pt or snapshot file")
    s.add_argument("--n", type=int, default=2000)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--floor", action="store_true", help="also the judge-FD of --n real training images")
    args = p.parse_args(argv)
    set_threads(args.threads or None)
    result = train_judge(args) if args.command == "train" else score(args)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
