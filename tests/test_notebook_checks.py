"""Grading inside a notebook: ``course.check_exercise`` runs one exercise's checks in-process, prints a
verdict and never raises; importing ``course`` (and grading) does not import pytest."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from course import check_exercise
from course.loader import ROOT, load_exercises, load_stubs


def test_importing_course_and_grading_does_not_import_pytest():
    script = textwrap.dedent(
        """
        import sys
        from course import check_exercise, load_exercises
        from course.loader import graded_checks, lesson_ids
        assert check_exercise(load_exercises("03", solutions=True), "3.1")
        for lesson in lesson_ids():  # every lesson's check file, as a notebook cell would import it
            graded_checks(lesson)
        print("pytest" in sys.modules)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False", (
        f"importing course, or a lesson's checks, imported pytest:\n{out.stdout}"
    )


def test_solution_passes(capsys):
    assert check_exercise(load_exercises("03", solutions=True), "3.2")
    assert capsys.readouterr().out.strip() == "Exercise 3.2 `find_modes`: all 4 checks passed"


def test_stub_is_reported_not_implemented_with_its_hint(capsys):
    assert not check_exercise(load_stubs("03"), "3.1")
    out = capsys.readouterr().out
    assert out.startswith("Exercise 3.1 `mean_shift`: not implemented yet\nHint: ")


def test_first_failure_names_its_property_and_hint(capsys):
    module = load_exercises("03", solutions=True)
    correct = module.mean_shift
    module.mean_shift = lambda x, targets, tau, kernel="gaussian": -correct(x, targets, tau, kernel)
    assert not check_exercise(module, "3.1")
    out = capsys.readouterr().out
    assert "Exercise 3.1 `mean_shift`:" in out and "checks failed" in out and "Hint:" in out


def test_errors_and_unknown_ids_never_raise(capsys):
    module = load_exercises("03", solutions=True)

    def broken(*args, **kwargs):
        raise TypeError("unsupported operand")

    module.mean_shift = broken
    assert not check_exercise(module, "3.1")
    assert "TypeError from your code: unsupported operand" in capsys.readouterr().out
    assert not check_exercise(module, "9.9")
    assert not check_exercise(module, "not an id")


def test_a_file_saved_after_loading_is_graded(tmp_path, monkeypatch, capsys):
    """A learner edits exercises.py and re-runs the check cell: the saved file is graded, and the verdict says so."""
    import course.loader as loader
    import course.notebook as notebook

    lesson_dir = tmp_path / "03"
    lesson_dir.mkdir()
    exercises = lesson_dir / "exercises.py"
    exercises.write_text((ROOT / "lessons" / "03" / "exercises.py").read_text())
    monkeypatch.setattr(loader, "exercises_path", lambda lesson, solutions=False: tmp_path / lesson / "exercises.py")
    monkeypatch.setattr(notebook, "exercises_path", loader.exercises_path)
    stale = loader.load_exercises("03")
    assert not check_exercise(stale, "3.1")
    assert "not implemented yet" in capsys.readouterr().out
    exercises.write_text((ROOT / "solutions" / "03" / "exercises.py").read_text())
    os.utime(exercises, (stale.__course_source__[2] + 10, stale.__course_source__[2] + 10))
    assert check_exercise(stale, "3.1")
    out = capsys.readouterr().out
    assert "all" in out and "checks passed" in out and "as saved now" in out
