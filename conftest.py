"""Grading for the course: `pytest lessons/NN` grades your exercises, `--solutions` grades the worked answers.

At the end of a run the scoreboard lists each exercise, its status, the property that its first failure broke
with that failure's hint (wrapped, never cut), and the command that runs that exercise's checks alone.
"""

from __future__ import annotations

import textwrap
from collections import defaultdict
from pathlib import Path

import pytest

from course.loader import exercise_of, load_exercises
from drifting_min.runtime import set_threads

ROOT = Path(__file__).resolve().parent

# One CPU thread (OMP_NUM_THREADS=N for more): torch's threads wait on each other, and on a machine where anything
# else runs they make the checks several times slower (drifting_min.runtime).
set_threads()


def pytest_addoption(parser):
    parser.addoption(
        "--solutions", action="store_true", help="grade solutions/NN/exercises.py instead of lessons/NN/exercises.py"
    )


def _lesson_of(path: Path) -> str | None:
    parts = Path(path).resolve().relative_to(ROOT).parts
    return parts[1] if len(parts) > 2 and parts[0] == "lessons" else None


_modules: dict = {}


@pytest.fixture
def ex(request):
    """The module under test: the learner's exercises, or the solutions with --solutions (loaded once a run)."""
    lesson = _lesson_of(request.path)
    if lesson is None:
        pytest.fail("the `ex` fixture is only for graded checks in lessons/NN/")
    solutions = request.config.getoption("--solutions")
    key = (lesson, solutions)
    if key not in _modules:
        _modules[key] = load_exercises(lesson, solutions)
    return _modules[key]


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items):
    """Give every graded check (a function marked with ``course.exercise``) its ``pytest.mark.exercise(id, name)``,
    which ``-m exercise``, the scoreboard and the hints below read."""
    for item in items:
        found = exercise_of(getattr(item, "function", None))
        if found is not None and item.get_closest_marker("exercise") is None:
            item.add_marker(pytest.mark.exercise(*found))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    marker = item.get_closest_marker("exercise")
    if marker is None or report.when != "call":
        return
    report.user_properties.append(("exercise", marker.args))
    if report.failed and call.excinfo is not None:
        error = call.excinfo.value
        if isinstance(error, NotImplementedError):
            report.longrepr = f"NotImplementedError: {error}"
        lines = str(error).strip().splitlines()
        hint = next((line for line in lines if line.startswith("Hint:")), "")
        first = lines[0] if lines else type(error).__name__
        # the property that failed (a check's first line), then its hint
        summary = first if not hint or hint in first else f"{first}. {hint}"
        report.user_properties.append(("hint", summary))
        report.user_properties.append(("not_implemented", isinstance(error, NotImplementedError)))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    board: dict[tuple, dict] = defaultdict(lambda: {"passed": 0, "failed": 0, "todo": False, "hint": "", "file": ""})
    for status in ("passed", "failed"):
        for report in terminalreporter.stats.get(status, []):
            props = dict(getattr(report, "user_properties", []))
            if "exercise" not in props or report.when != "call":
                continue
            row = board[tuple(props["exercise"])]
            row[status] += 1
            row["file"] = report.nodeid.split("::")[0].rsplit("/", 1)[0]
            if status == "failed":
                row["todo"] = row["todo"] or props.get("not_implemented", False)
                row["hint"] = row["hint"] or props.get("hint", "")
    if not board:
        return
    tr = terminalreporter
    tr.section("scoreboard")
    done = 0
    for (ex_id, name), row in sorted(board.items(), key=lambda kv: [int(p) for p in kv[0][0].split(".")]):
        total = row["passed"] + row["failed"]
        if row["failed"] == 0:
            status, done = "passed", done + 1
        elif row["todo"]:
            status = "not implemented"
        else:
            status = "FAILED"
        alone = f"pytest {row['file']} -k ex{ex_id.replace('.', '_')}"
        tr.write_line(f"{ex_id:>5}  {name:<28} {status:<16} {row['passed']}/{total} checks   {alone}")
        if row["failed"]:
            for line in textwrap.wrap(row["hint"], width=110, initial_indent=" " * 7, subsequent_indent=" " * 13):
                tr.write_line(line)
    tr.write_line(f"{done} of {len(board)} exercises complete")
