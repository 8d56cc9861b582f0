"""One process of the two that tests/test_cifar_distributed.py starts with torchrun (Gloo, one thread each).

    torchrun --nproc_per_node 2 tests/cifar_distributed_worker.py runs ARCHIVE OUT   # steps, resume, command
    torchrun --nproc_per_node 2 tests/cifar_distributed_worker.py crash ARCHIVE OUT  # rank 1 dies at step 3

``runs`` writes, for the test to compare with one process: each rank's losses, gradients and weights after
three steps of the Trainer (OUT/steps_{unconditional,conditional}_{rank}.pt); a run stopped by rank 0 in the
encoder stage, resumed and stopped by a Ctrl-C on rank 1 after two steps (its folder copied to OUT/part_at_2),
and resumed to the end (OUT/part; each rank's three results in OUT/part_results_{rank}.json); the whole run
through the command (OUT/whole), with each rank's standard output in OUT/stdout_{rank}.txt.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import sys
from pathlib import Path

import numpy as np
import torch

from drifting_min.cifar import distributed
from drifting_min.cifar import train as train_module
from drifting_min.cifar.__main__ import main
from drifting_min.cifar.config import TINY, CifarConfig
from drifting_min.cifar.encoder import Encoder, freeze
from drifting_min.cifar.train import Trainer, train

CLASSES = 4
STEPS = 3


def random_data(n: int = 48) -> dict:
    """The same random images on every rank (and in the test's own process)."""
    rng = np.random.default_rng(0)
    images = torch.from_numpy(rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8))
    labels = torch.arange(n) % CLASSES
    return {"images": images, "labels": labels, "fingerprint": "-", "classes": CLASSES}


def step_config(conditional: bool) -> CifarConfig:
    return CifarConfig(**{**TINY, "batch_gen": 24, "batch_real": 16, "conditional": conditional})


@torch.no_grad()
def outputs(net: torch.nn.Module) -> torch.Tensor:
    """The network's images of 8 fixed noise vectors (classes 0, 1, 2, 3, 0, ... for a conditional one)."""
    eps = torch.randn(8, net.noise_dim, generator=torch.Generator().manual_seed(5))
    return net(eps, torch.arange(8) % CLASSES if net.num_classes else None)


def record_steps(cfg: CifarConfig, world: distributed.World | None = None) -> dict:
    """Losses, gradient norms and (clipped) gradients of three steps, the weights after them, and the images
    that the network and its EMA make of fixed noise."""
    torch.manual_seed(1)
    encoder = freeze(Encoder(8, CLASSES))
    trainer = Trainer(cfg, random_data(), encoder, torch.device("cpu"), world)
    out = {"loss": [], "grad_norm": [], "grads": []}
    for _ in range(STEPS):
        info = trainer.train_step()
        out["loss"].append(info["loss"])
        out["grad_norm"].append(info["grad_norm"])
        out["grads"].append(torch.cat([p.grad.flatten() for p in trainer.net.parameters()]))
    out["weights"] = {k: v.clone() for k, v in trainer.net.state_dict().items()}
    out["ema"] = {k: v.clone() for k, v in trainer.ema.state_dict().items()}
    out["images"], out["ema_images"] = outputs(trainer.net), outputs(trainer.ema)
    return out


def run_config(archive: str) -> CifarConfig:
    return CifarConfig(**{**TINY, "data": archive, "batch_gen": 24, "batch_real": 16})


def command_options(archive: str) -> list[str]:
    cfg = run_config(archive)
    opts = []
    for key in ("data", "encoder_width", "encoder_epochs", "encoder_batch", "gen_width", "noise_dim", "batch_gen",
                "batch_real", "gen_steps", "warmup", "ckpt_every", "grid_every", "log_every", "device"):
        opts += ["--" + key.replace("_", "-"), str(getattr(cfg, key))]
    # the gpu preset (the command's default) is class-conditional: keep the run's own setting
    return opts + ["--conditional" if cfg.conditional else "--no-conditional", "--no-progress"]


def stopped_in_the_encoder_stage(cfg: CifarConfig, out: Path, world: distributed.World) -> dict:
    """``train`` with rank 0 told to stop at its first question, which comes in the encoder stage (rank 0
    trains the encoder while rank 1 waits at the barrier)."""
    original = train_module._StopFlag.check

    def check(self):
        if world.is_main and self.reason is None:
            self.reason = "interrupted (rank 0 alone, in the encoder stage)"
        return original(self)

    train_module._StopFlag.check = check
    try:
        return train(cfg, out, progress=False)
    finally:
        train_module._StopFlag.check = original


def interrupt_rank_1_after_2(trainer: Trainer) -> None:
    """Ctrl-C on rank 1 alone, after step 2: both ranks must stop after that step."""
    if trainer.world.rank == 1 and trainer.step == 2:
        os.kill(os.getpid(), signal.SIGINT)


def runs(archive: str, out: Path) -> None:
    world = distributed.start(torch.device("cpu"))
    assert world.active and world.size == 2, world
    for conditional in (False, True):
        name = "conditional" if conditional else "unconditional"
        torch.save(record_steps(step_config(conditional), world), out / f"steps_{name}_{world.rank}.pt")
    stops = [stopped_in_the_encoder_stage(run_config(archive), out / "part", world)]
    stops.append(train(run_config(archive), out / "part", progress=False, on_step=interrupt_rank_1_after_2))
    if world.is_main:
        shutil.copytree(out / "part", out / "part_at_2")
    stops.append(train(run_config(archive), out / "part", progress=False))
    (out / f"part_results_{world.rank}.json").write_text(json.dumps(stops))
    captured = io.StringIO()
    with contextlib.redirect_stdout(captured):  # the command leaves the process group at its end
        main(["train", "--out", str(out / "whole"), *command_options(archive)])
    (out / f"stdout_{world.rank}.txt").write_text(captured.getvalue())


def crash(archive: str, out: Path) -> None:
    """The command, with rank 1 dying abruptly after its third step (as a process killed by the system would)."""
    if distributed.launched_rank() == 1:
        original = Trainer.train_step

        def train_step(self):
            if self.step == 3:
                os._exit(7)
            return original(self)

        Trainer.train_step = train_step
    main(["train", "--out", str(out / "crash"), *command_options(archive), "--gen-steps", "1000"])


if __name__ == "__main__":
    mode, archive, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    {"runs": runs, "crash": crash}[mode](archive, out)
