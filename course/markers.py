"""The grammar of solution markers, in one place: the generator, the site and the contract tests parse with it.

In ``solutions/NN/exercises.py`` each worked answer sits inside a function, between two marker lines:

    def mean_shift(x, targets, tau, kernel="gaussian"):
        '''docstring'''
        # BEGIN SOLUTION 3.1: hint shown to the learner
        ...the worked answer...
        # END SOLUTION

An exercise id is ``lesson.number`` (digits, one dot). The hint is the rest of the BEGIN line. Blocks do not
nest, every BEGIN has its END, and a block belongs to the function whose ``def`` comes last before it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

BEGIN = re.compile(r"^(?P<indent>[ \t]*)# BEGIN SOLUTION (?P<id>\d+\.\d+):[ \t]*(?P<hint>.*?)\s*$")
END = re.compile(r"^[ \t]*# END SOLUTION\s*$")
DEF = re.compile(r"^[ \t]*(?:async[ \t]+)?def (?P<name>\w+)\(")


@dataclass(frozen=True)
class SolutionBlock:
    """One marked answer: ``begin`` and ``end`` are the 1-based line numbers of its two marker lines."""

    exercise_id: str
    hint: str
    function: str
    indent: str
    begin: int
    end: int

    def contains(self, line_number: int) -> bool:
        """Whether 1-based ``line_number`` lies within the block, marker lines included."""
        return self.begin <= line_number <= self.end


def is_marker(line: str) -> bool:
    """Whether ``line`` is a BEGIN or END marker line."""
    return bool(BEGIN.match(line) or END.match(line))


def parse_solutions(source: str) -> list[SolutionBlock]:
    """Every solution block of a solutions file, in file order; ValueError (with the line) if malformed."""
    blocks: list[SolutionBlock] = []
    current_def: str | None = None
    open_block = None
    for number, line in enumerate(source.splitlines(), start=1):
        begin = BEGIN.match(line)
        if open_block is not None:
            if begin:
                raise ValueError(f"line {number}: BEGIN SOLUTION inside another solution block")
            if END.match(line):
                match, start, function = open_block
                blocks.append(SolutionBlock(match["id"], match["hint"], function, match["indent"], start, number))
                open_block = None
            continue
        if begin:
            if current_def is None:
                raise ValueError(f"line {number}: a solution block outside any function")
            open_block = (begin, number, current_def)
            continue
        if END.match(line):
            raise ValueError(f"line {number}: END SOLUTION without BEGIN SOLUTION")
        definition = DEF.match(line)
        if definition:
            current_def = definition["name"]
    if open_block is not None:
        raise ValueError(f"line {open_block[1]}: a solution block is never closed with # END SOLUTION")
    return blocks


def exercise_ids(source: str) -> list[str]:
    """The exercise ids of a solutions file, in file order (repeats kept, so a duplicate can be reported)."""
    return [block.exercise_id for block in parse_solutions(source)]
