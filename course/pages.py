"""Tables made by a script and shown on a page: the text between two marker lines, written and read in one place.

A page holds ``BEGIN\n<generated text>\nEND``; ``write_between`` replaces that text, and ``shown_between`` returns
it, so a test can compare what a page shows with what the script makes from its records.
"""

from __future__ import annotations

from pathlib import Path


def _split(body: str, page: Path, begin: str, end: str) -> tuple[str, str, str]:
    if begin not in body or end not in body.split(begin, 1)[1]:
        raise SystemExit(f"{page} has no {begin} ... {end} markers")
    head, rest = body.split(begin, 1)
    shown, tail = rest.split(end, 1)
    return head, shown, tail


def shown_between(page: str | Path, begin: str, end: str) -> str:
    """The text between the markers ``begin`` and ``end`` of ``page``, stripped."""
    page = Path(page)
    return _split(page.read_text(), page, begin, end)[1].strip()


def write_between(page: str | Path, begin: str, end: str, text: str) -> None:
    """Replace the text between the markers ``begin`` and ``end`` of ``page`` by ``text``."""
    page = Path(page)
    head, _, tail = _split(page.read_text(), page, begin, end)
    page.write_text(f"{head}{begin}\n{text.strip()}\n{end}{tail}")
