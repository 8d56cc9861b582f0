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


def _distinct(expected: float, got: float) -> tuple[str, str]:
    """The two numbers printed with as many significant digits as it takes to tell them apart (6 to 17)."""
    for digits in range(6, 18):
        a, b = f"{expected:.{digits}g}", f"{got:.{digits}g}"
        if a != b:
            break
    return a, b


def _relative(abs_error: float, expected: float) -> str:
    """'relative error 3.2e-05', or the absolute error where the expected value is 0."""
    if expected == 0:
        return f"absolute error {abs_error:.3g} (expected value 0)"
    return f"relative error {abs_error / abs(expected):.3g}"


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

    On failure the message names the property, then the relative error of the worst entry, both values with
    as many digits as it takes to tell them apart, and the scale ratio (a ratio near -1 is a flipped sign;
    near 2 or tau^2 a scale mistake). ``hint`` is shown for a wrong
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
    expected_text, got_text = _distinct(float(e[worst]), float(g[worst]))
    where = f" at index {tuple(int(i) for i in worst)}" if err.ndim else ""
    detail = (
        f"{_relative(float(err[worst]), float(e[worst]))}{where}: expected {expected_text}, got {got_text} "
        f"(tolerance {atol:g} + {rtol:g} * |expected|; largest absolute error {err.max():.3g})\n"
        f"least-squares scale of got against expected: {ratio:.6g} (1 is right, -1 a flipped sign)"
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
    if isinstance(value, dict):
        return bool(value) and all(isinstance(v, torch.Tensor) for v in value.values())
    return (isinstance(value, (torch.Tensor, torch.nn.Module))
            or dataclasses.is_dataclass(value) and not isinstance(value, type))


def _module_state(module: torch.nn.Module) -> dict:
    """A module's parameters' requires_grad and its training flags (its values may be what a call updates, as
    a training step does; a check that needs them unchanged compares them itself)."""
    return {"requires_grad": [p.requires_grad for p in module.parameters()],
            "training": [m.training for m in module.modules()]}


def _copy(value):
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: v.detach().clone() for k, v in value.items()}
    if isinstance(value, torch.nn.Module):
        return _module_state(value)
    return copy.deepcopy(value)


def _change(before, after) -> str:
    """'' if ``after`` equals ``before`` (a tensor, a dict of tensors, a module or a dataclass), else what changed."""
    if isinstance(after, torch.nn.Module):
        now = _module_state(after)
        if now["requires_grad"] != before["requires_grad"]:
            return "its parameters' requires_grad changed (requires_grad_ was called on the module)"
        if now["training"] != before["training"]:
            return "its training / eval mode changed (.train() or .eval() was called on it)"
        return ""
    if isinstance(before, dict):
        if set(after) != set(before) or any(after[k] is not None and not isinstance(after[k], torch.Tensor)
                                            for k in after):
            return f"its keys were {sorted(before)}, are now {sorted(after)}"
        return "; ".join(f"[{k!r}] {c}" for k, c in ((k, _change(v, after[k])) for k, v in before.items()) if c)
    if isinstance(before, torch.Tensor):
        if after.shape != before.shape or after.dtype != before.dtype:
            return f"was {_describe(before)}, is now {_describe(after)}"
        if after.is_meta or torch.equal(after.detach(), before):
            return ""
        if bool(torch.isnan(before).all() & torch.isnan(after).all()):
            return ""
        diff = (after.detach().double() - before.double()).abs()
        changed = int((diff > 0).sum() + (torch.isnan(after.detach()) != torch.isnan(before)).sum())
        return f"{changed} of {before.numel()} entries changed (largest change {float(diff.nan_to_num(0).max()):.3g})"
    fields = [f.name for f in dataclasses.fields(before)]
    changed = [n for n in fields if getattr(before, n) != getattr(after, n)]
    return "; ".join(f"{n}: {getattr(before, n)!r} -> {getattr(after, n)!r}" for n in changed)


def _autograd_state(value: torch.Tensor) -> tuple:
    return value.requires_grad, value.grad_fn


def _tensors_in(value) -> list[torch.Tensor]:
    """Every tensor in a result: the value itself, or inside tuples, lists and dicts (one level per call)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in _tensors_in(item)]
    if isinstance(value, dict):
        return [t for item in value.values() for t in _tensors_in(item)]
    return []


def _shares_storage(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.is_meta or b.is_meta or a.device != b.device:
        return False
    sa, sb = a.untyped_storage(), b.untyped_storage()
    return sa.nbytes() > 0 and sa.data_ptr() == sb.data_ptr()


def _rng_states() -> tuple:
    return torch.get_rng_state(), np.random.get_state()[1].copy()


def call_unchanged(fn: Callable, *args, hint: str = "", global_rng: bool = True, **kwargs):
    """Call ``fn(*args, **kwargs)`` and check that it had no side effect on its caller.

    - no tensor, dict of tensors or config argument is modified in place (tensors compared with clones taken
      before the call, dataclass configs with deep copies, a dict's entries neither changed nor replaced);
    - a module argument keeps its parameters' ``requires_grad`` and its train / eval mode;
    - every tensor argument keeps its ``requires_grad`` and ``grad_fn`` (no ``requires_grad_()``, no in-place
      operation that puts an input into a graph);
    - no tensor of the result shares storage with a tensor argument (a returned view or the input itself: a
      caller who changes the result would change the input);
    - the global random state (torch's and numpy's) is what it was: a function that draws from the global
      generator changes what every later draw of its caller gives (``global_rng=False`` skips this for a
      function whose documented job reseeds it, such as training a toy run from its config's seed).

    Returns what ``fn`` returned.
    """
    try:
        names = list(inspect.signature(fn).bind(*args, **kwargs).arguments)
    except (TypeError, ValueError):
        names = [f"argument {i + 1}" for i in range(len(args))] + list(kwargs)
    values = list(args) + list(kwargs.values())
    before = [(name, value, _copy(value)) for name, value in zip(names, values) if _watched(value)]
    tensors = [(name, value, _autograd_state(value)) for name, value, _ in before if isinstance(value, torch.Tensor)]
    tensors += [(f"{name}[{k!r}]", v, _autograd_state(v)) for name, value, _ in before if isinstance(value, dict)
                for k, v in value.items()]
    identities = [(name, value, dict(value)) for name, value, _ in before if isinstance(value, dict)]
    torch_rng, numpy_rng = _rng_states()
    result = fn(*args, **kwargs)
    for name, value, copied in before:
        change = _change(copied, value)
        if change:
            _fail(f"side effects: the input `{name}` is not modified by the call", change, hint or
                  "compute new tensors (x = x + v, not x += v or x.add_(v)); build a changed config with "
                  "dataclasses.replace instead of setting its fields")
    for name, value, entries in identities:
        swapped = [k for k, v in entries.items() if value.get(k) is not v]
        if swapped:
            _fail(f"side effects: the dict `{name}` is not modified by the call",
                  f"its entries {swapped} were replaced by other tensors",
                  "build and return a new dict ({k: ... for k in ...}); do not assign into the caller's dict")
    for name, value, (requires_grad, grad_fn) in tensors:
        if value.requires_grad != requires_grad or value.grad_fn is not grad_fn:
            _fail(f"side effects: the input `{name}` keeps its autograd state (requires_grad and grad_fn)",
                  f"requires_grad was {requires_grad}, is now {value.requires_grad}; grad_fn was "
                  f"{type(grad_fn).__name__ if grad_fn else None}, is now "
                  f"{type(value.grad_fn).__name__ if value.grad_fn else None}",
                  "never call requires_grad_() or an in-place operation on an input: work on a new tensor "
                  "(x.detach().requires_grad_() makes a new leaf when a gradient with respect to x is needed)")
    for i, out in enumerate(_tensors_in(result)):
        for name, value, _ in tensors:
            if _shares_storage(out, value):
                _fail("side effects: the result shares no memory with an input",
                      f"result tensor {i} ({_describe(out)}) is a view of (or is) the input `{name}`: a caller "
                      "who changes the result changes the input",
                      "return a new tensor (x.clone(), or any computation such as x + 0 makes one), not the input "
                      "or a view of it (x[...], x.view, x.reshape, x.detach())")
    after_torch, after_numpy = _rng_states()
    if global_rng and (not torch.equal(after_torch, torch_rng) or not np.array_equal(after_numpy, numpy_rng)):
        _fail("side effects: the global random state is unchanged by the call",
              "torch's (or numpy's) global generator was advanced or reseeded inside the call",
              "draw only from a torch.Generator passed in (torch.randn(..., generator=g)), never from the global "
              "generator (torch.randn, torch.randperm without generator=) and never torch.manual_seed inside a "
              "function")
    return result


DEVICE_HINT = (
    "build every new tensor on the inputs' device (torch.zeros_like(x), torch.eye(n, device=x.device), "
    "dtype=x.dtype) and keep the computation in torch: the meta device holds no values, so numpy, .item(), "
    ".tolist(), float(t) and Python branches on tensor values fail there"
)


def _to_meta(value):
    if isinstance(value, torch.Tensor):
        moved = value.detach().to("meta")
        return moved.requires_grad_(value.requires_grad) if moved.is_floating_point() else moved
    if isinstance(value, torch.nn.Module):
        return copy.deepcopy(value).to("meta")
    if isinstance(value, (list, tuple)):
        return type(value)(_to_meta(v) for v in value)
    if isinstance(value, dict):
        return {k: _to_meta(v) for k, v in value.items()}
    return value


def _raised(prop: str, error: Exception, hint: str) -> None:
    """Turn an error raised by the learner's code under a check's special inputs into a failed property (a
    stub's own NotImplementedError, which names its exercise, is passed on)."""
    if isinstance(error, NotImplementedError) and str(error).startswith("Exercise "):
        raise error
    text = f"{type(error).__name__}: {error}".strip()
    _fail(prop, f"the call raised {text[:400]}", hint)


def call_checked(fn: Callable, *args, prop: str, hint: str = "", **kwargs):
    """Call ``fn(*args, **kwargs)`` where raising is itself the failure of ``prop`` (a function that must accept
    these inputs, e.g. bfloat16 features): an error becomes a failed check that names the property and quotes the
    error. Returns what ``fn`` returned."""
    try:
        return fn(*args, **kwargs)
    except Exception as error:  # noqa: BLE001 - any error on these inputs is this property failing
        _raised(prop, error, hint)


def _no_meta_kernel(error: NotImplementedError) -> bool:
    """PyTorch's own "this operator has no meta implementation" (not a learner's or a stub's error)."""
    text = str(error)
    return "'Meta' backend" in text or "with Meta tensors" in text


def call_on_meta(fn: Callable, *args, name: str = "result", hint: str = DEVICE_HINT, **kwargs):
    """Call ``fn`` with every tensor and module argument moved to PyTorch's ``meta`` device (shapes and dtypes,
    no values, no GPU needed) and check that every tensor of the result is on that device too.

    This is how a check tells that a function runs on whatever device its inputs are on: a tensor made without
    ``device=``, a numpy round trip or a value read back to Python fails there. An operation that PyTorch has no
    meta kernel for (``torch.cov``, for one) says nothing about devices: the check then cannot tell, passes, and
    returns None. Otherwise it returns the (meta) result.
    """
    prop = f"{name} runs on the inputs' device (tried on PyTorch's meta device) and returns its tensors there"
    moved_args = [_to_meta(a) for a in args]
    moved_kwargs = {k: _to_meta(v) for k, v in kwargs.items()}
    try:
        result = fn(*moved_args, **moved_kwargs)
    except NotImplementedError as error:
        if not str(error).startswith("Exercise ") and _no_meta_kernel(error):
            return None
        _raised(prop, error, hint)
    except Exception as error:  # noqa: BLE001 - any other error on meta inputs is this property failing
        _raised(prop, error, hint)
    for i, out in enumerate(_tensors_in(result)):
        if not out.is_meta:
            _fail(prop, f"result tensor {i} ({_describe(out)}) is on {out.device}, the inputs on meta", hint)
    return result


def call_requiring_grad(fn: Callable, *args, name: str = "result", hint: str = "", grad_args=None, **kwargs):
    """Call ``fn`` with every floating-point tensor argument replaced by a copy that requires grad, checking that
    the call runs (a ``.numpy()`` on a graph raises) and has no side effect (``call_unchanged``).

    ``grad_args`` (positions of positional arguments) limits the copies to those arguments: the others are
    passed as they are.
    Tensors inside dict, list and tuple arguments are replaced too. Returns ``(result, inputs)``: the result and
    the list of the tensors passed (to take gradients with).
    """
    def leaf(value):
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return value.detach().clone().requires_grad_(True)
        if isinstance(value, dict):
            return {k: leaf(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(leaf(v) for v in value)
        return value

    moved_args = [leaf(a) if grad_args is None or i in grad_args else a for i, a in enumerate(args)]
    moved_kwargs = {k: leaf(v) for k, v in kwargs.items()} if grad_args is None else kwargs
    prop = f"{name} runs on inputs that require grad"
    try:
        result = call_unchanged(fn, *moved_args, **moved_kwargs)
    except CheckFailed:
        raise
    except Exception as error:  # noqa: BLE001 - a crash on inputs that require grad is this property failing
        _raised(prop, error, hint or "no .numpy() or in-place change of an input: numpy cannot follow a graph; "
                "use torch operations (and .detach() where a value must be a constant)")
    return result, _tensors_in(list(moved_args) + list(moved_kwargs.values()))


def check_fresh_result(fn: Callable, *args, name: str = "result", **kwargs) -> None:
    """Call ``fn`` twice with the same arguments, overwriting the first result in place in between (as a caller
    may): the second result must equal the first. A result that is a view of an input or of a cache kept by
    the function fails this."""
    first = fn(*args, **kwargs)
    kept = [t.detach().clone() for t in _tensors_in(first)]
    with torch.no_grad():
        for t in _tensors_in(first):
            t.fill_(float("nan") if t.is_floating_point() else -1)
    second = _tensors_in(fn(*args, **kwargs))
    for i, (a, b) in enumerate(zip(kept, second)):
        check_true(torch.equal(a, b.detach()) or bool((torch.isnan(a) & torch.isnan(b)).all()),
                   f"{name}: a caller who changes a result in place does not change the next call's result",
                   f"result tensor {i} of the second call differs after the first call's result was overwritten",
                   "return new tensors, not a view of an input or of a tensor kept between calls (a cache); "
                   ".clone() what you return from a cache")


def check_python_float(got, *, name: str = "result", hint: str = "") -> None:
    """The result is a Python float (as the docstring promises), not a tensor or a numpy number."""
    if type(got) is not float:
        _fail(f"{name} is a Python float", f"got {type(got).__module__}.{type(got).__name__}",
              hint or "convert a 0-dimensional tensor with float(t) (or t.item())")


def check_portable(fn: Callable, *args, name: str, grad_args=None, meta: bool = True, fresh: bool = True, **kwargs):
    """The checks every tensor function gets, on one set of arguments: it has no side effect on them as they are
    (``call_unchanged``: values, autograd state, shared storage, global random state), runs on inputs that
    require grad with no side effect either (``call_requiring_grad``), on the
    meta device (``call_on_meta``, unless ``meta=False`` for a function whose documented result is a Python
    number), and returns a fresh result each call (``check_fresh_result``). Returns the first call's result."""
    call_unchanged(fn, *args, **kwargs)
    result, _ = call_requiring_grad(fn, *args, name=name, grad_args=grad_args, **kwargs)
    if meta:
        call_on_meta(fn, *args, name=name, **kwargs)
    if fresh:
        check_fresh_result(fn, *args, name=name, **kwargs)
    return result
