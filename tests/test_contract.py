"""The grading contract, proved for every lesson: stubs fail every check, each naming its exercise; the
exercises are in sync with the solutions; every catalogued mistake fails a graded check of its exercise with a
message that names the property; every correct alternative answer passes every check of its exercise; solutions do
not call the drifting_min function that their exercise teaches.

(That the solutions pass every check is `pytest lessons --solutions`, which `make test` runs.)
"""

from __future__ import annotations

import ast
import importlib.util
import types
from collections import Counter

import pytest

from course.checks import CheckFailed
from course.generate import expected_exercises
from course.loader import ROOT, exercises_path, graded_checks, lesson_ids, load_exercises, load_stubs, run_checks
from course.markers import exercise_ids

LESSON_IDS = lesson_ids()


def _catalogue(lesson):
    path = ROOT / "tests" / "mistakes" / f"lesson_{lesson}.py"
    if not path.exists():
        return types.SimpleNamespace(MISTAKES=[], TAUGHT={}, missing=path)
    spec = importlib.util.spec_from_file_location(f"mistakes_{lesson}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _alternatives(lesson):
    path = ROOT / "tests" / "alternatives" / f"lesson_{lesson}.py"
    if not path.exists():
        return []
    spec = importlib.util.spec_from_file_location(f"alternatives_{lesson}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ALTERNATIVES


def _exercise_ids(lesson):
    return exercise_ids(exercises_path(lesson, solutions=True).read_text())


ALL_MISTAKES = [(lesson, m) for lesson in LESSON_IDS for m in _catalogue(lesson).MISTAKES]
ALL_ALTERNATIVES = [(lesson, a) for lesson in LESSON_IDS for a in _alternatives(lesson)]
# Every exercise has at least two correct alternative answers (the count of answers accepted), except 5.4, whose
# checks train four small runs each: one alternative there keeps `make test` fast.
FEWER_ALTERNATIVES = {"5.4": 1}


@pytest.mark.parametrize("lesson", LESSON_IDS)
def test_exercises_file_is_generated_from_solutions(lesson):
    current = exercises_path(lesson).read_text()
    assert current == expected_exercises(lesson), (
        f"lessons/{lesson}/exercises.py is out of date with solutions/{lesson}/exercises.py: run `make exercises`"
    )


@pytest.mark.parametrize("lesson", LESSON_IDS)
def test_lesson_has_at_least_four_exercises_each_graded(lesson):
    ids = _exercise_ids(lesson)
    assert len(ids) >= 4, f"lesson {lesson} has {len(ids)} exercises; the course asks for at least four"
    assert len(set(ids)) == len(ids), f"an exercise number is used twice in lesson {lesson}: {ids}"
    graded = Counter(check.exercise_id for check in graded_checks(lesson))
    for ex_id in ids:
        assert graded[ex_id] >= 2, (
            f"exercise {ex_id} has {graded[ex_id]} graded checks; it needs a value and a property check"
        )
    for check in graded_checks(lesson):
        expected = f"test_ex{check.exercise_id.replace('.', '_')}_"
        assert check.__name__.startswith(expected), (
            f"{check.__name__} should start with {expected} so that -k selects it"
        )


@pytest.mark.parametrize("lesson", LESSON_IDS)
def test_stubs_fail_every_check_naming_their_exercise(lesson):
    results = run_checks(lesson, load_stubs(lesson))
    assert results, f"lesson {lesson} has no graded checks"
    for r in results:
        assert not r.passed, f"{r.check} passes on the untouched stub: it does not test exercise {r.exercise_id}"
        assert isinstance(r.error, NotImplementedError), (
            f"{r.check} fails on the stub with {r.error!r}, not NotImplementedError"
        )
        assert f"Exercise {r.exercise_id} " in str(r.error), (
            f"{r.check}'s failure does not name exercise {r.exercise_id}: {r.error}"
        )


@pytest.mark.parametrize("lesson", LESSON_IDS)
def test_catalogue_covers_every_exercise_three_times(lesson):
    catalogue = _catalogue(lesson)
    assert not hasattr(catalogue, "missing"), f"lesson {lesson} has no catalogue of mistakes: {catalogue.missing}"
    counts = Counter(m.exercise_id for m in catalogue.MISTAKES)
    for ex_id in _exercise_ids(lesson):
        assert counts[ex_id] >= 3, (
            f"exercise {ex_id} has {counts[ex_id]} catalogued mistakes; at least three are needed"
        )


@pytest.mark.parametrize(
    "lesson,mistake", ALL_MISTAKES, ids=[f"{lesson}-{m.exercise_id}-{m.description}" for lesson, m in ALL_MISTAKES]
)
def test_mistake_is_caught_by_a_graded_check(lesson, mistake):
    module = load_exercises(lesson, solutions=True)
    correct = getattr(module, mistake.function)
    setattr(module, mistake.function, mistake.make(correct, module))
    results = run_checks(lesson, module, mistake.exercise_id)
    caught = [r for r in results if not r.passed and isinstance(r.error, AssertionError)]
    crashed = [r for r in results if not r.passed and not isinstance(r.error, AssertionError)]
    assert not crashed, (
        f"'{mistake.description}' crashes {crashed[0].check} instead of failing it: {crashed[0].error!r}"
    )
    assert caught, f"no graded check of exercise {mistake.exercise_id} catches '{mistake.description}'"
    named = [r for r in caught if isinstance(r.error, CheckFailed) and str(r.error).strip()]
    assert named, (
        f"'{mistake.description}' fails {caught[0].check} with a bare assertion, not a message naming the property"
    )


@pytest.mark.parametrize(
    "lesson,alternative", ALL_ALTERNATIVES,
    ids=[f"{lesson}-{a.exercise_id}-{a.description}" for lesson, a in ALL_ALTERNATIVES],
)
def test_correct_alternative_passes_every_check(lesson, alternative):
    module = load_exercises(lesson, solutions=True)
    setattr(module, alternative.function, alternative.answer)
    results = run_checks(lesson, module, alternative.exercise_id)
    assert results, f"exercise {alternative.exercise_id} has no graded checks"
    rejected = [r for r in results if not r.passed]
    assert not rejected, (
        f"the correct answer '{alternative.description}' is rejected by {rejected[0].check}: {rejected[0].error}"
    )


@pytest.mark.parametrize("lesson", LESSON_IDS)
def test_every_exercise_has_two_correct_alternatives(lesson):
    counts = Counter(a.exercise_id for a in _alternatives(lesson))
    for ex_id in _exercise_ids(lesson):
        needed = FEWER_ALTERNATIVES.get(ex_id, 2)
        assert counts[ex_id] >= needed, (
            f"exercise {ex_id} has {counts[ex_id]} correct alternative answers; {needed} are needed"
        )


@pytest.mark.parametrize("lesson", LESSON_IDS)
def test_solutions_do_not_call_the_reference_they_teach(lesson):
    taught = _catalogue(lesson).TAUGHT
    tree = ast.parse(exercises_path(lesson, solutions=True).read_text())
    functions = {node.name: node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    for check in graded_checks(lesson):
        node = functions[check.exercise_name]
        names = {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
        names |= {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
        used = names & set(taught.get(check.exercise_id, ()))
        assert not used, (
            f"solution of exercise {check.exercise_id} calls drifting_min's {sorted(used)}, the reference it teaches"
        )
