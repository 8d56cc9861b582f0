"""drifting_min.runtime: one CPU thread unless asked (the argument, else OMP_NUM_THREADS)."""

from __future__ import annotations

import pytest
import torch

from drifting_min.runtime import set_threads


@pytest.fixture(autouse=True)
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_default_is_one_thread_or_the_environment(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert set_threads() == 1 and torch.get_num_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert set_threads() == 2 and torch.get_num_threads() == 2
    assert set_threads(1) == 1 and torch.get_num_threads() == 1, "an explicit count wins over the environment"


def test_fewer_than_one_thread_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        set_threads(0)
