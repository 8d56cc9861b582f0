"""What a graded check is made of: the ``exercise`` marker and assertions that explain themselves.

A graded check is a function ``test_...(ex)`` in ``lessons/NN/test_*.py``, decorated with
``@exercise("3.2", "mean_shift")``. ``ex`` is the module under test: the learner's ``lessons/NN/exercises.py``
or, with ``--solutions``, ``solutions/NN/exercises.py``. Every failure says what was expected, what came back,
which property broke, and a hint.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from typing import Callable

import numpy as np
import torch


def exercise(exercise_id: str, name: str) -> Callable:
    """Mark a check as grading exercise ``exercise_id`` (e.g. "3.2"), the function ``name``.

    It only sets ``check.exercise_id`` and ``check.exercise_name``, so that a notebook can run checks without
    pytest; the repository's ``conftest.py`` turns these attributes into ``pytest.mark.exercise(id, name)``.
    """

    def mark(check: Callable) -> Callable:
        check.exercise_id = exercise_id
        check.exercise_name = name
        return check

    return mark


class CheckFailed(AssertionError):
    """A graded check's failure: the property that broke, what was expected and what came back."""


def _array(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().double().numpy()
    return np.asarray(value, dtype=np.float64)


def _describe(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor of shape {tuple(value.shape)}, dtype {value.dtype}"
    return f"{type(value).__name__} {np.shape(value)}"


def _fail(prop: str, detail: str, hint: str) -> None:
    message = f"{prop}\n{detail}"
    if hint:
        message += f"\nHint: {hint}"
    raise CheckFailed(message)


FINITE_HINT = (
    "every value must be finite; a NaN or Inf comes from a division by zero, the log of 0, an exp that "
    "overflowed or underflowed (exp / sum), or an iteration that diverged"
)


def check_tensor(
    got, shape: tuple | None = None, *, name: str = "result", hint: str = "", finite_hint: str = FINITE_HINT
) -> None:
    """The result is a finite torch tensor of the given shape.

    ``hint`` is shown when the type or the shape is wrong, ``finite_hint`` when a value is NaN or Inf.
    """
    if not isinstance(got, torch.Tensor):
        _fail(f"{name} should be a torch.Tensor", f"got {_describe(got)}", hint)
    if shape is not None and tuple(got.shape) != tuple(shape):
        _fail(f"{name} has the wrong shape", f"expected {tuple(shape)}, got {tuple(got.shape)}", hint)
    if not torch.isfinite(got).all():
        bad = int((~torch.isfinite(got)).sum())
        _fail(f"{name} contains NaN or Inf", f"{bad} of {got.numel()} entries are not finite", finite_hint)


def check_close(
    got,
    expected,
    *,
    prop: str = "value matches the reference",
    rtol: float = 1e-5,
    atol: float = 1e-8,
    hint: str = "",
    finite_hint: str = FINITE_HINT,
) -> None:
    """``got`` equals ``expected`` elementwise within |got - expected| <= atol + rtol |expected|.

    On failure the message names the property, shows both shapes, the worst entry and the scale ratio
    (a ratio near -1 is a flipped sign; near 2 or tau^2 a scale mistake). ``hint`` is shown for a wrong
    shape or value, ``finite_hint`` when the result holds NaN or Inf.
    """
    g, e = _array(got), _array(expected)
    if g.shape != e.shape:
        _fail(f"{prop}: wrong shape", f"expected shape {e.shape}, got {g.shape}", hint)
    if not np.isfinite(g).all():
        _fail(f"{prop}: the result contains NaN or Inf", f"{int((~np.isfinite(g)).sum())} entries are not finite",
              finite_hint)
    err = np.abs(g - e)
    bound = atol + rtol * np.abs(e)
    if (err <= bound).all():
        return
    worst = np.unravel_index(np.argmax(err - bound), err.shape) if err.ndim else ()
    ratio = float((g * e).sum() / (e * e).sum()) if (e * e).sum() > 0 else float("nan")
    detail = (
        f"at index {tuple(int(i) for i in worst)}: expected {e[worst]:.6g}, got {g[worst]:.6g} "
        f"(max abs error {err.max():.3g}, tolerance {atol:g} + {rtol:g} * |expected|)\n"
        f"least-squares scale of got against expected: {ratio:.4g} (1 is right, -1 a flipped sign)"
    )
    _fail(prop, detail, hint)


def check_float32(
    got, expected, shape: tuple, *, name: str, prop: str, rtol: float, atol: float, hint: str = ""
) -> None:
    """A result computed from float32 inputs: float32 itself, finite, and within ``rtol`` / ``atol`` of the
    float64 ``expected`` (each lesson states why its tolerance is what it is). ``hint`` is shown when a value is
    NaN or Inf (default: FINITE_HINT)."""
    finite_hint = hint or FINITE_HINT
    check_dtype(got, torch.float32, name=name,
                hint="build every intermediate from the inputs (same dtype as x: torch.zeros_like(x), "
                "dtype=x.dtype); no .double() or dtype=torch.float64")
    check_tensor(got, shape, name=name, finite_hint=finite_hint)
    check_close(got, expected, rtol=rtol, atol=atol, prop=prop, finite_hint=finite_hint,
                hint="float32 results must match float64 to float32 accuracy: if the float64 checks pass, look for "
                "a step that loses precision (a cast to half, or a sum of large terms that cancel)")


def check_true(condition: bool, prop: str, detail: str = "", hint: str = "") -> None:
    """A property that must hold; ``prop`` says which one, ``detail`` shows the numbers."""
    if not bool(condition):
        _fail(prop, detail, hint)


def check_dtype(got, dtype: torch.dtype, *, name: str = "result", hint: str = "") -> None:
    """The result is a tensor of ``dtype`` (the dtype of the inputs, as the docstrings promise)."""
    if not isinstance(got, torch.Tensor):
        _fail(f"{name} should be a torch.Tensor", f"got {_describe(got)}", hint)
    if got.dtype != dtype:
        _fail(f"{name} keeps the dtype of the inputs", f"the inputs are {dtype}, the result is {got.dtype}", hint)


def check_no_graph(got, *, name: str = "result", hint: str = "") -> None:
    """The result is a constant for autograd: it neither requires grad nor carries a ``grad_fn``."""
    if not isinstance(got, torch.Tensor):
        _fail(f"{name} should be a torch.Tensor", f"got {_describe(got)}", hint)
    if got.requires_grad or got.grad_fn is not None:
        _fail(
            f"{name} is a constant: it carries no autograd graph, even when the inputs require grad",
            f"requires_grad={got.requires_grad}, grad_fn={type(got.grad_fn).__name__ if got.grad_fn else None}",
            hint,
        )


def _watched(value) -> bool:
    return isinstance(value, torch.Tensor) or dataclasses.is_dataclass(value) and not isinstance(value, type)


def _copy(value):
    return value.detach().clone() if isinstance(value, torch.Tensor) else copy.deepcopy(value)


def _change(before, after) -> str:
    """'' if ``after`` equals ``before`` (a tensor or a dataclass), else what changed."""
    if isinstance(before, torch.Tensor):
        if after.shape != before.shape or after.dtype != before.dtype:
            return f"was {_describe(before)}, is now {_describe(after)}"
        if torch.equal(after.detach(), before) or bool(torch.isnan(before).all() & torch.isnan(after).all()):
            return ""
        diff = (after.detach().double() - before.double()).abs()
        changed = int((diff > 0).sum() + (torch.isnan(after.detach()) != torch.isnan(before)).sum())
        return f"{changed} of {before.numel()} entries changed (largest change {float(diff.nan_to_num(0).max()):.3g})"
    fields = [f.name for f in dataclasses.fields(before)]
    changed = [n for n in fields if getattr(before, n) != getattr(after, n)]
    return "; ".join(f"{n}: {getattr(before, n)!r} -> {getattr(after, n)!r}" for n in changed)


def call_unchanged(fn: Callable, *args, hint: str = "", **kwargs):
    """Call ``fn(*args, **kwargs)`` and check that it modified none of its tensor or config arguments in place.

    Tensors are compared with clones taken before the call, dataclass configs with deep copies. Returns what
    ``fn`` returned.
    """
    try:
        names = list(inspect.signature(fn).bind(*args, **kwargs).arguments)
    except (TypeError, ValueError):
        names = [f"argument {i + 1}" for i in range(len(args))] + list(kwargs)
    values = list(args) + list(kwargs.values())
    before = [(name, value, _copy(value)) for name, value in zip(names, values) if _watched(value)]
    result = fn(*args, **kwargs)
    for name, value, copied in before:
        change = _change(copied, value)
        if change:
            _fail(f"side effects: the input `{name}` is not modified by the call", change, hint or
                  "compute new tensors (x = x + v, not x += v or x.add_(v)); build a changed config with "
                  "dataclasses.replace instead of setting its fields")
    return result
