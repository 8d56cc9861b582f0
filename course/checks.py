"""What a graded check is made of: the ``exercise`` marker and assertions that explain themselves.

A graded check is a function ``test_...(ex)`` in ``lessons/NN/test_*.py``, decorated with
``@exercise("3.2", "mean_shift")``. ``ex`` is the module under test: the learner's ``lessons/NN/exercises.py``
or, with ``--solutions``, ``solutions/NN/exercises.py``. Every failure says what was expected, what came back,
which property broke, and a hint.
"""

from __future__ import annotations

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


def check_tensor(got, shape: tuple | None = None, *, name: str = "result", hint: str = "") -> None:
    """The result is a finite torch tensor of the given shape."""
    if not isinstance(got, torch.Tensor):
        _fail(f"{name} should be a torch.Tensor", f"got {_describe(got)}", hint)
    if shape is not None and tuple(got.shape) != tuple(shape):
        _fail(f"{name} has the wrong shape", f"expected {tuple(shape)}, got {tuple(got.shape)}", hint)
    if not torch.isfinite(got).all():
        bad = int((~torch.isfinite(got)).sum())
        _fail(f"{name} contains NaN or Inf", f"{bad} of {got.numel()} entries are not finite", hint)


def check_close(
    got,
    expected,
    *,
    prop: str = "value matches the reference",
    rtol: float = 1e-5,
    atol: float = 1e-8,
    hint: str = "",
) -> None:
    """``got`` equals ``expected`` elementwise within |got - expected| <= atol + rtol |expected|.

    On failure the message names the property, shows both shapes, the worst entry and the scale ratio
    (a ratio near -1 is a flipped sign; near 2 or tau^2 a scale mistake).
    """
    g, e = _array(got), _array(expected)
    if g.shape != e.shape:
        _fail(f"{prop}: wrong shape", f"expected shape {e.shape}, got {g.shape}", hint)
    if not np.isfinite(g).all():
        _fail(f"{prop}: the result contains NaN or Inf", f"{int((~np.isfinite(g)).sum())} entries are not finite", hint)
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


def check_true(condition: bool, prop: str, detail: str = "", hint: str = "") -> None:
    """A property that must hold; ``prop`` says which one, ``detail`` shows the numbers."""
    if not bool(condition):
        _fail(prop, detail, hint)
