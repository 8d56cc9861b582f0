"""Mixed precision that follows the device: bf16, fp16 with a gradient scaler, or float32.

``--amp auto`` (the default) picks, from the device's compute capability:

* **bf16** on a CUDA GPU of capability 8.0 or more (A100, H100, RTX 30xx and later), whose tensor cores run
  bf16. bf16 keeps float32's 8 exponent bits, so no gradient is too small for it and no loss scaling is needed.
* **fp16** on an older CUDA GPU (T4 is 7.5, V100 7.0): their tensor cores run fp16 only and bf16 runs there
  without them, several times slower. fp16 has 5 exponent bits: a gradient below 2^-24 (6e-8) becomes zero. So
  the loss is multiplied by a scale S before the backward pass and the gradients divided by S after it
  (``torch.amp.GradScaler``); a step whose scaled gradient overflowed is skipped and S halved, and S doubles
  after 2,000 steps without an overflow.
* **fp32** on anything else (a CPU): no autocast.

``--amp bf16``, ``fp16`` or ``fp32`` is kept as asked, on any device (the tests run bf16 and fp16 on a CPU).
In every case the distances and softmaxes of the loss stay float32 (``kernels.full_precision``), and the
weights, gradients and optimiser state are float32: autocast only changes the dtype of operations' inputs.
"""

from __future__ import annotations

import torch

PRECISIONS = ("bf16", "fp16", "fp32")


def choose_precision(amp: str, device: torch.device) -> tuple[str, str]:
    """The precision of a run, ``"bf16"``, ``"fp16"`` or ``"fp32"``, and the reason for it in words.

    ``amp="auto"`` follows ``device`` as the module docstring says (bf16 from compute capability 8.0 on);
    any other value is returned as it is.
    """
    if amp in PRECISIONS:
        return amp, "as asked"
    if amp != "auto":
        raise ValueError(f"amp must be 'auto' or one of {PRECISIONS}, got {amp!r}")
    if device.type != "cuda":
        return "fp32", f"auto: {device.type} device"
    major, minor = torch.cuda.get_device_capability(device)
    if major >= 8:
        return "bf16", f"auto: compute capability {major}.{minor} has bf16 tensor cores"
    return "fp16", f"auto: compute capability {major}.{minor} has no fast bf16, so fp16 with a gradient scaler"


def autocast(precision: str, device: torch.device):
    """The autocast context of ``precision`` on ``device`` (a disabled one for fp32)."""
    dtype = torch.float16 if precision == "fp16" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype, enabled=precision != "fp32")


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """A gradient scaler, enabled for fp16 only (disabled, it passes the loss and the step through unchanged)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
