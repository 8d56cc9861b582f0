"""Distances and kernels between two sets of samples.

Notation (the course's): queries ``x`` are N x D, targets ``y`` are M x D, ``tau`` is the temperature.

* Gaussian kernel  k(x, y) = exp(-|x - y|^2 / (2 tau^2))   (tau is a bandwidth)
* Laplace kernel   k(x, y) = exp(-|x - y| / tau)            (plain, not squared, distance)

Everything downstream works with the kernel's *logits* ``log k(x, y)``, so that normalising over a set
is a softmax (or a logsumexp) with no spurious underflow (no 0 / 0 where every kernel value is below float
range), even at tau = 0.02.
"""

from __future__ import annotations

import functools
import math

import torch

KERNELS = ("gaussian", "laplace")


def check_samples(name: str, samples: torch.Tensor, dim: int | None = None) -> None:
    """Raise a clear ``ValueError`` unless ``samples`` is a non-empty, finite (n, dim) matrix."""
    if not isinstance(samples, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(samples).__name__}")
    if samples.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (samples x dims) tensor, got shape {tuple(samples.shape)}")
    if samples.shape[0] == 0:
        raise ValueError(f"{name} is empty: it needs at least one sample")
    if dim is not None and samples.shape[1] != dim:
        raise ValueError(f"{name} has {samples.shape[1]} dimensions but the queries have {dim}")
    if not torch.isfinite(samples).all():
        raise ValueError(f"{name} contains NaN or Inf values")


def check_tau(tau: float) -> None:
    """Raise ``ValueError`` unless the temperature is a positive finite number."""
    if not (isinstance(tau, (int, float)) and math.isfinite(tau) and tau > 0):
        raise ValueError(f"the temperature tau must be a positive number, got {tau!r}")


def check_kernel(kernel: str) -> None:
    if kernel not in KERNELS:
        raise ValueError(f"unknown kernel {kernel!r}; choose one of {KERNELS}")


def _at_least_float32(t: torch.Tensor) -> torch.Tensor:
    """Distances and softmaxes run in float32 or float64, never in bf16/fp16 (they underflow)."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def full_precision(fn):
    """Run ``fn(x, ...)`` with autocast off, so that distances, softmaxes and weighted sums stay in float32
    (or float64) even inside a bf16 training step: at tau = 0.02 a bf16 softmax underflows."""

    @functools.wraps(fn)
    def run(x: torch.Tensor, *args, **kwargs):
        with torch.autocast(device_type=x.device.type, enabled=False):
            return fn(x, *args, **kwargs)

    return run


@full_precision
def pairwise_distances(x: torch.Tensor, y: torch.Tensor, squared: bool = False) -> torch.Tensor:
    """Euclidean distances ``d[i, j] = |x_i - y_j|`` (or their squares), shape N x M, in at least float32.

    Low dimension (D <= 64, the toys): the differences x_i - y_j are formed exactly (torch.cdist's exact mode on
    a CPU; on a GPU, where that mode is slow, by broadcasting). High dimension (features): the faster
    |x|^2 + |y|^2 - 2 x.y expansion, fine where distances are not small next to the norms.
    """
    check_samples("x", x)
    check_samples("y", y, dim=x.shape[1])
    x, y = _at_least_float32(x), _at_least_float32(y)
    if x.shape[1] > 64:
        dist = torch.cdist(x, y, compute_mode="use_mm_for_euclid_dist")
    elif x.device.type == "cpu":
        dist = torch.cdist(x, y, compute_mode="donot_use_mm_for_euclid_dist")
    else:
        dist = (x[:, None, :] - y[None, :, :]).norm(dim=-1)
    return dist.square() if squared else dist


def kernel_logits(x: torch.Tensor, y: torch.Tensor, tau: float, kernel: str = "gaussian") -> torch.Tensor:
    """``log k(x_i, y_j)``: ``-d^2 / (2 tau^2)`` for the Gaussian kernel, ``-d / tau`` for the Laplace kernel."""
    return logits_from_distances(pairwise_distances(x, y), tau, kernel)


def logits_from_distances(dist: torch.Tensor, tau: float, kernel: str = "gaussian") -> torch.Tensor:
    """``log k`` from the distances ``|x_i - y_j|``: ``-d^2 / (2 tau^2)`` (Gaussian) or ``-d / tau`` (Laplace).
    One distance matrix serves every temperature."""
    check_tau(tau)
    check_kernel(kernel)
    if kernel == "gaussian":
        return -dist.square() / (2.0 * tau**2)
    return -dist / tau


def kernel_matrix(x: torch.Tensor, y: torch.Tensor, tau: float, kernel: str = "gaussian") -> torch.Tensor:
    """The kernel values ``k(x_i, y_j)``, shape N x M."""
    return kernel_logits(x, y, tau, kernel).exp()
