"""drifting_min.cifar on tiny synthetic data: readers, resume-safe order, encoder, training, resume, sampling.

Everything runs on a CPU in float32 with the TINY configuration (a few steps of 20 + 20 images, an 8-channel
encoder), so the whole file takes well under a minute on two cores.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
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
    """The TINY config on ``archive``, its decoded-image cache beside it (not in the working directory)."""
    return CifarConfig(**{**TINY, "data": str(archive), "data_dir": str(archive.parent / "cache"), **change})


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
    c, lc = cdata.load_images(zipped, data_dir=tmp_path / "cache")
    assert list((tmp_path / "cache").glob("train.zip.train.*.images.npy")), "decoded once, cached in data_dir"
    assert not list(tmp_path.glob("*.npy")), "nothing is written beside the user's data"
    d, ld = cdata.load_images(zipped, data_dir=tmp_path / "cache")
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


def test_relative_energy_distance_against_a_float64_loop():
    from drifting_min.cifar.train import relative_energy_distance

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(9, 5, generator=g), torch.randn(12, 5, generator=g) + 0.7

    def mean_distance(u, v, distinct):
        pairs = [(i, j) for i in range(len(u)) for j in range(len(v)) if not (distinct and i == j)]
        return sum(float((u[i].double() - v[j].double()).norm()) for i, j in pairs) / len(pairs)

    ref = (2 * mean_distance(a, b, False) - mean_distance(a, a, True) - mean_distance(b, b, True))
    assert relative_energy_distance(a, b) == pytest.approx(ref / mean_distance(b, b, True), rel=1e-5)
    assert relative_energy_distance(3 * a, 3 * b) == pytest.approx(relative_energy_distance(a, b), rel=1e-5)
    same = [relative_energy_distance(torch.randn(64, 16, generator=g), torch.randn(64, 16, generator=g))
            for _ in range(20)]
    assert abs(np.mean(same)) < 0.01, "unbiased: about 0 for two samples of one distribution"
    shifted = relative_energy_distance(torch.randn(64, 16, generator=g) + 1, torch.randn(64, 16, generator=g))
    assert shifted > 10 * np.std(same)


def test_the_bar_shows_the_energy_and_each_raw_drift_over_its_real_level():
    from drifting_min.cifar.train import bar_fields

    info = {"loss": 140.0, "raw_drift_sq": [0.1, 0.3, 0.24], "energy": 0.0512}
    fields = bar_fields(info, {"raw_drift_sq": [0.2, 0.3, 0.12], "energy": 0.0}, 81.4)
    assert fields == {"energy": "0.051", "F2/real": "0.50,1.00,2.00", "img_s": "81"}


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
    assert all(math.isfinite(ln["energy"]) for ln in log if "loss" in ln)
    assert len(log[0]["real_vs_real"]["raw_drift_sq"]) == 3 and "energy" in log[0]["real_vs_real"]
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


def test_time_limit_stops_every_stage_and_the_resumed_run_is_the_same(tmp_path, archive):
    """--minutes spent at once: each call makes one step (encoder or generator), saves and stops; calling again
    and again ends with the weights of an uninterrupted run, bit for bit."""
    cfg = tiny(archive, gen_steps=4)
    whole = train(cfg, tmp_path / "whole", progress=False)
    stops = []
    for _ in range(20):
        result = train(dataclasses.replace(cfg, minutes=1e-9), tmp_path / "part", progress=False)
        if result["stopped"] == "done":
            break
        assert "time limit" in result["stopped"]
        stops.append((result["where"].split(" stage")[0], Path(result["saved"]).name))
    encoder_steps = math.ceil(cfg.encoder_epochs * 120 / cfg.encoder_batch)
    assert stops == ([("in the encoder", "encoder_ckpt.pt")] * (encoder_steps - 1)
                     + [("in the generator", "ckpt.pt")] * (cfg.gen_steps - 1)), stops
    assert not (tmp_path / "part" / "encoder_ckpt.pt").exists(), "the encoder's checkpoint goes once it is done"
    a, b = _weights(tmp_path / "whole"), _weights(tmp_path / "part")
    enc_a, enc_b = (torch.load(tmp_path / r / "encoder.pt", weights_only=False)["state_dict"]
                    for r in ("whole", "part"))
    assert all(torch.equal(enc_a[n], enc_b[n]) for n in enc_a), "the encoder resumed mid-stage differs"
    assert all(torch.equal(a["ema"][n], b["ema"][n]) for n in a["ema"]), "the EMA differs after the resumes"
    assert whole["step"] == b["step"] == cfg.gen_steps


def test_the_encoder_stage_resumes_in_fp16_with_its_loss_scale_and_in_another_precision(tmp_path, archive, capsys):
    """fp16 on a CPU: the encoder's checkpoint keeps the gradient scaler's state, and the stage stopped and
    resumed in fp16 ends bit for bit as an uninterrupted one; the same checkpoint also resumes (it does not start
    again) in another precision, as the generator's does."""
    import shutil

    cfg = tiny(archive, gen_steps=1, amp="fp16")
    train(cfg, tmp_path / "whole", progress=False)
    first = train(dataclasses.replace(cfg, minutes=1e-9), tmp_path / "part", progress=False)
    assert first["where"].startswith("in the encoder stage at step 1 of"), first
    saved = torch.load(tmp_path / "part" / "encoder_ckpt.pt", weights_only=False)
    assert saved["scaler"]["scale"] > 0, "the fp16 loss scale is part of the encoder's checkpoint"
    shutil.copytree(tmp_path / "part", tmp_path / "fp32")
    capsys.readouterr()
    train(cfg, tmp_path / "part", progress=False)
    assert "resuming the encoder stage at step 1" in capsys.readouterr().out
    enc_a, enc_b = (torch.load(tmp_path / r / "encoder.pt", weights_only=False)["state_dict"]
                    for r in ("whole", "part"))
    assert all(torch.equal(enc_a[n], enc_b[n]) for n in enc_a), "the fp16 encoder resumed mid-stage differs"
    train(dataclasses.replace(cfg, amp="fp32"), tmp_path / "fp32", progress=False)
    out = capsys.readouterr().out
    assert "precision: fp32 (as asked)" in out and "resuming the encoder stage at step 1" in out


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
    opts = ["--data", str(zipped), "--data-dir", str(tmp_path / "cache"), "--encoder-width", "8",
            "--encoder-epochs", "1", "--encoder-batch", "32",
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



# ------------------------------------------------------------------------------ the command, as users meet it


def _files(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` and the hash of its bytes."""
    import hashlib

    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _tiny_options(data: Path, cache: Path) -> list[str]:
    return ["--data", str(data), "--data-dir", str(cache), "--encoder-width", "8", "--encoder-epochs", "2",
            "--encoder-batch", "64", "--gen-width", "8", "--noise-dim", "16", "--batch-gen", "20", "--batch-real",
            "20", "--gen-steps", "4", "--warmup", "2", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, archive) -> tuple[Path, list[str]]:
    """A run trained to its end, and the options that made it."""
    run = tmp_path_factory.mktemp("existing") / "run"
    opts = _tiny_options(archive, archive.parent / "cache")
    main(["train", "--out", str(run), *opts])
    return run, opts


def _fails(argv: list[str], capsys, code: int = 2) -> str:
    """Run the command, expect exit status ``code`` and one line on stderr without a traceback; return it."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == code, (exit_info.value.code, argv)
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("error: ")
    return err


@pytest.mark.parametrize("option, value, message", [
    ("--lr", "-1", "--lr must be a positive number, got -1.0"),
    ("--lr", "0", "--lr must be a positive number, got 0.0"),
    ("--lr", "nan", "--lr must be a positive number"),
    ("--batch-gen", "1", "--batch-gen must be at least 2"),
    ("--taus", "0", "--taus must be positive numbers, got 0.0"),
    ("--encoder-epochs", "0", "--encoder-epochs must be a positive number"),
    ("--minutes", "-1", "--minutes must be zero or more"),
    ("--ema", "1", "--ema must be in [0, 1)"),
    ("--feature-stages", "3", "--feature-stages must be among 0, 1, 2, got 3"),
    ("--patch-sizes", "-2", "--patch-sizes must be positive numbers"),
    ("--snapshot-every", "-1", "--snapshot-every must be zero or more"),
    ("--device", "cuda:abc", "--device cuda:abc: not a device name"),
    ("--data", "/no/such/images.zip", "--data /no/such/images.zip: no such file or folder"),
    ("--encoder", "/no/such/encoder.pt", "--encoder /no/such/encoder.pt: no such file or folder"),
])
def test_bad_settings_are_one_line_errors_that_change_nothing(finished_run, capsys, option, value, message):
    run, opts = finished_run
    before = _files(run)
    err = _fails(["train", "--out", str(run), *opts, option, value], capsys)
    assert message in err
    assert _files(run) == before, "a refused command changed the run folder"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_no_gpu_is_an_error_before_the_data_loads(finished_run, capsys, monkeypatch):
    run, opts = finished_run
    before = _files(run)
    from drifting_min.cifar import train as train_module

    monkeypatch.setattr(train_module, "load_images", lambda *a, **k: pytest.fail("the data was loaded"))
    err = _fails(["train", "--out", str(run), *opts, "--device", "cuda"], capsys)
    assert "--device cuda: torch sees no CUDA GPU" in err and "--device cpu" in err
    assert _files(run) == before


def test_another_runs_folder_with_other_data_is_refused_untouched(finished_run, tmp_path, capsys):
    run, opts = finished_run
    before = _files(run)
    other = write_archive(tmp_path / "other.tar.gz", seed=100)
    err = _fails(["train", "--out", str(run), *opts, "--data", str(other)], capsys)
    assert f"--out {run} holds a run trained on other data" in err and "use another --out" in err
    assert _files(run) == before, "config.json or anything else of the run was rewritten"


def test_a_second_trainer_on_a_locked_folder_is_refused(finished_run, capsys):
    import fcntl

    run, opts = finished_run
    before = _files(run)
    with open(run / ".lock", "r+") as holder:  # another trainer holds the lock (an open file of its own)
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        holder.write("4242")
        holder.flush()
        err = _fails(["train", "--out", str(run), *opts], capsys)
        holder.truncate(0)
    assert "is in use by another trainer (pid 4242)" in err
    assert _files(run) == before
    main(["train", "--out", str(run), *opts])  # the lock is gone with its holder: the same command runs


def _zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, raw in entries.items():
            z.writestr(name, raw)
    return path


def _png(seed: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(synthetic(1, seed)[0][0]).save(buffer, format="PNG")
    return buffer.getvalue()


def test_unusable_data_is_a_one_line_error_and_a_new_run_leaves_nothing(tmp_path, capsys):
    good = write_folder(tmp_path / "imgs", n=12, zip_path=tmp_path / "good.zip")
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (tmp_path / "empty").mkdir()
    cases = {
        "truncated": (truncated, "truncated.zip: cannot open the zip file"),
        "top level": (_zip(tmp_path / "flat.zip", {f"{i}.png": _png(i) for i in range(8)}),
                      "images must sit in one subfolder per class"),
        "one class": (_zip(tmp_path / "one.zip", {f"train/{i}.png": _png(i) for i in range(8)}),
                      "all 8 images are in one folder, so there is one class"),
        "empty": (tmp_path / "empty", "no images found"),
        "text as jpg": (_zip(tmp_path / "text.zip", {"train/cat/0.jpg": b"hello", "train/dog/1.png": _png(1)}),
                        "cannot read image train/cat/0.jpg"),
    }
    for name, (data, message) in cases.items():
        run = tmp_path / f"run_{name.replace(' ', '_')}"
        err = _fails(["train", "--out", str(run), *_tiny_options(data, tmp_path / "cache")], capsys)
        assert message in err and str(data) in err, (name, err)
        assert not run.exists(), f"{name}: a new run that failed left {list(run.iterdir())}"
    empty_run = tmp_path / "made_by_the_user"
    empty_run.mkdir()
    _fails(["train", "--out", str(empty_run), *_tiny_options(tmp_path / "empty", tmp_path / "cache")], capsys)
    assert empty_run.is_dir() and not list(empty_run.iterdir()), "the user's empty folder stays, and empty"


def test_no_network_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    import urllib.error

    def offline(url, filename):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(cdata.urllib.request, "urlretrieve", offline)
    opts = _tiny_options(Path("download"), tmp_path / "data")
    err = _fails(["train", "--out", str(tmp_path / "run"), *opts], capsys)
    assert "could not download" in err and "pass --data PATH" in err
    assert not (tmp_path / "run").exists() and not list((tmp_path / "data").iterdir()), "a partial file was kept"


def test_debug_variable_shows_the_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("DRIFTING_DEBUG", "1")
    with pytest.raises(ValueError, match="--lr must be a positive number"):
        main(["train", "--out", str(tmp_path / "run"), "--lr", "0"])


def test_ctrl_c_in_the_encoder_saves_says_how_to_resume_and_resumes(tmp_path, archive, capsys, monkeypatch):
    from drifting_min.cifar import train as train_module

    real = train_module.train_encoder

    def interrupted_once(*args, stop, **kwargs):
        sent = []

        def stop_after_ctrl_c():
            if not sent:
                sent.append(os.kill(os.getpid(), signal.SIGINT))  # Ctrl-C during the first encoder step
            return stop()

        return real(*args, stop=stop_after_ctrl_c, **kwargs)

    run = tmp_path / "run"
    argv = ["train", "--out", str(run), *_tiny_options(archive, archive.parent / "cache")]
    monkeypatch.setattr(train_module, "train_encoder", interrupted_once)
    capsys.readouterr()
    first = main(argv)
    err = capsys.readouterr().err
    assert first["step"] == 0 and (run / "encoder_ckpt.pt").exists() and not (run / "encoder.pt").exists()
    assert "interrupted (SIGINT) in the encoder stage at step 1 of 4: saved" in err and "encoder_ckpt.pt" in err
    assert "the same command resumes: python -m drifting_min.cifar train --out" in err
    monkeypatch.setattr(train_module, "train_encoder", real)
    assert main(argv)["step"] == 4
    assert "resuming the encoder stage at step 1 of 4" in capsys.readouterr().out


def test_a_crash_in_the_encoder_stage_keeps_its_checkpoint_and_the_rerun_ends_the_same(tmp_path, archive,
                                                                                      monkeypatch):
    from drifting_min.cifar import train as train_module

    cfg = tiny(archive, gen_steps=2)
    real = train_module.train_encoder

    def crashing(*args, stop, **kwargs):  # the machine is lost after the encoder's second step
        steps = []

        def stop_or_crash():
            steps.append(1)
            if len(steps) == 2:
                raise RuntimeError("lost machine")
            return stop()

        return real(*args, stop=stop_or_crash, **kwargs)

    monkeypatch.setattr(train_module, "train_encoder", crashing)
    with pytest.raises(RuntimeError, match="lost machine"):
        train(cfg, tmp_path / "run", progress=False)
    saved = torch.load(tmp_path / "run" / "encoder_ckpt.pt", weights_only=False)
    assert saved["step"] == 1, "the periodic save of step 1 is kept (the folder too)"
    monkeypatch.setattr(train_module, "train_encoder", real)
    train(cfg, tmp_path / "run", progress=False)
    train(cfg, tmp_path / "whole", progress=False)
    a, b = (torch.load(tmp_path / r / "ema.pt", weights_only=False)["ema"] for r in ("run", "whole"))
    assert all(torch.equal(a[n], b[n]) for n in a), "the run resumed after a crash differs from an uninterrupted one"


def test_fid_with_too_few_samples_is_refused_before_the_inception_network(tmp_path, capsys):
    from drifting_min.cifar import fid

    fid.write_shards(synthetic(30, 0)[0], tmp_path / "shards")
    not_a_network = tmp_path / "inception.pt"
    not_a_network.write_bytes(b"never read")
    stats = tmp_path / "stats.npz"
    stats.write_bytes(b"never read")
    err = _fails(["fid", "--samples", str(tmp_path / "shards"), "--inception", str(not_a_network), "--ref-stats",
                  str(stats), "--no-progress"], capsys)
    assert "holds 30 images, fewer than --n 10000: pass --n 30" in err


def test_train_help_states_the_cpu_cost_and_the_cache(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "On a CPU they would take days" in text and "--preset cpu" in text
    assert "cached in --data-dir" in text


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
