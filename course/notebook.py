"""Grading inside a notebook: ``check_exercise(ex, "3.2")`` runs one exercise's graded checks in-process.

It prints one verdict (all checks passed, not implemented yet, or the first failure with the property that
broke and its hint) and returns a ``Grade``, true only when every check passed. It never raises, and it does
not import pytest: a learner sees the grade in the cell below the exercise. When ``exercises.py`` was saved
after ``ex`` was loaded, the saved file is graded (and the verdict says so), so editing the file and re-running
the check cell is enough.
"""

from __future__ import annotations

import traceback
import types

from .checks import CheckFailed
from .loader import exercises_path, graded_checks, lesson_of_exercise, load_exercises, run_checks


class Grade:
    """The outcome of ``check_exercise``: true when every check passed. The verdict is printed already, so a
    notebook shows nothing more for it (and a console shows the verdict again)."""

    def __init__(self, passed: bool, message: str):
        self.passed, self.message = passed, message

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return self.message

    def _ipython_display_(self) -> None:
        pass


def _latest(ex: types.ModuleType) -> tuple[types.ModuleType, str]:
    """``ex``, or a fresh copy of its file when the file was saved after ``ex`` was loaded."""
    source = getattr(ex, "__course_source__", None)
    if source is None:
        return ex, ""
    lesson, solutions, mtime = source
    path = exercises_path(lesson, solutions)
    if not path.exists() or path.stat().st_mtime <= mtime:
        return ex, ""
    note = f"(graded {path.name} as saved now; re-run `ex = load_exercises(\"{lesson}\")` so the demos use it too)"
    return load_exercises(lesson, solutions), note


def _hint_of(error: BaseException) -> str:
    text = str(error)
    return text.split("Hint:", 1)[1].strip() if "Hint:" in text else ""


def _where(error: BaseException, module: types.ModuleType) -> str:
    """The last line of the learner's module in the error's traceback, if any ("exercises.py, line 42")."""
    filename = getattr(module, "__file__", None)
    if not filename or error.__traceback__ is None:
        return ""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == filename]
    if not frames:
        return ""
    frame = frames[-1]
    return f"raised in {frame.name} ({filename.rsplit('/', 1)[-1]}, line {frame.lineno}): {frame.line}"


def _verdict(ex: types.ModuleType, exercise_id: str) -> tuple[bool, str]:
    lesson = lesson_of_exercise(exercise_id)
    checks = [c for c in graded_checks(lesson) if c.exercise_id == exercise_id]
    if not checks:
        return False, f"Exercise {exercise_id}: no graded checks found in lessons/{lesson}/"
    title = f"Exercise {exercise_id} `{checks[0].exercise_name}`"
    results = run_checks(lesson, ex, exercise_id)
    failed = [r for r in results if not r.passed]
    if not failed:
        return True, f"{title}: all {len(results)} checks passed"
    first = failed[0]
    error = first.error
    if isinstance(error, NotImplementedError):
        own = f"Exercise {exercise_id} " in str(error)
        if own and len(failed) == len(results):
            hint = _hint_of(error)
            return False, f"{title}: not implemented yet" + (f"\nHint: {hint}" if hint else "")
        if not own:
            return False, f"{title}: its checks call another exercise that is not implemented yet\n{error}"
    head = f"{title}: {len(failed)} of {len(results)} checks failed; the first, {first.check}:"
    if isinstance(error, CheckFailed):
        body = str(error)
    else:
        kind = "the check itself" if isinstance(error, AssertionError) else "your code"
        body = f"{type(error).__name__} from {kind}: {error}"
        where = _where(error, ex)
        if where:
            body += f"\n{where}"
    return False, f"{head}\n{body}"


def check_exercise(ex: types.ModuleType, exercise_id: str) -> Grade:
    """Run exercise ``exercise_id``'s graded checks (e.g. "3.2") against the module ``ex``; print the verdict.

    Returns a Grade, true when every check passed. Never raises (except on KeyboardInterrupt): a problem in
    the grading itself is printed as the verdict.
    """
    try:
        ex, note = _latest(ex)
        passed, message = _verdict(ex, str(exercise_id))
        if note:
            message = f"{message}\n{note}"
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # noqa: BLE001 - a notebook cell must never stop on a grading problem
        passed, message = False, f"Exercise {exercise_id}: the checks could not run ({type(error).__name__}: {error})"
    print(message)
    return Grade(passed, message)
