"""The lessons as .ipynb notebooks, the site's downloads: every lesson converts, and one runs in a Jupyter kernel.

``tools/sitegen.lesson_notebook`` makes ``lessons/NN/lesson.py`` into an ``.ipynb`` at build time. Every lesson
must give a valid notebook with the same cells; lesson 02 (the quickest, about 10 s on one core) is executed
cell by cell by nbclient in a fresh kernel of this environment, from its folder as Jupyter runs it, and its
``check_exercise`` cells must print a verdict for every exercise, whatever the state of ``exercises.py``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

from course.loader import ROOT, graded_checks, lesson_ids


def _load_sitegen():
    spec = importlib.util.spec_from_file_location("sitegen", ROOT / "tools" / "sitegen.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


sitegen = _load_sitegen()


@pytest.mark.parametrize("lesson", lesson_ids())
def test_every_lesson_becomes_a_valid_notebook_with_the_same_cells(lesson):
    notebook = nbformat.reads(sitegen.lesson_notebook(lesson), as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    source = jupytext.read(ROOT / "lessons" / lesson / "lesson.py")
    assert [(c.cell_type, c.source) for c in notebook.cells] == [(c.cell_type, c.source) for c in source.cells]
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code), "a download has no outputs"
    assert notebook.cells[0].source.startswith(f"# Lesson {lesson}")


def test_a_lesson_notebook_runs_in_a_kernel(monkeypatch):
    from nbclient import NotebookClient

    lesson = "02"
    notebook = nbformat.reads(sitegen.lesson_notebook(lesson), as_version=4)
    # the kernel is this environment's Python (the "python3" kernel runs the first `python` on PATH) importing
    # this checkout's packages (as `make lab` and `make site` arrange), on one thread
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    notebook.cells.append(nbformat.v4.new_code_cell("import course, drifting_min\nprint(course.__file__, "
                                                    "drifting_min.__file__)"))
    client = NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT / "lessons" / lesson)}})
    client.execute()  # raises CellExecutionError on the first cell that fails
    printed = "".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs
                      if o.output_type == "stream")
    ids = sorted({check.exercise_id for check in graded_checks(lesson)})
    assert ids
    for exercise in ids:
        assert f"Exercise {exercise} `" in printed, f"no verdict of exercise {exercise} in the notebook's output"
    assert all(c.execution_count for c in notebook.cells if c.cell_type == "code"), "every code cell ran"
    where = notebook.cells[-1].outputs[0]["text"].split()
    assert where == [str(ROOT / "course" / "__init__.py"), str(ROOT / "drifting_min" / "__init__.py")], (
        "the kernel graded another checkout's files"
    )
