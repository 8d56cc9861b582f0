"""The catalogue of typical mistakes: each is a plausible wrong answer that a graded check must catch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Mistake:
    """A wrong version of exercise ``exercise_id``'s function ``function``.

    ``make(correct, module)`` returns the wrong function, built from the correct one (the solution) and the
    solutions module; it keeps the right shape and dtype, so only a value or property check can catch it.
    """

    exercise_id: str
    function: str
    description: str
    make: Callable[[Callable, object], Callable]
