"""Generate ``lessons/NN/exercises.py`` from ``solutions/NN/exercises.py``, the single source.

In a solutions file, each answer sits between two marker lines:

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
import re
import sys

from .loader import LESSONS, exercises_path, lesson_ids

BEGIN = re.compile(r"^(?P<indent>\s*)# BEGIN SOLUTION (?P<id>\d+\.\d+):\s*(?P<hint>.*)$")
END = re.compile(r"^\s*# END SOLUTION\s*$")
DEF = re.compile(r"^\s*def (?P<name>\w+)\(")
MANIFEST = LESSONS / ".generated.json"

HEADER = """\
# Lesson {lesson} exercises: fill in every `raise NotImplementedError(...)`, then run `pytest lessons/{lesson}`.
# This file is generated from solutions/{lesson}/exercises.py by `make exercises`. It is yours to edit:
# the generator refuses to overwrite it once you have changed it.
"""


def generate_exercises(solution_source: str, lesson: str) -> str:
    """The exercises file for ``lesson``: the solutions with each marked answer replaced by a stub."""
    out = [HEADER.format(lesson=lesson)]
    current_def = None
    in_block = False
    for number, line in enumerate(solution_source.splitlines(keepends=True), start=1):
        begin = BEGIN.match(line)
        if in_block:
            if begin:
                raise ValueError(f"line {number}: BEGIN SOLUTION inside another solution block")
            if END.match(line):
                in_block = False
            continue
        if begin:
            if current_def is None:
                raise ValueError(f"line {number}: a solution block outside any function")
            message = f"Exercise {begin['id']} `{current_def}` is not implemented yet. Hint: {begin['hint']}"
            out.append(f"{begin['indent']}raise NotImplementedError({message!r})\n")
            in_block = True
            continue
        if END.match(line):
            raise ValueError(f"line {number}: END SOLUTION without BEGIN SOLUTION")
        definition = DEF.match(line)
        if definition:
            current_def = definition["name"]
        out.append(line)
    if in_block:
        raise ValueError("a solution block is never closed with # END SOLUTION")
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
