# Two commands set everything up on a fresh clone: `make demo` (the main job) and `make test` (every test).
# Each creates .venv and installs the pinned requirements when they are missing or have changed.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FORCE ?=

.PHONY: demo test test-lessons test-course exercises check-exercises bench site serve site-check clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m drifting_min.toys --dataset checkerboard --out outputs/demo

test: $(STAMP)
	$(PY) -m course.generate --check
	$(PY) -m pytest -q tests
	$(PY) -m pytest -q lessons --solutions

exercises: $(STAMP)
	$(PY) -m course.generate $(if $(FORCE),--force,)

bench: $(STAMP)
	for f in bench/bench_*.py; do $(PY) $$f || exit 1; done

clean:
	rm -rf site .pytest_cache outputs
