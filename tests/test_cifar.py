"""drifting_min.cifar on tiny synthetic data: readers, resume-safe order, encoder, training, resume, sampling.

Everything runs on a CPU in float32 with the TINY configuration (a few steps of 20 + 20 images, an 8-channel
encoder), so the whole file takes well under a minute on two cores.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pickle
import signal
import tarfile
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from drifting_min.cifar import data as cdata
from drifting_min.cifar.__main__ import main
from drifting_min.cifar.config import TINY, CifarConfig
from drifting_min.cifar.encoder import Encoder, accuracy, freeze, load_encoder, numpy_to_device, train_encoder
from drifting_min.cifar.generator import Generator
from drifting_min.cifar.precision import choose_precision
from drifting_min.cifar.train import NonFiniteLoss, Trainer, learning_rate, train

K = 4  # classes of the synthetic data
COLOURS = np.array([[230, 40, 40], [40, 200, 60], [50, 80, 230], [230, 210, 40]], dtype=np.float64)


def synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n 32x32 images, class c = a square of colour c at a random place over a noisy grey background."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % K
    images = rng.normal(128, 30, size=(n, 32, 32, 3))
    for i, c in enumerate(labels):
        y, x = rng.integers(0, 16, size=2)
        images[i, y:y + 16, x:x + 16] = COLOURS[c] + rng.normal(0, 15, size=(16, 16, 3))
    return images.clip(0, 255).astype(np.uint8), labels.astype(np.int64)


def write_archive(path: Path, n_per_batch: int = 24, seed: int = 0) -> Path:
    """A CIFAR-10-format python archive: data_batch_1..5 and test_batch, pickled dicts of CHW rows."""
    with tarfile.open(path, "w:gz") as tar:
        for k, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
            images, labels = synthetic(n_per_batch, seed + k)
            rows = images.transpose(0, 3, 1, 2).reshape(len(images), -1)
            raw = pickle.dumps({b"data": rows, b"labels": labels.tolist()})
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path


def write_folder(root: Path, n: int = 40, seed: int = 7, zip_path: Path | None = None, size: int = 32) -> Path:
    from PIL import Image

    images, labels = synthetic(n, seed)
    for i, (im, c) in enumerate(zip(images, labels)):
        folder = root / "train" / f"class{c}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(im).resize((size, size)).save(folder / f"{i:04d}.png")
    if zip_path is None:
        return root / "train"
    with zipfile.ZipFile(zip_path, "w") as z:
        for f in sorted((root / "train").rglob("*.png")):
            z.write(f, f.relative_to(root).as_posix())
    return zip_path


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    return write_archive(tmp_path_factory.mktemp("cifar") / "cifar-10-python.tar.gz")


def tiny(archive: Path, **change) -> CifarConfig:
    return CifarConfig(**{**TINY, "data": str(archive), **change})


# ------------------------------------------------------------------------------------------ readers


def test_archive_reader_round_trip(archive):
    images, _ = cdata.read_archive(archive, "train")
    expected = np.concatenate([synthetic(24, k)[0] for k in range(5)])
    assert images.shape == (120, 32, 32, 3) and images.dtype == np.uint8
    assert np.array_equal(images, expected), "rows are CHW: they must come back as the images written"
    test_images, test_labels = cdata.read_archive(archive, "test")
    assert test_images.shape == (24, 32, 32, 3) and np.array_equal(test_labels, synthetic(24, 5)[1])


def test_md5_check(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"hello")
    cdata.check_md5(f, "5d41402abc4b2a76b9719d911017c592")
    with pytest.raises(cdata.DataError, match="md5 .* does not match"):
        cdata.check_md5(f, cdata.MD5)


def test_download_checks_the_md5(tmp_path, archive):
    url = archive.resolve().as_uri()  # urllib reads file:// URLs as it reads https:// ones
    got = cdata.download(tmp_path / "ok", url=url, md5=cdata.md5sum(archive))
    assert got.name == cdata.ARCHIVE_NAME and got.read_bytes() == archive.read_bytes()
    with pytest.raises(cdata.DataError, match="does not match the expected"):
        cdata.download(tmp_path / "bad", url=url, md5="0" * 32)
    assert not list((tmp_path / "bad").iterdir()), "a file with a wrong md5 is never kept"


def test_corrupt_inputs_give_clear_errors(tmp_path, archive):
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[:2000])
    with pytest.raises(cdata.DataError, match="corrupt or truncated|not a CIFAR-10"):
        cdata.read_archive(truncated)
    other = tmp_path / "other.tar.gz"
    with tarfile.open(other, "w:gz") as tar:
        tar.add(__file__, arcname="readme.txt")
    with pytest.raises(cdata.DataError, match="not a CIFAR-10 python archive"):
        cdata.read_archive(other)
    (tmp_path / "empty").mkdir()
    with pytest.raises(cdata.DataError, match="no images found"):
        cdata.read_image_folder(tmp_path / "empty")
    bad = tmp_path / "bad" / "cat"
    bad.mkdir(parents=True)
    (bad / "0001.png").write_bytes(b"not a png")
    with pytest.raises(cdata.DataError, match="cannot read image"):
        cdata.read_image_folder(tmp_path / "bad")
    big = write_folder(tmp_path / "big", n=4, size=40)
    with pytest.raises(cdata.DataError, match="40x40, every image must be 32x32"):
        cdata.read_image_folder(big)
    notzip = tmp_path / "broken.zip"
    notzip.write_bytes(b"PK\x03\x04 garbage")
    with pytest.raises(cdata.DataError, match="cannot open the zip"):
        cdata.read_image_folder(notzip)


def test_folder_and_zip_readers_agree_and_cache(tmp_path):
    folder = write_folder(tmp_path / "f", n=12)
    zipped = write_folder(tmp_path / "z", n=12, zip_path=tmp_path / "train.zip")
    a, la, classes = cdata.read_image_folder(folder)
    b, lb, _ = cdata.read_image_folder(zipped)
    assert classes == [f"class{c}" for c in range(K)]
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    images, labels = synthetic(12, 7)
    order = np.lexsort((np.arange(12), labels))  # files sorted: class folder, then file number
    assert np.array_equal(a, images[order]) and np.array_equal(la, labels[order]), "PNG is lossless"
    c, lc = cdata.load_images(zipped, cache_dir=tmp_path / "cache")
    assert list(tmp_path.glob("train.zip.train.*.images.npy")), "the decoded array is cached next to the zip"
    d, ld = cdata.load_images(zipped)
    assert np.array_equal(c, d) and np.array_equal(lc, ld)


# ------------------------------------------------------------------------------------------ order


def test_order_is_a_function_of_seed_and_step():
    labels = np.arange(50) % 5
    s = cdata.RealSampler(labels, seed=3, batch=10, per_class=True)
    first = [s(step) for step in range(12)]
    again = cdata.RealSampler(labels, seed=3, batch=10, per_class=True)
    assert all(torch.equal(again(step), first[step]) for step in reversed(range(12))), "order depends on history"
    assert all((torch.as_tensor(labels)[b].view(5, 2) == torch.arange(5)[:, None]).all() for b in first)
    one_epoch = torch.cat([b.view(5, 2) for b in first[:5]], dim=1)  # 5 steps x 2 = one epoch of each class
    assert all(len(set(row.tolist())) == 10 for row in one_epoch), "an epoch visits each image once"
    flat = cdata.RealSampler(labels, seed=3, batch=7, per_class=False)
    seen = torch.cat([flat(step) for step in range(50)])  # 350 = 7 epochs
    assert all(sorted(seen[i * 50:(i + 1) * 50].tolist()) == list(range(50)) for i in range(7))
    assert not torch.equal(cdata.RealSampler(labels, 4, 10, True)(0), first[0])
    assert torch.equal(cdata.noise(5, 3, 4, 0), cdata.noise(5, 3, 4, 0))


def test_learning_rate_schedule():
    cfg = CifarConfig(lr=1e-3, warmup=10, gen_steps=110)
    assert learning_rate(0, cfg) == pytest.approx(1e-4) and learning_rate(9, cfg) == pytest.approx(1e-3)
    assert learning_rate(110, cfg) == pytest.approx(1e-4) and learning_rate(60, cfg) == pytest.approx(5.5e-4)


# ------------------------------------------------------------------------------------------ encoder


def test_own_encoder_beats_a_random_one():
    torch.manual_seed(0)
    x, y = numpy_to_device(*synthetic(320, 1), "cpu")
    tx, ty = numpy_to_device(*synthetic(200, 2), "cpu")
    enc = train_encoder(x, y, width=8, num_classes=K, epochs=3, batch=32, lr=5e-3, seed=0, progress=False)
    trained, random = accuracy(enc, tx, ty), accuracy(Encoder(8, K), tx, ty)
    assert trained > 0.9 and trained > random + 0.4, (trained, random)
    maps = enc.feature_maps(tx[:3])
    assert [tuple(m.shape) for m in maps] == [(3, 16, 16, 16), (3, 32, 8, 8), (3, 64, 4, 4)]


def test_another_encoder_from_a_torchscript_file(tmp_path):
    enc = Encoder(8, K).eval()
    with warnings.catch_warnings():  # newer torch marks TorchScript deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(enc).save(str(tmp_path / "enc.pt"))
        loaded, info = load_encoder(tmp_path / "enc.pt")
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert info["kind"] == "torchscript"
    assert all(torch.allclose(a, b) for a, b in zip(loaded.feature_maps(x), enc.feature_maps(x)))
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="neither an encoder.pt"):
        load_encoder(tmp_path / "junk.pt")


# ------------------------------------------------------------------------------------------ training


def _weights(run: Path) -> dict:
    return torch.load(run / "ckpt.pt", weights_only=False)


def test_default_generator_ema_fits_in_16_mb():
    cfg = CifarConfig()
    net = Generator(cfg.noise_dim, cfg.gen_width, 10)  # the conditional one is the larger
    assert sum(t.numel() * t.element_size() for t in net.state_dict().values()) < 15e6


def _trainer(archive, **change) -> Trainer:
    images, labels = cdata.read_archive(archive)
    data = {"images": torch.from_numpy(images), "labels": torch.from_numpy(labels), "fingerprint": "-", "classes": K}
    return Trainer(tiny(archive, **change), data, freeze(Encoder(8, K)), torch.device("cpu"))


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_autocast_step(archive, amp):
    """The GPU paths' autocast, exercised on the CPU: bf16 or fp16 networks, float32 loss, finite, weights
    float32; fp16 with a loss scale."""
    for conditional in (False, True):
        tr = _trainer(archive, conditional=conditional, amp=amp)
        assert tr.precision == amp and tr.scaler.is_enabled() == (amp == "fp16")
        info = tr.train_step()
        assert tr.step == 1 and info["loss"] > 0 and all(p.dtype == torch.float32 for p in tr.net.parameters())
        assert ("loss_scale" in info) == (amp == "fp16")


def test_interrupted_and_resumed_run_equals_an_uninterrupted_one(tmp_path, archive):
    cfg = tiny(archive)
    whole = train(cfg, tmp_path / "whole", progress=False)
    assert whole["step"] == cfg.gen_steps and whole["encoder"] == "own"
    part = train(cfg, tmp_path / "part", progress=False, max_steps=2)  # stop after 2 steps (not a ckpt step)
    assert part["step"] == 2 and "step limit" in part["stopped"]
    rest = train(dataclasses.replace(cfg, encoder_epochs=99.0), tmp_path / "part", progress=False)  # stored cfg wins
    assert rest["step"] == cfg.gen_steps and rest["encoder"] == "own (cached)"
    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "part")
    for key in ("generator", "ema"):
        assert all(torch.equal(a[key][n], b[key][n]) for n in a[key]), f"{key} differs after resume"
    assert a["optimizer"]["param_groups"][0]["lr"] == b["optimizer"]["param_groups"][0]["lr"]
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)
    log = [json.loads(ln) for ln in (tmp_path / "part" / "log.jsonl").read_text().splitlines()]
    steps = [ln["step"] for ln in log if "loss" in ln]
    assert steps == list(range(1, cfg.gen_steps + 1)), "each step logged once, in order"
    assert all(len(ln["raw_drift_sq"]) == 3 and ln["images_per_s"] > 0 for ln in log if "loss" in ln)
    ema = tmp_path / "whole" / "ema.pt"
    assert ema.stat().st_size < 16e6 and (tmp_path / "whole" / "grid.png").exists()


def test_signal_saves_and_the_same_command_resumes(tmp_path, archive):
    cfg = tiny(archive, conditional=True, gen_steps=4)

    def interrupt(trainer):
        if trainer.step == 1:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C: finish the step, save, stop

    first = train(cfg, tmp_path / "run", progress=False, on_step=interrupt)
    assert first["step"] == 1 and "SIGINT" in first["stopped"]
    assert _weights(tmp_path / "run")["step"] == 1
    assert train(cfg, tmp_path / "run", progress=False)["step"] == 4
    other = train(tiny(archive, encoder=str(tmp_path / "run" / "encoder.pt")), tmp_path / "other", progress=False,
                  max_steps=1)
    assert other["encoder"] == f"file:{tmp_path / 'run' / 'encoder.pt'}"
    assert not (tmp_path / "other" / "encoder.pt").exists(), "another encoder is used as it is, not retrained"
    with pytest.raises(ValueError, match="multiples of 4"):
        train(tiny(archive, conditional=True, batch_gen=10), tmp_path / "odd", progress=False)


def test_time_limit_ends_with_a_checkpoint(tmp_path, archive):
    result = train(tiny(archive, minutes=1e-9), tmp_path / "run", progress=False)
    assert result["step"] == 1 and "time limit" in result["stopped"]
    assert _weights(tmp_path / "run")["step"] == 1 and (tmp_path / "run" / "ema.pt").exists()
    other = write_archive(tmp_path / "other.tar.gz", seed=100)
    with pytest.raises(ValueError, match="trained on other data"):
        train(tiny(archive, data=str(other)), tmp_path / "run", progress=False)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, archive):
    cfg = tiny(archive, gen_steps=6, ckpt_every=2)

    def poison(trainer):
        if trainer.step == 4:
            with torch.no_grad():
                trainer.net.out.weight.fill_(float("nan"))

    with pytest.raises(NonFiniteLoss, match="non-finite .* last good checkpoint"):
        train(cfg, tmp_path / "run", progress=False, on_step=poison)
    kept = _weights(tmp_path / "run")
    assert kept["step"] == 4 and all(torch.isfinite(v).all() for v in kept["generator"].values())


class _StandIn(torch.nn.Module):
    """A stand-in for the Inception network: 299x299 images -> 12 features (2x2 mean colours)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.adaptive_avg_pool2d(x, 2).flatten(1)


def test_command_end_to_end_on_an_image_zip(tmp_path, capsys):
    zipped = write_folder(tmp_path / "imgs", n=40, zip_path=tmp_path / "train.zip")
    run = tmp_path / "run"
    opts = ["--data", str(zipped), "--encoder-width", "8", "--encoder-epochs", "1", "--encoder-batch", "32",
            "--gen-width", "8", "--noise-dim", "16", "--batch-gen", "12", "--batch-real", "12", "--gen-steps", "3",
            "--device", "cpu", "--no-progress"]
    main(["train", "--out", str(run), *opts])
    main(["sample", "--out", str(run), "--n", "30", "--shard-size", "16", "--no-progress"])
    shards = sorted((run / "samples").glob("samples-*.npz"))
    assert len(shards) == 2
    images = np.concatenate([np.load(s)["images"] for s in shards])
    assert images.shape == (30, 32, 32, 3) and images.dtype == np.uint8
    assert (run / "samples" / "grid.png").exists()
    stand_in = tmp_path / "stand_in_inception.pt"
    with warnings.catch_warnings():  # newer torch marks TorchScript deprecated; the FID network is TorchScript
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(_StandIn()).save(str(stand_in))
    main(["fid", "--out", str(run), "--inception", str(stand_in), "--ref-data", str(zipped), "--n", "30",
          "--no-progress"])
    fid_line = json.loads((run / "log.jsonl").read_text().splitlines()[-1])
    assert fid_line["event"] == "fid" and fid_line["n"] == 30 and fid_line["fid"] > 0 and "kid" in fid_line
    assert fid_line["encoder"] == "own"
    shard_fid = main(["fid", "--samples", str(run / "samples"), "--inception", str(stand_in), "--ref-stats",
                      str(run / "fid_ref_train.zip.npz"), "--n", "30", "--no-progress"])
    assert shard_fid["fid"] > 0
    main(["plot", "--out", str(run)])
    assert (run / "curves.png").exists()
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--gen-steps" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------ precision


@pytest.mark.parametrize("capability, expected", [((9, 0), "bf16"), ((8, 0), "bf16"), ((8, 6), "bf16"),
                                                  ((7, 5), "fp16"), ((7, 0), "fp16"), ((6, 0), "fp16")])
def test_auto_precision_follows_the_gpus_capability(monkeypatch, capability, expected):
    """H100 9.0, A100 8.0, RTX 30xx 8.6: bf16; T4 7.5, V100 7.0, P100 6.0: fp16 (the query faked on a CPU)."""
    asked = []

    def fake(device=None):
        asked.append(device)
        return capability

    monkeypatch.setattr(torch.cuda, "get_device_capability", fake)
    precision, why = choose_precision("auto", torch.device("cuda:1"))
    assert precision == expected and f"{capability[0]}.{capability[1]}" in why
    assert asked == [torch.device("cuda:1")], "the capability of the run's own device is asked"
    assert choose_precision("fp32", torch.device("cuda"))[0] == "fp32", "an explicit choice is kept"


def test_auto_precision_is_fp32_on_a_cpu_and_an_explicit_choice_is_kept(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: pytest.fail("not a CUDA device"))
    assert choose_precision("auto", torch.device("cpu"))[0] == "fp32"
    assert [choose_precision(a, torch.device("cpu"))[0] for a in ("bf16", "fp16", "fp32")] == ["bf16", "fp16", "fp32"]
    with pytest.raises(ValueError, match="amp"):
        CifarConfig(amp="fp8")
    assert CifarConfig.from_dict({"amp": True}).amp == "auto" and CifarConfig.from_dict({"amp": False}).amp == "fp32"


def test_the_precision_is_printed_and_stored_and_follows_each_invocation(tmp_path, archive, capsys):
    run = tmp_path / "run"
    train(tiny(archive, amp="fp16"), run, progress=False, max_steps=2)
    assert "precision: fp16 (as asked)" in capsys.readouterr().out
    assert json.loads((run / "config.json").read_text())["amp"] == "fp16"
    assert json.loads((run / "log.jsonl").read_text().splitlines()[0])["precision"] == "fp16"
    stored = _weights(run)
    assert stored["config"]["amp"] == "fp16" and stored["scaler"]["scale"] > 0
    train(tiny(archive), run, progress=False)  # resumed with the default "auto": a CPU runs fp32
    assert "precision: fp32 (auto: cpu device)" in capsys.readouterr().out
    assert json.loads((run / "config.json").read_text())["amp"] == "fp32" and _weights(run)["step"] == 6


def test_fp16_overflow_skips_the_step_and_lowers_the_scale(archive):
    tr = _trainer(archive, amp="fp16")
    tr.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**100)  # the scaled fp16 gradients overflow
    before = {k: v.clone() for k, v in tr.net.state_dict().items()}
    ema_before = {k: v.clone() for k, v in tr.ema.state_dict().items()}
    info = tr.train_step()
    assert not np.isfinite(info["grad_norm"]) and info["loss_scale"] == 2.0**100
    assert tr.scaler.get_scale() == 2.0**99 and tr.step == 1, "skipped, scale halved, the schedule goes on"
    assert all(torch.equal(before[k], v) for k, v in tr.net.state_dict().items()), "weights untouched"
    assert all(torch.equal(ema_before[k], v) for k, v in tr.ema.state_dict().items()), "EMA untouched"
    with torch.no_grad():
        tr.net.out.weight.fill_(float("nan"))
    with pytest.raises(NonFiniteLoss):  # a non-finite loss is a fault, not an overflow, even with a scaler
        tr.train_step()
