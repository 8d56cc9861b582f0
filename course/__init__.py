"""The course's machinery: graded checks, loading exercises, generating them from the solutions."""

from .checks import CheckFailed, check_close, check_tensor, check_true, exercise
from .loader import learner_or_reference, load_exercises

__all__ = ["CheckFailed", "check_close", "check_tensor", "check_true", "exercise", "learner_or_reference", "load_exercises"]
