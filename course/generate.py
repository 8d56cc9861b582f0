"""Generate ``lessons/NN/exercises.py`` from ``solutions/NN/exercises.py``, the single source.

In a solutions file, each answer sits between two marker lines (the grammar is in ``course/markers.py``):

    # BEGIN SOLUTION 3.2: hint shown to the learner
    ...the worked answer...
    # END SOLUTION

The generator replaces each such block by
``raise NotImplementedError("Exercise 3.2 `name` is not implemented yet. Hint: ...")``.

Usage (a maintainer's command; ``make exercises`` runs it):

    python -m course.generate            # regenerate every lesson, refusing to overwrite a learner's edits
    python -m course.generate --force    # overwrite anyway
    python -m course.generate --check    # exit 1 if any lessons/NN/exercises.py is out of date
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys

from .loader import LESSONS, exercises_path, lesson_ids
from .markers import parse_solutions

MANIFEST = LESSONS / ".generated.json"

HEADER = """\
# Lesson {lesson} exercises: fill in every `raise NotImplementedError(...)`, then run `pytest lessons/{lesson}`.
# This file is generated from solutions/{lesson}/exercises.py by `make exercises`. It is yours to edit:
# the generator refuses to overwrite it once you have changed it.
"""


def stub_message(exercise_id: str, function: str, hint: str) -> str:
    """The NotImplementedError message of an untouched exercise (the checks and the notebook read it)."""
    return f"Exercise {exercise_id} `{function}` is not implemented yet. Hint: {hint}"


def generate_exercises(solution_source: str, lesson: str) -> str:
    """The exercises file for ``lesson``: the solutions with each marked answer replaced by a stub."""
    lines = solution_source.splitlines(keepends=True)
    out = [HEADER.format(lesson=lesson)]
    done = 0  # lines[:done] are copied or replaced
    for block in parse_solutions(solution_source):
        out.extend(lines[done : block.begin - 1])
        message = stub_message(block.exercise_id, block.function, block.hint)
        out.append(f"{block.indent}raise NotImplementedError({message!r})\n")
        done = block.end
    out.extend(lines[done:])
    return "".join(out)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def expected_exercises(lesson: str) -> str:
    return generate_exercises(exercises_path(lesson, solutions=True).read_text(), lesson)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Regenerate lessons/NN/exercises.py from solutions/NN/.")
    parser.add_argument("lessons", nargs="*", help="lesson numbers (default: all), e.g. 03")
    parser.add_argument("--force", action="store_true", help="overwrite files that a learner has edited")
    parser.add_argument("--check", action="store_true", help="only report files that are out of date")
    args = parser.parse_args(argv)

    manifest = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    stale, refused = [], []
    for lesson in args.lessons or lesson_ids():
        target = exercises_path(lesson)
        wanted = expected_exercises(lesson)
        current = target.read_text() if target.exists() else None
        if current == wanted:
            manifest[lesson] = _sha256(wanted)
            continue
        stale.append(lesson)
        if args.check:
            continue
        edited = current is not None and manifest.get(lesson) != _sha256(current)
        if edited and not args.force:
            refused.append(lesson)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(wanted)
        manifest[lesson] = _sha256(wanted)
        print(f"wrote {target.relative_to(LESSONS.parent)}")
    if args.check:
        for lesson in stale:
            print(f"lessons/{lesson}/exercises.py is out of date with solutions/{lesson}/ (run `make exercises`)")
        return 1 if stale else 0
    MANIFEST.write_text(json.dumps(dict(sorted(manifest.items())), indent=1) + "\n")
    for lesson in refused:
        print(f"refused: lessons/{lesson}/exercises.py has been edited; `make exercises FORCE=1` overwrites it")
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
