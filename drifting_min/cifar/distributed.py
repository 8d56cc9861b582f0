"""More than one process: the trainer under ``torchrun``, computing exactly the one-process step.

    torchrun --nproc_per_node 4 -m drifting_min.cifar train --out runs/NAME      # 4 GPUs of one machine
    python -m drifting_min.cifar train --out runs/NAME                          # one process, as before

``torchrun`` starts the processes and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; ``start`` joins them into one process group (NCCL on CUDA, one GPU per process, Gloo on the
CPU). Several machines: the same command on each with torchrun's rendezvous flags, e.g.
``--nnodes 2 --node_rank I --rdzv_backend c10d --rdzv_endpoint HOST:29500``, and the run folder and the data on
a filesystem that every machine sees.

The batch. ``batch_gen`` and ``batch_real`` stay the sizes of the *whole* step, whatever the number of processes
N: the noise and the real images of step s are drawn for the whole batch (functions of (seed, s), as in one
process), and rank r takes the r-th of N equal slices of every class's block (``shard``). The drifting field
couples every sample of a group with every other (both softmaxes, the scale s, the normalisation of each
temperature's force are batch statistics), so the ranks do not form groups of their own: after the encoder,
every rank gathers the features of all N slices (``gather_samples``) and computes the field of the whole batch,
exactly as one process would. With L the one-process loss (a mean over all groups, samples and dims) and x_r
the generated images of rank r,

    dL/dtheta = sum_r (dL/dx_r)(dx_r/dtheta),

and rank r's backward pass through its own images gives the r-th term (the gathered copies of the other ranks'
features carry no gradient). ``sum_gradients`` adds the N terms with one all-reduce: every rank then holds
the one-process gradient, takes the same AdamW step, and keeps identical weights and EMA. So N processes with
b samples each compute the step of one process with the N b samples, in the same groups, up to the order of
floating-point sums (``tests/test_cifar_distributed.py``). A checkpoint does not depend on N, and a run may be
resumed with another number of processes.

What is split and what is not: the generator and the encoder (forward and backward: 80% of the one-process
step in ``bench/bench_cifar_ddp.py``'s CPU configuration) run on each rank's slice; the field itself is
computed on every rank for the whole batch, and the features travel once per step (an all-gather of about
75,000 numbers an image at the default encoder width).

Files and output. Rank 0 alone writes the run folder and prints; it also runs first whatever the others need
from disk (downloading and decoding the data, training and caching the encoder, ``main_first``), while they
wait at a barrier. If a process dies, torchrun stops the others and names the failed rank; a process whose
collective fails raises ``PeerLost``, and the last checkpoint is kept.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import Tensor

from .config import UsageError

# how long a collective may wait: longer than the encoder stage, which the other ranks wait for at a barrier
# (a dead process does not wait this long: torchrun ends the job as soon as one of its processes exits)
TIMEOUT = timedelta(hours=2)


class PeerLost(RuntimeError):
    """A collective failed: another process of the job stopped (or the network between them did)."""


@dataclass(frozen=True)
class World:
    """This process's place in the job: rank ``rank`` of ``size`` processes, computing on ``device``.
    ``active``: a process group exists, so the collectives below run (under torchrun, even with one process)."""

    rank: int = 0
    size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    active: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and prints."""
        return self.rank == 0


def launched_rank() -> int:
    """The rank torchrun gave this process (0 when not launched by torchrun)."""
    return int(os.environ.get("RANK", "0"))


def start(device: torch.device) -> World:
    """Join torchrun's process group (once; later calls find it) and return this process's world. Outside
    torchrun (no ``WORLD_SIZE`` in the environment, no group made by the caller): a world of one process.

    On CUDA each process takes the GPU ``LOCAL_RANK`` and the backend is NCCL; otherwise Gloo."""
    if not dist.is_available() or ("WORLD_SIZE" not in os.environ and not dist.is_initialized()):
        return World(device=device)
    if device.type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if device.index is not None and device.index != local_rank:
            raise UsageError(f"--device {device} under torchrun: each process uses the GPU of its local rank; "
                             "pick GPUs with CUDA_VISIBLE_DEVICES and pass --device cuda")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=TIMEOUT, device_id=device if device.type == "cuda" else None)
    return World(dist.get_rank(), dist.get_world_size(), device, active=True)


def stop() -> None:
    """Leave the process group (if any)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _collective(call, *args, **kwargs):
    """call(*args, **kwargs), a collective of torch.distributed, with a failure reported as ``PeerLost``."""
    try:
        return call(*args, **kwargs)
    except RuntimeError as e:  # Gloo and NCCL report a lost peer as a RuntimeError (or a subclass)
        raise PeerLost(f"rank {dist.get_rank()}: {call.__name__} failed, another process of the job has stopped "
                       f"({str(e).splitlines()[0][:200]})") from e


@contextmanager
def main_first(world: World):
    """Rank 0 runs the block first (downloads, decodes and caches the data, trains and caches the encoder) while
    the other ranks wait at a barrier; then they run it and find rank 0's files."""
    if world.active and not world.is_main:
        _collective(dist.barrier)
    yield
    if world.active and world.is_main:
        _collective(dist.barrier)


def check_same(what: str, value: int, world: World) -> None:
    """Raise UsageError unless every rank holds the same ``value`` (e.g. the step a resumed run starts from)."""
    if not world.active:
        return
    t = torch.tensor([value, -value], device=world.device)
    _collective(dist.all_reduce, t, op=dist.ReduceOp.MAX)
    if t[0] != -t[1]:
        raise UsageError(f"the processes disagree on {what} ({-t[1].item()} to {t[0].item()}): every machine must "
                         "see the same run folder (a filesystem shared by all of them)")


def shard(batch: int, classes: int, world: World) -> Tensor:
    """This rank's rows of a batch laid out class by class (``classes`` blocks of ``batch / classes`` rows;
    one block when unconditional): the rank-th of N equal slices of every block. [batch / N] int64."""
    per_class = batch // classes
    if batch % classes or per_class % world.size:
        raise UsageError(f"a batch of {batch} over {classes} class(es) and {world.size} processes: each class's "
                         f"share must split evenly over the processes (use a multiple of {classes * world.size})")
    m = per_class // world.size
    starts = torch.arange(classes) * per_class + world.rank * m  # [classes]
    return (starts[:, None] + torch.arange(m)).flatten()  # [classes * m]


def gather_samples(features: list[dict[str, Tensor]], classes: int, world: World) -> list[dict[str, Tensor]]:
    """Every rank's samples of each feature [G, b, C] -> the whole batch's [G, N b, C], in the order of the
    one-process batch (class by class; within a class, rank 0's slice first). This rank's own slice is the
    tensor given (its gradient flows); the other ranks' slices are copies without gradient.

    One all-gather per dtype: every feature of a dtype travels in one flat buffer."""
    if not world.active:
        return features
    tensors = [t for d in features for t in d.values()]
    full: dict[int, Tensor] = {}
    for dtype in dict.fromkeys(t.dtype for t in tensors):
        group = [i for i, t in enumerate(tensors) if t.dtype == dtype]
        local = torch.cat([tensors[i].detach().reshape(-1) for i in group])
        parts = [torch.empty_like(local) for _ in range(world.size)]
        _collective(dist.all_gather, parts, local)
        offset = 0
        for i in group:
            t = tensors[i]
            pieces = [p[offset:offset + t.numel()].view(t.shape) for p in parts]  # [G, b, C] each
            pieces[world.rank] = t
            offset += t.numel()
            # [G, classes, m, C] per rank -> [G, classes, N, m, C] -> [G, N b, C]
            full[i] = torch.stack([p.unflatten(1, (classes, -1)) for p in pieces], dim=2).flatten(1, 3)
    out, i = [], 0
    for d in features:
        out.append({})
        for name in d:
            out[-1][name] = full[i]
            i += 1
    return out


def sum_gradients(params, world: World) -> None:
    """p.grad <- sum over ranks of p.grad, for every parameter, with one all-reduce of one flat buffer."""
    if not world.active:
        return
    params = list(params)
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    _collective(dist.all_reduce, flat)
    offset = 0
    for p in params:
        p.grad.copy_(flat[offset:offset + p.numel()].view(p.shape))
        offset += p.numel()


def any_rank(flags: list[bool], world: World) -> list[bool]:
    """Each flag, true if it is true on any rank: the ranks agree to stop after the same step."""
    if not world.active:
        return [bool(f) for f in flags]
    t = torch.tensor([float(bool(f)) for f in flags], device=world.device)
    _collective(dist.all_reduce, t, op=dist.ReduceOp.MAX)
    return [bool(v) for v in t.tolist()]
