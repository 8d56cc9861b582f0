"""A lesson's time estimate is written in four places; they must agree.

The lesson's own "**Time.** About N minutes" paragraph is the source. The README's lesson table, the home
page's table and the path page's headings give the same number wherever they list that lesson.
"""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def lesson_minutes() -> dict[str, int]:
    """{"01": 90, ...} from each lesson's "**Time.** About N minutes" (or "About N hours") paragraph.

    A lesson still being written may have no such paragraph yet; it is left out (and must not be listed).
    """
    found = {}
    for path in sorted(ROOT.glob("lessons/[0-9][0-9]/lesson.py")):
        match = re.search(r"\*\*Time\.\*\* About (\d+(?:\.\d+)?) (minutes|hours?)\b", path.read_text())
        if match:
            value = float(match.group(1)) * (60 if match.group(2).startswith("hour") else 1)
            found[path.parent.name] = round(value)
    return found


def listed_minutes(text: str, pattern: str) -> dict[str, int]:
    """{lesson number: minutes} for every match of pattern (groups: lesson, minutes)."""
    return {f"{int(n):02d}": int(m) for n, m in re.findall(pattern, text, flags=re.MULTILINE)}


def test_the_first_lessons_state_their_time():
    truth = lesson_minutes()
    for lesson in ("01", "02", "03", "04", "05"):
        assert lesson in truth, f"lessons/{lesson}/lesson.py has no '**Time.** About N minutes' paragraph"


def test_readme_site_and_lessons_agree():
    truth = lesson_minutes()
    places = {
        "README.md": listed_minutes(
            (ROOT / "README.md").read_text(), r"^\| \[(\d\d)\]\(lessons/\d\d/\) \|.*\| (\d+) min \|$"
        ),
        "docs/index.md": listed_minutes(
            (ROOT / "docs/index.md").read_text(), r"^\| \[(\d+)\. .*\]\(lessons/\d\d/index\.py\) \|.*\| (\d+) min \|$"
        ),
        "docs/lessons/index.md": listed_minutes(
            (ROOT / "docs/lessons/index.md").read_text(), r"^## (\d+)\. .* · (\d+) min"
        ),
    }
    for place, listed in places.items():
        assert listed, f"{place}: no lesson times found (has its table or heading format changed?)"
        missing = sorted(set(truth) - set(listed))
        assert not missing, f"{place} gives no time for lesson(s) {missing}, whose lesson.py states one"
        for lesson, minutes in listed.items():
            assert lesson in truth, f"{place} lists a time for lesson {lesson}, whose lesson.py states none"
            assert minutes == truth[lesson], (
                f"{place} gives lesson {lesson} {minutes} min, but lessons/{lesson}/lesson.py says {truth[lesson]}"
            )
