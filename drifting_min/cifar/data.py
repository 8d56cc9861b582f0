"""CIFAR-10 images as one uint8 array, and a data order that survives a restart.

Sources (``load_images``):

* ``"download"``: the official python archive from the University of Toronto, md5-checked
  (Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009);
* a local ``cifar-10-python.tar.gz`` (pickled batches ``data_batch_1..5`` and ``test_batch``);
* a folder or a ``.zip`` of 32x32 images with one subfolder per class (``train/<class>/0001.jpg``),
  decoded with Pillow.

Whatever the source, the images are decoded once into ``images`` (N, 32, 32, 3) uint8 and ``labels`` (N,)
int64, and cached as two ``.npy`` files in a cache folder (the trainer's ``--data-dir``; 3 KB an image, about
150 MB for CIFAR-10's training set), never beside the user's data; the size is printed when they are written.
Bad input raises ``DataError`` with a message that names the file and what is wrong with it.

Order. ``stream_indices(n, key, start, count)`` reads positions ``start .. start + count`` of an endless stream
made of one permutation of ``range(n)`` per epoch, the permutation of epoch e being a function of (key, e) only.
So the real images of training step s are a function of (seed, s) only, and a run resumed at step s draws the
batches an uninterrupted run would have drawn. ``RealSampler`` keeps one such stream per class (the per-class
queues of the paper's batch) or one for the whole set.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import pickle
import tarfile
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import torch

from .config import UsageError

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE_NAME = "cifar-10-python.tar.gz"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
SIZE = 32


class DataError(UsageError):
    """The training or test images cannot be used; the message says which file and why."""


# ------------------------------------------------------------------------------------------ sources


def md5sum(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def check_md5(path: str | Path, expected: str = MD5) -> None:
    """Raise ``DataError`` unless the file's md5 is ``expected``."""
    got = md5sum(path)
    if got != expected:
        raise DataError(f"{path}: md5 {got} does not match the expected {expected}; the file is corrupt or "
                        "another file: delete it and download it again")


def download(dest_dir: str | Path, url: str = URL, md5: str = MD5) -> Path:
    """The official archive in ``dest_dir`` (downloaded with urllib if missing), md5-checked."""
    dest = Path(dest_dir) / ARCHIVE_NAME
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(".part")
        print(f"downloading {url} to {dest}")
        try:
            urllib.request.urlretrieve(url, tmp)
        except OSError as e:
            raise DataError(f"could not download {url} ({e}); download it by hand and pass --data PATH") from e
        try:
            check_md5(tmp, md5)
        except DataError:
            tmp.unlink()
            raise
        os.replace(tmp, dest)
    check_md5(dest, md5)
    return dest


def read_archive(path: str | Path, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """The train (``data_batch_1..5``) or test (``test_batch``) images of a CIFAR-10 python archive."""
    wanted = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    try:
        with tarfile.open(path, "r:*") as tar:
            members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
            missing = [w for w in wanted if w not in members]
            if missing:
                raise DataError(f"{path}: not a CIFAR-10 python archive (no {', '.join(missing)} inside)")
            parts = [_read_batch(tar.extractfile(members[w]).read(), f"{path}:{w}") for w in wanted]
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataError(f"{path}: cannot read the archive ({e}); it is corrupt or truncated") from e
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _read_batch(raw: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = pickle.loads(raw, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except Exception as e:  # a damaged pickle can raise nearly anything
        raise DataError(f"{where}: not a CIFAR-10 batch ({type(e).__name__}: {e})") from e
    if data.ndim != 2 or data.shape[1] != 3 * SIZE * SIZE or len(labels) != len(data):
        raise DataError(f"{where}: expected N x 3072 pixels and N labels, got {data.shape} and {labels.shape}")
    return data.reshape(-1, 3, SIZE, SIZE).transpose(0, 2, 3, 1).copy(), labels


def read_image_folder(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images of a folder or a .zip with one subfolder per class; classes sorted by name; files sorted."""
    path = Path(path)
    if path.suffix.lower() == ".zip":
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as e:
            raise DataError(f"{path}: cannot open the zip file ({e}); it is corrupt or not a zip") from e
        with archive:
            names = sorted(n for n in archive.namelist() if n.lower().endswith(IMAGE_EXTENSIONS))
            files = [(n, Path(n).parent.name) for n in names]
            return _decode(path, files, lambda n: archive.read(n))
    if not path.is_dir():
        raise DataError(f"{path}: no such folder, zip or archive")
    names = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    files = [(p, p.parent.name if p.parent != path else "") for p in names]
    return _decode(path, files, lambda p: Path(p).read_bytes())


def _decode(root: Path, files: list, read) -> tuple[np.ndarray, np.ndarray, list[str]]:
    from PIL import Image

    if not files:
        raise DataError(f"{root}: no images found (expected <class>/<name>.png or .jpg inside)")
    if any(cls == "" for _, cls in files):
        raise DataError(f"{root}: images must sit in one subfolder per class, found some at the top level")
    classes = sorted({cls for _, cls in files})
    index = {c: i for i, c in enumerate(classes)}
    images = np.empty((len(files), SIZE, SIZE, 3), dtype=np.uint8)
    for i, (name, _) in enumerate(files):
        try:
            with Image.open(io.BytesIO(read(name))) as im:
                if im.size != (SIZE, SIZE):
                    raise DataError(f"{root}: {name} is {im.size[0]}x{im.size[1]}, every image must be 32x32")
                images[i] = np.asarray(im.convert("RGB"))
        except DataError:
            raise
        except Exception as e:
            raise DataError(f"{root}: cannot read image {name} ({type(e).__name__}: {e})") from e
    labels = np.array([index[cls] for _, cls in files], dtype=np.int64)
    return images, labels, classes


# ------------------------------------------------------------------------------------------ cached loading


def load_images(source: str | Path, split: str = "train", data_dir: str | Path = "data/cifar10",
                cache_dir: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 N x 32 x 32 x 3, labels int64 N)`` from a source (see the module docstring), cached in
    ``cache_dir`` (default: ``data_dir``, where "download" also puts the archive)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    src = download(data_dir) if str(source) == "download" else Path(source)
    if not src.exists():
        raise DataError(f"{src}: no such file or folder")
    stat = src.stat()
    tag = hashlib.sha1(f"{src.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{split}".encode()).hexdigest()[:10]
    folder = Path(cache_dir if cache_dir is not None else data_dir)
    img_f, lab_f = (folder / f"{src.name}.{split}.{tag}.{part}.npy" for part in ("images", "labels"))
    if img_f.exists() and lab_f.exists():
        return np.load(img_f), np.load(lab_f)
    if src.is_dir() or src.suffix.lower() == ".zip":
        images, labels, _ = read_image_folder(src)
    else:
        images, labels = read_archive(src, split)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for path, arr in ((lab_f, labels), (img_f, images)):
            tmp = path.with_name(path.name + ".tmp.npy")
            np.save(tmp, arr)
            os.replace(tmp, path)
        print(f"decoded {len(images)} images of {src}; cached them in {img_f} ({img_f.stat().st_size / 1e6:.0f} MB)")
    except OSError as e:
        print(f"decoded {len(images)} images of {src}; could not cache them in {folder} ({e})")
    return images, labels


def fingerprint(images: np.ndarray, labels: np.ndarray) -> str:
    """A short hash of the decoded data: an encoder cached for other data is not reused."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(np.ascontiguousarray(images).tobytes())
    digest.update(np.ascontiguousarray(labels).tobytes())
    return digest.hexdigest()


def to_float(images_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 32, 32, 3) -> float32 (B, 3, 32, 32) in [-1, 1]."""
    return images_uint8.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float (B, 3, 32, 32) in [-1, 1] -> uint8 (B, 32, 32, 3), rounded."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)


# ------------------------------------------------------------------------------------------ resume-safe order


def mix(*keys: int) -> int:
    """A 63-bit seed from integers (a different stream for every tuple of keys)."""
    return int.from_bytes(hashlib.blake2b(repr(tuple(int(k) for k in keys)).encode(), digest_size=8).digest(),
                          "little") >> 1


@functools.lru_cache(maxsize=64)
def epoch_permutation(n: int, key: int, epoch: int) -> torch.Tensor:
    """The order of epoch ``epoch``: a permutation of range(n) that depends on (key, epoch) only (cached: treat
    the result as read-only)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(mix(key, epoch)))


def stream_indices(n: int, key: int, start: int, count: int) -> torch.Tensor:
    """Positions start .. start + count - 1 of the stream epoch_permutation(n, key, 0), (.., 1), ..."""
    if n < 1:
        raise ValueError("cannot draw from an empty set")
    out, pos = [], start
    while pos < start + count:
        epoch, offset = divmod(pos, n)
        take = min(n - offset, start + count - pos)
        out.append(epoch_permutation(n, key, epoch)[offset:offset + take])
        pos += take
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


class RealSampler:
    """Indices of the real images of step s, a function of (seed, s) only.

    ``per_class=False``: ``batch`` images a step from one stream over the whole set (unconditional runs).
    ``per_class=True``: ``batch / K`` images of each of the K classes from its own stream (the per-class
    queues of the paper); the indices come class by class, so a reshape to (K, batch / K) groups them.
    """

    def __init__(self, labels: np.ndarray | torch.Tensor, seed: int, batch: int, per_class: bool):
        labels = torch.as_tensor(labels)
        self.seed, self.batch, self.per_class = seed, batch, per_class
        self.classes = int(labels.max()) + 1 if len(labels) else 0
        self.by_class = [torch.nonzero(labels == c).flatten() for c in range(self.classes)]
        self.n = len(labels)
        if per_class:
            empty = [c for c, idx in enumerate(self.by_class) if len(idx) == 0]
            if empty or batch % self.classes:
                raise ValueError(f"per-class batches need every class present (missing {empty}) and a batch "
                                 f"divisible by the {self.classes} classes (got {batch})")

    def __call__(self, step: int) -> torch.Tensor:
        if not self.per_class:
            return stream_indices(self.n, mix(self.seed, 1), step * self.batch, self.batch)
        k = self.batch // self.classes
        return torch.cat([idx[stream_indices(len(idx), mix(self.seed, 2, c), step * k, k)]
                          for c, idx in enumerate(self.by_class)])


def noise(step: int, n: int, dim: int, seed: int) -> torch.Tensor:
    """The generator's noise of step s (CPU, float32), a function of (seed, s) only."""
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(mix(seed, 3, step)))
