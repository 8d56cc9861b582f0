"""The CIFAR-10 trainer under torchrun: two CPU processes (Gloo, one thread each) against one process.

The promise (drifting_min/cifar/distributed.py): N processes with b samples each compute the step of one process
with the N b samples in the same groups. Two processes of torchrun run tests/cifar_distributed_worker.py; this
process runs the same steps alone and compares losses, gradients and weights, the resumed runs, and the files.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from drifting_min.cifar import distributed
from drifting_min.cifar.generator import Generator
from drifting_min.cifar.train import feature_loss, train

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the worker's helpers, for this process's own one-process runs
import cifar_distributed_worker as worker  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.distributed.is_available() or not torch.distributed.is_gloo_available(),
                                reason="needs torch.distributed with Gloo")


def write_archive(path: Path, n: int = 16) -> Path:
    """A CIFAR-10-format python archive of random images (data_batch_1..5 and test_batch)."""
    rng = np.random.default_rng(3)
    with tarfile.open(path, "w:gz") as tar:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            rows = rng.integers(0, 256, size=(n, 3 * 32 * 32), dtype=np.uint8)
            raw = pickle.dumps({b"data": rows, b"labels": [i % worker.CLASSES for i in range(n)]})
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path


def torchrun(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "tests" / "cifar_distributed_worker.py"), *args]
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """The worker's ``runs`` on two processes, once for the tests below."""
    out = tmp_path_factory.mktemp("ddp")
    archive = write_archive(out / "cifar-10-python.tar.gz")
    done = torchrun("runs", str(archive), str(out), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return out, archive


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float) -> bool:
    """|a - b| <= rtol max|b|: equal up to the rounding of sums taken in another order."""
    return bool((a - b).abs().max() <= rtol * b.abs().max())


def _weights(run: Path) -> dict:
    return torch.load(run / "ckpt.pt", weights_only=False)


def _images(blob: dict, key: str) -> torch.Tensor:
    """The images of fixed noise from a checkpoint's generator or EMA."""
    net = Generator(**blob["arch"])
    net.load_state_dict(blob[key])
    return worker.outputs(net)


@pytest.mark.parametrize("conditional", [False, True])
def test_two_processes_compute_the_one_process_step(two_processes, conditional):
    out, _ = two_processes
    name = "conditional" if conditional else "unconditional"
    ranks = [torch.load(out / f"steps_{name}_{r}.pt") for r in range(2)]
    one = worker.record_steps(worker.step_config(conditional))  # one process, the whole batch of 24
    for r in ranks:
        assert np.allclose(r["loss"], one["loss"], rtol=1e-5, atol=0), (r["loss"], one["loss"])
        assert np.allclose(r["grad_norm"], one["grad_norm"], rtol=1e-5, atol=0)
        for step, (g, g1) in enumerate(zip(r["grads"], one["grads"])):
            assert _close(g, g1, 1e-5), f"step {step}: gradient differs by {(g - g1).abs().max():.3g}"
        # the same networks: compared by their images, since AdamW turns the rounding noise of a gradient that is
        # exactly zero (the bias of a convolution before a GroupNorm with one channel a group) into steps of lr
        for key in ("images", "ema_images"):
            assert _close(r[key], one[key], 1e-5), f"{key} differ by {(r[key] - one[key]).abs().max():.3g}"
    for key in ("weights", "ema"):  # the ranks agree exactly: the same summed gradient, the same AdamW step
        assert all(torch.equal(ranks[0][key][k], ranks[1][key][k]) for k in ranks[0][key]), key


def test_ranks_forming_their_own_groups_would_fail_the_comparison():
    """The comparison above can tell: the mean of two half-batch losses (each half its own groups, scale and
    normalisation) has another gradient than the loss of the whole batch."""
    cfg = worker.step_config(False)
    torch.manual_seed(1)
    enc = worker.freeze(worker.Encoder(8, worker.CLASSES))
    gen = torch.rand(24, 3, 32, 32).requires_grad_()
    real = torch.rand(16, 3, 32, 32) * 2 - 1
    x = gen * 2 - 1
    whole, _ = feature_loss(enc, x, real, cfg)
    (g_whole,) = torch.autograd.grad(whole, gen, retain_graph=True)
    halves = [feature_loss(enc, x[i * 12:(i + 1) * 12], real[i * 8:(i + 1) * 8], cfg)[0] for i in range(2)]
    (g_halves,) = torch.autograd.grad(sum(halves) / 2, gen)
    assert not _close(g_halves, g_whole, 1e-2), "per-rank groups should give another gradient"


def test_shard_and_gather_invert_each_other():
    """The rows that rank r takes (shard), put back in the gathered order, are the rows of the whole batch."""
    for classes, batch, n in [(1, 12, 2), (4, 24, 2), (3, 18, 3)]:
        rows = [distributed.shard(batch, classes, distributed.World(rank=r, size=n)) for r in range(n)]
        assert sorted(torch.cat(rows).tolist()) == list(range(batch))
        per_rank = [r.view(classes, -1) for r in rows]
        assert torch.equal(torch.stack(per_rank, dim=1).flatten(), torch.arange(batch)), "class by class, rank 0 first"
    with pytest.raises(ValueError, match="split evenly over the processes"):
        distributed.shard(20, 4, distributed.World(rank=0, size=2))  # 5 a class over 2 processes


def test_resumed_runs_and_files(two_processes, tmp_path):
    out, archive = two_processes
    whole, part = _weights(out / "whole"), _weights(out / "part")
    cfg = worker.run_config(str(archive))
    assert whole["step"] == part["step"] == cfg.gen_steps
    for key in ("generator", "ema"):  # two processes, stopped after 2 steps and resumed: bit for bit
        assert all(torch.equal(whole[key][k], part[key][k]) for k in whole[key]), f"{key} differs after resume"
    results = [json.loads((out / f"part_results_{r}.json").read_text()) for r in range(2)]
    for encoder_stop, generator_stop, done in results:  # every rank stops where rank 0 does
        assert encoder_stop["step"] == 0 and "in the encoder stage" in encoder_stop["where"], encoder_stop
        assert generator_stop["step"] == 2 and generator_stop["stopped"].startswith("interrupted"), generator_stop
        assert done["stopped"] == "done" and done["step"] == cfg.gen_steps, done
    assert results[0][0]["stopped"] == "interrupted (rank 0 alone, in the encoder stage)"
    assert results[1][1]["stopped"] == "interrupted (SIGINT)", "rank 1 got the Ctrl-C, rank 0 stopped with it"
    assert (out / "part" / ".lock").read_text() == "", "rank 0 took the run folder's lock and released it"
    train(cfg, tmp_path / "alone", progress=False)  # one process from the start
    alone = _weights(tmp_path / "alone")
    resumed_alone = tmp_path / "resumed_alone"
    (out / "part_at_2").rename(resumed_alone)  # two processes for 2 steps, then one process to the end
    assert train(cfg, resumed_alone, progress=False)["step"] == cfg.gen_steps
    for other in (alone, _weights(resumed_alone)):
        for key in ("generator", "ema"):
            a, b = _images(other, key), _images(whole, key)
            assert _close(a, b, 1e-5), f"{key}: images differ by {(a - b).abs().max():.3g}"
    log = [json.loads(ln) for ln in (out / "whole" / "log.jsonl").read_text().splitlines()]
    assert log[0]["processes"] == 2 and [ln["step"] for ln in log[1:]] == list(range(1, cfg.gen_steps + 1)), \
        "rank 0 alone writes the log: each step once"
    printed = [(out / f"stdout_{r}.txt").read_text() for r in range(2)]
    assert json.loads(printed[0].strip().splitlines()[-1])["step"] == cfg.gen_steps and printed[1] == "", printed


def test_a_dead_process_ends_the_job_with_a_clear_message(tmp_path):
    archive = write_archive(tmp_path / "cifar-10-python.tar.gz")
    done = torchrun("crash", str(archive), str(tmp_path))
    assert done.returncode != 0
    assert "another process of the job has stopped" in done.stderr, done.stderr[-3000:]
    assert "exitcode  : 7" in done.stderr, "torchrun names the rank that died"
    kept = _weights(tmp_path / "crash")
    assert kept["step"] == 3 and all(torch.isfinite(v).all() for v in kept["generator"].values())
