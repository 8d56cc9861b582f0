"""The grammar of solution markers (course/markers.py), which the generator, the site and the contract share."""

from __future__ import annotations

import pytest

from course.generate import generate_exercises
from course.markers import exercise_ids, parse_solutions

SOURCE = '''\
def outer(x):
    """Doc."""
    # BEGIN SOLUTION 3.1: use the weights{pad}
    y = x + 1
    # END SOLUTION
    return y


def other(x):
    def inner(z):
        # BEGIN SOLUTION 3.2: inner hint
        return z
        # END SOLUTION
    return inner(x)
'''.replace("{pad}", "   ")  # trailing blanks after a hint are not part of it


def test_blocks_carry_id_hint_function_and_lines():
    blocks = parse_solutions(SOURCE)
    assert [(b.exercise_id, b.hint, b.function, b.begin, b.end, b.indent) for b in blocks] == [
        ("3.1", "use the weights", "outer", 3, 5, "    "),
        ("3.2", "inner hint", "inner", 11, 13, "        "),
    ]
    assert exercise_ids(SOURCE) == ["3.1", "3.2"]


def test_generator_replaces_each_block_by_its_stub():
    out = generate_exercises(SOURCE, "03")
    assert "y = x + 1" not in out and "SOLUTION" not in out
    stub = "raise NotImplementedError('Exercise {} `{}` is not implemented yet. Hint: {}')\n"
    assert "    " + stub.format("3.1", "outer", "use the weights") in out
    assert "        " + stub.format("3.2", "inner", "inner hint") in out


@pytest.mark.parametrize(
    "source,message",
    [
        ("# BEGIN SOLUTION 1.1: h\n# END SOLUTION\n", "outside any function"),
        ("def f():\n    # END SOLUTION\n", "END SOLUTION without BEGIN"),
        ("def f():\n    # BEGIN SOLUTION 1.1: h\n    # BEGIN SOLUTION 1.2: h\n", "inside another"),
        ("def f():\n    # BEGIN SOLUTION 1.1: h\n    pass\n", "never closed"),
    ],
)
def test_malformed_markers_are_reported_with_their_line(source, message):
    with pytest.raises(ValueError, match=message):
        parse_solutions(source)
