"""CPU threads for torch: one unless asked for more.

torch's default on a CPU is one thread per core, and its threads spin while they wait for one another. On a
machine where anything else runs (a browser, a test suite, another job), a thread that loses its core holds
up the others at every operation. Measured on two cores with the default toy (``bench/bench_busy.py``, the
results page): two threads are up to a third faster on an idle machine, 3x slower than one thread beside one
busy process, and 10x or more when other work runs too; one thread kept its idle time beside one busy process.
The toys' tensors (a few hundred rows) are too small for more threads to pay much, so the package's commands,
the lessons, the tests and the site build use one thread unless told otherwise:

    set_threads()      # OMP_NUM_THREADS if it is set, else 1
    set_threads(4)     # four threads (e.g. the command's --threads 4)
"""

from __future__ import annotations

import os

import torch


def set_threads(n: int | None = None) -> int:
    """Give torch n CPU threads (n=None: the environment's OMP_NUM_THREADS if set, else 1); return n."""
    if n is None:
        n = int(os.environ.get("OMP_NUM_THREADS", "1").split(",")[0] or 1)
    if n < 1:
        raise ValueError(f"the number of threads must be at least 1, got {n}")
    torch.set_num_threads(n)
    return n
