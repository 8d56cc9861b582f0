"""Every setting of the CIFAR-10 trainer, written once.

``CifarConfig`` is the single place where a knob, its default and its help text live; the command-line options
of ``python -m drifting_min.cifar`` are made from it. A run stores its config next to its checkpoints, and the
same command again (same ``--out``) resumes with it.

The defaults are sized for one H100/H200-class GPU: the encoder trains for about a minute, the generator for
about six (``gen_steps`` steps of ``batch_gen`` generated images against ``batch_real`` real ones), in bf16
autocast with the distances and softmaxes in float32 (``amp="auto"`` picks fp16 on older GPUs: see
``precision``). On a CPU they would take days: use the ``cpu`` preset (``PRESETS``), or a tiny configuration
(``TINY`` for seconds). A bad value raises ``UsageError`` naming the option (``--lr must be a positive number``)
when the config is made, before anything runs.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Literal

from ..cli import setting as _opt


class UsageError(ValueError):
    """An expected error: a bad setting, a missing or unusable file, a run folder that cannot take this run.

    The message is one line that names the option or the file and says what to do; the command prints it
    without a traceback and exits with status 2 (``DRIFTING_DEBUG=1`` shows the traceback).
    """


def flag(name: str) -> str:
    """The command-line option of a setting: ``batch_gen`` -> ``--batch-gen``."""
    return "--" + name.replace("_", "-")


@dataclass
class CifarConfig:
    # -- data
    data: str = _opt("download", "training images: 'download' (the official CIFAR-10 python archive, md5-checked, "
                     "kept in --data-dir), a cifar-10-python.tar.gz, or a folder or .zip of images with one "
                     "subfolder per class")
    test_data: str = _opt("", "test images for the encoder's accuracy (same formats; default: the archive's test "
                          "batch, else a held-out 5% of the training images)")
    data_dir: str = _opt("data/cifar10", "where 'download' puts the archive, and the cache of decoded images of "
                         "any --data (two .npy files, 3 KB an image: about 150 MB for the 50,000 training images)")
    # -- encoder (the feature space of the kernel)
    encoder: str = _opt("", "weights file of another encoder (an encoder.pt written by a run, or a TorchScript "
                        "module with feature_maps); default: train our own and cache it in the run folder")
    encoder_width: int = _opt(48, "channels of the own encoder's stem; its feature maps have 2w, 4w, 8w "
                              "(48: every feature has more than 64 dims, where distances take the fast "
                              "matrix-multiply route)")
    encoder_epochs: float = _opt(15.0, "epochs of supervised training of the own encoder")
    encoder_batch: int = _opt(512, "batch size of the encoder's training")
    encoder_lr: float = _opt(2e-3, "peak AdamW learning rate of the encoder (one-cycle schedule)")
    # -- generator
    conditional: bool = _opt(False, "class-conditional generator (per-class batches); default unconditional")
    noise_dim: int = _opt(128, "dimension of the generator's Gaussian noise")
    gen_width: int = _opt(64, "channels of the generator's last (32x32) stage; earlier stages 2x, 4x, 8x")
    # -- loss (drifting_min.features)
    taus: tuple[float, ...] = _opt((0.02, 0.05, 0.2), "temperatures (in units of the feature's mean distance)")
    raw_feature: bool = _opt(True, "also drift the raw pixels (one more feature)")
    feature_stages: tuple[int, ...] = _opt((0, 1, 2), "encoder stages whose features enter the loss (0: 16x16, "
                                           "1: 8x8, 2: 4x4)")
    locations: bool = _opt(True, "per-location feature vectors (a group per location) of those stages")
    patch_sizes: tuple[int, ...] = _opt((2, 4), "patch sizes of the patch mean/std features (0 alone: none)")
    # -- batch
    batch_gen: int = _opt(512, "generated images a step (negatives); conditional: split evenly over the classes "
                         "(use a multiple of the class count, e.g. 640 = 64 per class)")
    batch_real: int = _opt(512, "real images a step (positives); conditional: split evenly over the classes")
    # -- optimisation
    gen_steps: int = _opt(10000, "generator steps")
    lr: float = _opt(3e-4, "peak AdamW learning rate of the generator (betas 0.9, 0.95)")
    warmup: int = _opt(300, "linear warm-up steps of the learning rate")
    decay: Literal["none", "cosine"] = _opt("cosine", "after warm-up: constant ('none') or cosine to 10% of lr")
    weight_decay: float = _opt(0.0, "AdamW weight decay of the generator")
    clip: float = _opt(2.0, "gradient-norm clip")
    ema: float = _opt(0.999, "EMA decay of the generator's weights, reached after the warm-up (1 + s) / (10 + s)")
    # -- run
    seed: int = _opt(0, "seed of weights, noise and data order")
    device: str = _opt("auto", "auto (cuda if available), cpu, cuda, cuda:1, ...")
    amp: Literal["auto", "bf16", "fp16", "fp32"] = _opt(
        "auto", "mixed precision: auto follows the device (bf16 on GPUs of compute capability 8.0 or more, fp16 "
        "with a gradient scaler on older ones such as the T4 and V100, fp32 on a CPU); or bf16, fp16, fp32")
    minutes: float = _opt(0.0, "cap on this invocation's wall time (0: none): the stage under way (encoder or "
                          "generator) saves a checkpoint and stops; the same command resumes")
    ckpt_every: int = _opt(1000, "checkpoint every this many steps (and at the end)")
    grid_every: int = _opt(1000, "sample grid every this many steps (and at the end)")
    log_every: int = _opt(50, "log a line every this many steps")
    snapshot_every: int = _opt(0, "keep a copy of the EMA weights every this many steps in snapshots/ (0: none), "
                               "to measure quality along a run")
    threads: int = _opt(0, "CPU threads for torch (0: OMP_NUM_THREADS if set, else 1; see drifting_min.runtime)")

    def __post_init__(self):
        if isinstance(self.amp, bool):  # runs stored before amp named a precision: True was bf16 autocast on CUDA
            self.amp = "auto" if self.amp else "fp32"
        if self.amp not in ("auto", "bf16", "fp16", "fp32"):
            raise UsageError(f"--amp must be auto, bf16, fp16 or fp32, got {self.amp!r}")
        self.taus = tuple(float(t) for t in self.taus)
        for name in POSITIVE:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise UsageError(f"{flag(name)} must be a positive number, got {value}")
        for name in NON_NEGATIVE:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise UsageError(f"{flag(name)} must be zero or more, got {value}")
        if not self.taus or not all(math.isfinite(t) and t > 0 for t in self.taus):
            raise UsageError(f"--taus must be positive numbers, got {' '.join(map(str, self.taus)) or 'none'} "
                             "(the defaults are 0.02 0.05 0.2)")
        if self.batch_gen < 2:
            raise UsageError(f"--batch-gen must be at least 2 (each generated image is pushed away from the others "
                             f"of its batch), got {self.batch_gen}")
        if not 0.0 <= self.ema < 1.0:
            raise UsageError(f"--ema must be in [0, 1), got {self.ema}")
        self.feature_stages = tuple(int(i) for i in self.feature_stages)
        self.patch_sizes = tuple(int(p) for p in self.patch_sizes if int(p) != 0)
        if any(p < 0 for p in self.patch_sizes):
            raise UsageError(f"--patch-sizes must be positive numbers (0 alone: none), got "
                             f"{' '.join(map(str, self.patch_sizes))}")
        if not self.feature_stages or not set(self.feature_stages) <= {0, 1, 2}:
            raise UsageError(f"--feature-stages must be among 0, 1, 2, got "
                             f"{' '.join(map(str, self.feature_stages)) or 'none'}")
        if self.decay not in ("none", "cosine"):
            raise UsageError(f"--decay must be 'none' or 'cosine', got {self.decay!r}")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> CifarConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# settings checked when a config is made (the others have their own checks in __post_init__)
POSITIVE = ("encoder_width", "encoder_epochs", "encoder_batch", "encoder_lr", "noise_dim", "gen_width", "batch_real",
            "gen_steps", "lr", "clip", "ckpt_every", "grid_every", "log_every")
NON_NEGATIVE = ("warmup", "weight_decay", "minutes", "snapshot_every", "threads")

# Named presets: each is a set of overrides of CifarConfig's defaults (``--preset NAME``); options written on
# the command line win over the preset. "gpu" is what the command uses when no preset is named: the defaults,
# made class-conditional with 64 generated and 64 real images of each class a step (the paper's per-class
# count), because conditioning was the largest gain of the CPU screen (lesson 07 section 11).
PRESETS: dict[str, dict] = {
    "gpu": {"conditional": True, "batch_gen": 640, "batch_real": 640},
    # found by bench/cifar_cpu_recipe.py (lesson 07 section 11): about 15 minutes of one CPU thread end to end
    "cpu": {"conditional": True, "encoder_width": 16, "encoder_epochs": 2.0, "gen_width": 16, "noise_dim": 64,
            "batch_gen": 80, "batch_real": 80, "locations": False, "lr": 1e-3, "warmup": 50, "ema": 0.99,
            "gen_steps": 2000, "ckpt_every": 250, "grid_every": 250, "log_every": 20},
}
PRESET_HELP = {
    "gpu": "the defaults, class-conditional with 640 + 640 images a step, sized for one H100/H200-class GPU",
    "cpu": "class-conditional, small widths, 2,000 steps: about 15 minutes of one CPU thread, encoder included",
}


def preset_overrides(name: str, given: set[str]) -> dict:
    """The preset's settings that the command line did not set itself."""
    if name not in PRESETS:
        raise UsageError(f"--preset {name}: unknown preset; choose one of {', '.join(PRESETS)}")
    return {k: v for k, v in PRESETS[name].items() if k not in given}


# A configuration that trains end to end on a CPU in seconds (tests, the TINY GPU-script mode, the benchmark).
TINY = {"encoder_width": 8, "encoder_epochs": 2.0, "encoder_batch": 64, "gen_width": 8, "noise_dim": 16,
        "batch_gen": 20, "batch_real": 20, "gen_steps": 6, "warmup": 2, "ckpt_every": 3, "grid_every": 3,
        "log_every": 1, "device": "cpu"}
