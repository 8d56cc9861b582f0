"""The course's machinery: graded checks, loading exercises, generating them from the solutions.

Nothing imported here imports pytest, so a notebook can ``from course import check_exercise``.
"""

from .checks import (
    CheckFailed,
    call_checked,
    call_on_meta,
    call_requiring_grad,
    call_unchanged,
    check_close,
    check_dtype,
    check_fresh_result,
    check_no_graph,
    check_portable,
    check_python_float,
    check_tensor,
    check_true,
    exercise,
)
from .draws import draw, generator, randn
from .loader import learner_or_reference, load_exercises
from .notebook import check_exercise

__all__ = [
    "CheckFailed",
    "call_checked",
    "call_on_meta",
    "call_requiring_grad",
    "call_unchanged",
    "check_close",
    "check_dtype",
    "check_exercise",
    "check_fresh_result",
    "check_no_graph",
    "check_portable",
    "check_python_float",
    "check_tensor",
    "check_true",
    "draw",
    "exercise",
    "generator",
    "learner_or_reference",
    "load_exercises",
    "randn",
]
