"""Finding and loading a lesson's exercises, and running its graded checks in-process."""

from __future__ import annotations

import functools
import importlib.util
import inspect
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
LESSONS = ROOT / "lessons"
SOLUTIONS = ROOT / "solutions"


def lesson_ids() -> list[str]:
    """The lessons that have a solutions file, as two-digit strings: ["01", "02", ...]."""
    return sorted(p.parent.name for p in SOLUTIONS.glob("[0-9][0-9]/exercises.py"))


def exercises_path(lesson: str, solutions: bool = False) -> Path:
    return (SOLUTIONS if solutions else LESSONS) / lesson / "exercises.py"


def module_from_source(source: str, name: str, filename: str) -> types.ModuleType:
    """Execute ``source`` as a fresh module (each call gives a new, independent module)."""
    module = types.ModuleType(name)
    module.__file__ = filename
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    exec(compile(source, filename, "exec"), module.__dict__)
    return module


def load_exercises(lesson: str, solutions: bool = False) -> types.ModuleType:
    """A fresh copy of the learner's ``lessons/NN/exercises.py`` (or of ``solutions/NN/exercises.py``)."""
    path = exercises_path(lesson, solutions)
    kind = "solutions" if solutions else "exercises"
    mtime = path.stat().st_mtime
    module = module_from_source(path.read_text(), f"course_{kind}_{lesson}", str(path))
    module.__course_source__ = (lesson, solutions, mtime)  # lets check_exercise notice a file saved since
    return module


def load_stubs(lesson: str) -> types.ModuleType:
    """The untouched exercises, generated in memory from the solutions (independent of the learner's file)."""
    from .generate import generate_exercises

    path = exercises_path(lesson, solutions=True)
    return module_from_source(generate_exercises(path.read_text(), lesson), f"course_stubs_{lesson}", str(path))


def learner_or_reference(learner_fn: Callable, reference_fn: Callable) -> Callable:
    """For a lesson's demos: call the learner's function, or the reference while the exercise is a stub.

    Prints once which of the two was used, so a reader knows whose numbers the figure shows.
    """
    state = {"announced": False}

    @functools.wraps(learner_fn)
    def call(*args, **kwargs):
        try:
            result = learner_fn(*args, **kwargs)
            used = f"your `{learner_fn.__name__}`"
        except NotImplementedError:
            result = reference_fn(*args, **kwargs)
            used = f"{_describe_reference(reference_fn)} (your exercise is not done yet)"
        if not state["announced"]:
            print(f"[demo] using {used}")
            state["announced"] = True
        return result

    return call


def _describe_reference(fn: Callable) -> str:
    module = fn.__module__ or ""
    if module.startswith("course_solutions_"):
        return f"the worked solution `{fn.__name__}` from solutions/{module.rsplit('_', 1)[1]}/exercises.py"
    return f"the reference `{module}.{fn.__name__}`"


@dataclass
class CheckResult:
    """The outcome of one graded check run in-process."""

    check: str
    exercise_id: str
    exercise_name: str
    passed: bool
    error: BaseException | None = None


def exercise_of(fn) -> tuple[str, str] | None:
    """``(exercise_id, name)`` if ``fn`` is a graded check (marked with ``@exercise``), else None.

    The one test of what a graded check is: the in-process runner, ``conftest.py`` (which turns it into
    ``pytest.mark.exercise``) and the site all ask this function.
    """
    exercise_id = getattr(fn, "exercise_id", None)
    if not callable(fn) or not getattr(fn, "__name__", "").startswith("test_") or exercise_id is None:
        return None
    return str(exercise_id), str(getattr(fn, "exercise_name", ""))


_checks_cache: dict[tuple, list[Callable]] = {}


def graded_checks(lesson: str) -> list[Callable]:
    """Every graded check of a lesson, in file order: ``@exercise`` functions of ``lessons/NN/test_*.py``.

    The check files are imported once per process (again only when one of them changes).
    """
    paths = sorted((LESSONS / lesson).glob("test_*.py"))
    key = (lesson, tuple((str(p), p.stat().st_mtime_ns) for p in paths))
    if key in _checks_cache:
        return list(_checks_cache[key])
    checks = []
    for path in paths:
        spec = importlib.util.spec_from_file_location(f"course_checks_{lesson}_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for name, fn in vars(module).items():
            if exercise_of(fn) is None or getattr(fn, "__module__", None) != module.__name__:
                continue
            params = list(inspect.signature(fn).parameters)
            if params != ["ex"]:
                raise TypeError(f"graded check {path.name}::{name} must take exactly one argument, ex")
            checks.append(fn)
    _checks_cache[key] = checks
    return list(checks)


def lesson_of_exercise(exercise_id: str) -> str:
    """The lesson (two digits) of an exercise id: "3.2" -> "03"."""
    major = str(exercise_id).split(".")[0]
    if not major.isdigit():
        raise ValueError(f"not an exercise id: {exercise_id!r} (expected something like '3.2')")
    return f"{int(major):02d}"


def run_checks(lesson: str, module: types.ModuleType, exercise_id: str | None = None) -> list[CheckResult]:
    """Run a lesson's graded checks (or one exercise's) against ``module``; nothing is printed or raised."""
    results = []
    for check in graded_checks(lesson):
        if exercise_id is not None and check.exercise_id != exercise_id:
            continue
        try:
            check(module)
            results.append(CheckResult(check.__name__, check.exercise_id, check.exercise_name, True))
        except BaseException as error:  # noqa: BLE001 - a check may fail in any way; we record how
            if isinstance(error, KeyboardInterrupt):
                raise
            results.append(CheckResult(check.__name__, check.exercise_id, check.exercise_name, False, error))
    return results
