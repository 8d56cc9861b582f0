# Two commands set everything up on a fresh clone: `make demo` (the main job) and `make test` (every test).
# Each creates .venv and installs the pinned requirements when they are missing or have changed. `make lab` opens
# the lessons as notebooks in JupyterLab (which it installs from its own requirements-lab.txt).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
FORCE ?=

.PHONY: demo test test-lessons test-course exercises check-exercises bench lab site serve site-check clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m drifting_min.toys --dataset checkerboard --out outputs/demo

test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m course.generate --check
	$(PY) -m pytest -q tests
	$(PY) -m pytest -q lessons --solutions

exercises: $(STAMP)
	$(PY) -m course.generate $(if $(FORCE),--force,)

bench: $(STAMP)
	for f in bench/bench_*.py; do [ $$f = bench/bench_fixes.py ] || $(PY) $$f || exit 1; done

clean:
	rm -rf site .pytest_cache outputs

# `make lab` opens the lessons in JupyterLab, each lesson.py as a notebook (jupytext's viewer is made the default
# for .py files by tools/jupyter/, the repository's configuration: your ~/.jupyter is not changed). JupyterLab
# comes from requirements-lab.txt, installed into .venv the first time. LAB_ARGS passes options on, e.g.
# `make lab LAB_ARGS="--no-browser --port 8890"`.
LAB_ARGS ?=

$(VENV)/.lab-installed: requirements-lab.txt $(STAMP)
	$(PY) -m pip install --quiet -r requirements-lab.txt
	touch $@

lab: $(VENV)/.lab-installed
	JUPYTER_CONFIG_PATH="$(CURDIR)/tools/jupyter$${JUPYTER_CONFIG_PATH:+:$$JUPYTER_CONFIG_PATH}" \
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CHECKOUT_PATH) \
	$(PY) -m jupyterlab --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/lessons $(LAB_ARGS)

# The site: `make site` builds it into site/ (lessons executed), `make serve` serves it while you edit, and
# `make site-check` opens every page in headless Chromium (apt-get install chromium chromium-driver).
# MathJax and the fonts come from npm (package-lock.json) and are served by the site itself.
# PYTHONPATH: the lessons' kernels import this checkout's drifting_min and course, whatever .venv's editable
# install points at.
CHECKOUT_PATH := PYTHONPATH="$(CURDIR)$${PYTHONPATH:+:$$PYTHONPATH}"
SITE_ENV := NO_MKDOCS_2_WARNING=1 OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(CHECKOUT_PATH)

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund

$(VENV)/.site-installed: requirements-site.txt $(STAMP)
	$(PY) -m pip install --quiet -r requirements-site.txt
	touch $@

site: $(STAMP) node_modules/.package-lock.json
	$(SITE_ENV) $(VENV)/bin/mkdocs build --strict

serve: $(STAMP) node_modules/.package-lock.json
	$(SITE_ENV) $(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:8000

site-check: $(STAMP) $(VENV)/.site-installed site
	$(PY) tools/site_check.py site --out outputs/site-check
