"""What the site generates from the code: each lesson's exercises and solutions, its notebook, the API page.

All are read from the sources, never copied by hand, so the site cannot drift away from them:

* ``exercises_markdown("03")`` parses ``solutions/03/exercises.py`` (the single source of the exercises): for
  every function that holds a ``# BEGIN SOLUTION A.B: hint`` block it lists the signature and docstring the
  learner sees, the hint, the command that grades it, and the worked answer in a collapsed block.
* ``lesson_notebook("03")`` is ``lessons/03/lesson.py`` as an ``.ipynb`` (no outputs), the lesson page's download;
  ``download_html("03", ...)`` is the line on the page that offers it with the lesson's ``exercises.py``.
* ``api_markdown()`` documents every public function and class of ``drifting_min`` from its signature and
  docstring.
"""

from __future__ import annotations

import ast
import html
import importlib
import inspect
import pkgutil
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from course.loader import graded_checks
from course.markers import parse_solutions

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Exercise:
    """One function of a solutions file that the learner has to fill in."""

    ids: list[str]
    name: str
    signature: str
    docstring: str
    hints: list[str]
    solution: str
    checks: list[str] = field(default_factory=list)


def _signature_source(lines: list[str], node: ast.FunctionDef) -> str:
    """The ``def ...:`` header as written (decorators included), however many lines it spans."""
    first = min([d.lineno for d in node.decorator_list] + [node.lineno]) - 1
    body_start = node.body[0].lineno - 1
    header = lines[first:body_start]
    # cut anything after the colon that closes the signature (a one-line body is not expected, but be safe)
    return textwrap.dedent("".join(header)).rstrip()


def parse_exercises(source: str) -> list[Exercise]:
    """Every top-level function (or method) of a solutions file that contains a solution block, in order."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    blocks = parse_solutions(source)
    markers = {n - 1 for b in blocks for n in (b.begin, b.end)}  # 0-based line numbers of marker lines
    found: list[Exercise] = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        end = node.end_lineno
        inside = [b for b in blocks if node.lineno <= b.begin <= node.end_lineno]
        ids = [b.exercise_id for b in inside]
        hints = [b.hint for b in inside]
        if not ids:
            continue
        # a nested function that holds the block is reported by its outermost function only
        if any(ex.ids == ids for ex in found):
            continue
        first = min([d.lineno for d in node.decorator_list] + [node.lineno]) - 1
        # the worked answer: the function without its docstring (shown just above it) and without the markers
        skip = set()
        doc = node.body[0]
        if isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str):
            skip = set(range(doc.lineno - 1, doc.end_lineno))
        solution_lines = [
            line
            for number, line in enumerate(lines[first:end], start=first)
            if number not in skip and number not in markers
        ]
        found.append(
            Exercise(
                ids=ids,
                name=node.name,
                signature=_signature_source(lines, node),
                docstring=inspect.cleandoc(ast.get_docstring(node, clean=False) or ""),
                hints=hints,
                solution=textwrap.dedent("".join(solution_lines)).rstrip(),
            )
        )
    found.sort(key=lambda ex: [tuple(int(p) for p in i.split(".")) for i in ex.ids])
    return found


def _graded_checks(lesson: str) -> dict[str, list[str]]:
    """Exercise id -> names of its graded checks (``course.loader.graded_checks``, the one discovery)."""
    checks: dict[str, list[str]] = {}
    for check in graded_checks(lesson):
        checks.setdefault(check.exercise_id, []).append(check.__name__)
    return checks


def _fence(code: str, lang: str = "python", indent: str = "") -> str:
    ticks = "````" if "```" in code else "```"
    body = textwrap.indent(code, indent) if indent else code
    return f"{indent}{ticks}{lang}\n{body}\n{indent}{ticks}\n"


def exercises_markdown(lesson: str) -> str | None:
    """The "Exercises and solutions" section of lesson ``lesson`` (two digits), or None without solutions."""
    path = ROOT / "solutions" / lesson / "exercises.py"
    if not path.exists():
        return None
    exercises = parse_exercises(path.read_text())
    checks = _graded_checks(lesson)
    number = str(int(lesson))
    out = [
        "## Exercises and solutions\n",
        f"Every exercise below is a function of `lessons/{lesson}/exercises.py`, the file you edit. "
        f"Fill in its `raise NotImplementedError(...)`, then grade it with `pytest lessons/{lesson}`; "
        "the run ends with a scoreboard of every exercise. The signatures and docstrings are those of your file; "
        f"the worked answers come from `solutions/{lesson}/exercises.py` and pass the same checks "
        f"(`pytest lessons/{lesson} --solutions`). Try first, then open a solution.\n",
    ]
    for ex in exercises:
        label = ", ".join(ex.ids)
        out.append(f"### Exercise {label}: `{ex.name}` {{ #exercise-{ex.ids[0].replace('.', '-')} }}\n")
        stub = ex.signature + "\n"
        if ex.docstring:
            stub += textwrap.indent('"""' + ex.docstring + '\n"""', "    ") + "\n"
        stub += "    ..."
        out.append(_fence(stub))
        for hint in ex.hints:
            if hint:
                out.append(f"*Hint:* {_escape_md(hint)}\n")
        names = [name for i in ex.ids for name in checks.get(i, [])]
        selectors = " or ".join(f"ex{i.replace('.', '_')}" for i in ex.ids)
        quoted = f'"{selectors}"' if len(ex.ids) > 1 else selectors
        run = f"pytest lessons/{lesson} -k {quoted}"
        if names:
            listed = ", ".join(f"`{n}`" for n in names)
            out.append(f"*Graded by* {listed}: run them alone with `{run}`.\n")
        else:
            out.append(f"*Run its checks alone:* `{run}`.\n")
        out.append('??? example "Solution"\n')
        out.append(_fence(ex.solution, indent="    "))
    if not exercises:
        out.append(f"*Lesson {number} has no exercises yet.*\n")
    return "\n".join(out)


def _escape_md(text: str) -> str:
    """Hints are plain text written for a terminal: keep `*` and `_` literal unless inside backticks."""
    parts = re.split(r"(`[^`]*`)", text)
    return "".join(p if p.startswith("`") else re.sub(r"([*_\\<>\[\]])", r"\\\1", p) for p in parts)


# ------------------------------------------------------------------------------------------ notebooks


def lesson_notebook(lesson: str) -> str:
    """``lessons/NN/lesson.py`` (a jupytext percent notebook) as the text of an ``.ipynb`` without outputs."""
    import jupytext

    notebook = jupytext.read(ROOT / "lessons" / lesson / "lesson.py")
    return jupytext.writes(notebook, fmt="ipynb")


def download_html(lesson: str, notebook_url: str, exercises_url: str) -> str:
    """The line at the top of a lesson page that offers its notebook and exercises, and says how to grade them."""
    return (
        f'<p class="course-download">Download <a href="{notebook_url}" download>lesson.ipynb</a> (this lesson as a '
        f'notebook) and <a href="{exercises_url}" download>exercises.py</a> (the file you fill in); they run in '
        f"<code>lessons/{lesson}/</code> of a clone of the repository, where <code>pytest lessons/{lesson}</code> "
        f"grades your answers.</p>"
    )


# ----------------------------------------------------------------------------------------------- API page


def _public_members(module) -> list[tuple[str, object]]:
    names = getattr(module, "__all__", None) or [n for n in vars(module) if not n.startswith("_")]
    members = []
    for name in names:
        obj = getattr(module, name, None)
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and getattr(obj, "__module__", None) == module.__name__:
            members.append((name, obj))
    # keep source order, which is the order the module explains things in
    def line(item):
        try:
            return inspect.getsourcelines(inspect.unwrap(item[1]))[1]
        except (OSError, TypeError):
            return 0

    return sorted(members, key=line)


def _signature(name: str, obj) -> str:
    try:
        sig = str(inspect.signature(obj))
    except (TypeError, ValueError):
        sig = "(...)"
    prefix = "class" if inspect.isclass(obj) else "def"
    text = f"{prefix} {name}{sig}"
    if len(text) <= 100:
        return text
    # one parameter a line when the signature is long
    params = inspect.signature(obj)
    inner = ",\n".join(f"    {p}" for p in params.parameters.values())
    annotation = params.return_annotation
    ret = "" if annotation is inspect.Signature.empty else f" -> {inspect.formatannotation(annotation)}"
    return f"{prefix} {name}(\n{inner},\n){ret}"


def _doc_block(doc: str | None) -> str:
    """A docstring as written (its equations are laid out in plain text), wrapped to the column."""
    if not doc:
        return "*(no docstring)*\n"
    return f'<pre class="api-doc">{html.escape(inspect.cleandoc(doc))}</pre>\n'


def api_markdown(package: str = "drifting_min") -> str:
    """Reference of ``package``: for each module, its docstring, then each public function and class."""
    pkg = importlib.import_module(package)
    modules = [pkg] + [  # subpackages too (drifting_min.toys.data, ...); never a __main__
        importlib.import_module(info.name)
        for info in sorted(pkgutil.walk_packages(pkg.__path__, prefix=f"{package}."), key=lambda i: i.name)
        if not any(part.startswith("_") for part in info.name.split("."))
    ]
    exported = set(getattr(pkg, "__all__", []))
    out = []
    for module in modules[1:]:
        members = _public_members(module)
        short = module.__name__[len(package) + 1 :].replace(".", "-")  # toys-data, cifar-data: unique anchors
        out.append(f"## `{module.__name__}` {{ #{short} }}\n")
        out.append(_doc_block(module.__doc__))
        for name, obj in members:
            where = f"{package}.{name}" if name in exported else f"{module.__name__}.{name}"
            out.append(f"### `{name}` {{ #{short}-{name.lower()} }}\n")
            out.append(f"<small>`{where}`</small>\n")
            out.append(_fence(_signature(name, obj)))
            out.append(_doc_block(obj.__doc__))
            if inspect.isclass(obj):
                for meth_name, meth in vars(obj).items():
                    if meth_name.startswith("_") or not callable(meth):
                        continue
                    out.append(f"**`{name}.{meth_name}`**\n")
                    out.append(_fence(_signature(meth_name, meth)))
                    out.append(_doc_block(meth.__doc__))
    return "\n".join(out)
