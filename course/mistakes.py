"""The catalogue of typical mistakes (plausible wrong answers that a graded check must catch) and of correct
alternative answers (right answers written another way, which every graded check must accept)."""

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


@dataclass(frozen=True)
class Alternative:
    """A correct answer to exercise ``exercise_id``'s function ``function``, written another way than the worked
    solution: ``answer`` is the function itself. A check that rejects it is as wrong as one that accepts a
    mistake."""

    exercise_id: str
    function: str
    description: str
    answer: Callable
