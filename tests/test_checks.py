"""The graded checks' building blocks (course/checks.py) on small functions with known faults: each helper fails
the fault it is for, with a message that names the property, and passes a right function."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from course.checks import (
    CheckFailed,
    call_checked,
    call_on_meta,
    call_requiring_grad,
    call_unchanged,
    check_close,
    check_fresh_result,
    check_portable,
    check_python_float,
)


def _message(fn, *args, **kwargs) -> str:
    with pytest.raises(CheckFailed) as caught:
        fn(*args, **kwargs)
    return str(caught.value)


def test_close_prints_relative_error_first_and_digits_that_differ():
    f64 = torch.float64
    text = _message(check_close, torch.tensor(109.2220004, dtype=f64), torch.tensor(109.222, dtype=f64), rtol=1e-9,
                    atol=0.0, prop="p")
    detail = text.splitlines()[1]
    assert detail.startswith("relative error 3.66e-09"), detail
    expected, got = re.search(r"expected (\S+), got (\S+)", detail).groups()
    assert expected != got and float(got) == pytest.approx(109.2220004, rel=1e-12)
    one = _message(check_close, torch.tensor(1.0 + 3e-7, dtype=f64), torch.tensor(1.0, dtype=f64), rtol=1e-8, prop="p")
    assert "expected 1, got 1.0000003" in one
    zero = _message(check_close, torch.tensor(1e-3), torch.tensor(0.0), prop="p")
    assert zero.splitlines()[1].startswith("absolute error 0.001 (expected value 0)")


def test_call_unchanged_catches_each_side_effect():
    x = torch.ones(3)
    assert "is not modified" in _message(call_unchanged, lambda t: t.add_(1), x.clone())
    assert "autograd state" in _message(call_unchanged, lambda t: t.requires_grad_(True) * 2, torch.ones(3))
    assert "shares no memory" in _message(call_unchanged, lambda t: t[1:], x)
    assert "shares no memory" in _message(call_unchanged, lambda t: t.detach(), x)
    assert "global random state" in _message(call_unchanged, lambda t: t + torch.randn(3), x)
    assert "global random state" in _message(call_unchanged, lambda t: t + float(np.random.rand()), x)
    ema = {"w": torch.zeros(2)}

    def into_dict(d):
        d["w"] = d["w"] + 1
        return d

    assert "is not modified" in _message(call_unchanged, into_dict, ema)
    module = torch.nn.Linear(2, 2)
    assert "requires_grad changed" in _message(call_unchanged, lambda m: m.requires_grad_(False), module)
    assert "eval mode" in _message(call_unchanged, lambda m: m.eval(), torch.nn.Linear(2, 2))


def test_call_unchanged_accepts_a_clean_function_and_an_allowed_reseed():
    x = torch.ones(3)
    assert torch.equal(call_unchanged(lambda t: t * 2, x), 2 * x)
    torch.manual_seed(0)
    call_unchanged(lambda t: torch.manual_seed(1) and t + 1, x, global_rng=False)


def test_meta_catches_cpu_tensors_and_numpy_and_passes_torch_code():
    x = torch.randn(4, 3)
    assert "meta device" in _message(call_on_meta, lambda t: t + torch.zeros(4, 3), x)
    assert "meta device" in _message(call_on_meta, lambda t: torch.from_numpy(t.numpy() * 2), x)
    assert "meta device" in _message(call_on_meta, lambda t: torch.zeros(3), x)
    assert call_on_meta(lambda t: t @ torch.eye(3, device=t.device), x).is_meta
    assert call_on_meta(lambda t: torch.cov(t.T), x) is None  # no meta kernel in PyTorch: the check cannot tell


def test_requiring_grad_turns_a_numpy_crash_into_a_failed_property():
    x = torch.randn(4, 3, dtype=torch.float64)
    assert "require grad" in _message(call_requiring_grad, lambda t: torch.from_numpy(t.numpy()), x)
    result, (leaf,) = call_requiring_grad(lambda t: t * 2, x)
    assert leaf.requires_grad and result.grad_fn is not None


def test_fresh_result_catches_a_cache():
    cache = {}

    def cached(n):
        return cache.setdefault(n, torch.arange(n))

    assert "does not change the next call" in _message(check_fresh_result, cached, 5)
    check_fresh_result(lambda n: torch.arange(n), 5)


def test_portable_and_small_helpers():
    check_portable(lambda t, u: t - u, torch.randn(3), torch.randn(3), name="difference")
    assert "Python float" in _message(check_python_float, torch.tensor(1.0))
    check_python_float(1.0)
    text = _message(call_checked, lambda: torch.zeros(2).numpy().fooo, prop="runs")
    assert text.startswith("runs\nthe call raised AttributeError")
    with pytest.raises(NotImplementedError, match="Exercise 9.9"):
        call_checked(lambda: (_ for _ in ()).throw(NotImplementedError("Exercise 9.9 `f` is not implemented")),
                     prop="runs")
