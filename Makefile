# Every target works on a fresh clone with only python3 present: it creates .venv and
# installs the project (editable, with the dev extra) the first time.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test bench lint type install clean migrations constraints screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install --quiet -c constraints.txt pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## make demo [RESET=1]: example_project on SQLite with demo data (kept between runs; RESET=1
## starts over); prints both logins, runs the periodic tasks (rollouts advance) and serves :8000
demo: $(STAMP)
	cd example_project && ../$(BIN)/python manage.py flagapp_demo $(if $(RESET),--reset,)
	cd example_project && { ../$(BIN)/python manage.py flagapp_run_tasks --loop > flagapp-tasks.log 2>&1 & \
	  tasks=$$!; trap 'kill $$tasks 2>/dev/null' EXIT INT TERM; \
	  ../$(BIN)/python manage.py runserver $${DEMO_ADDR:-127.0.0.1:8000}; }

## make test: the whole suite on SQLite (no server needed); exit code 5 (nothing collected) fails
test: $(STAMP)
	$(BIN)/python .ci/pytest_ok.py $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

type: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .tox

## make screenshots: the browser tests (Debian chromium), saving docs/screenshots/*.png (docs/admin.md)
screenshots: $(STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,browser]'
	cd tests/browser && npm ci --no-audit --no-fund --ignore-scripts --silent
	FLAGAPP_DOCS_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest -q -p no:cacheprovider -m browser tests/browser

## make migrations: while unreleased, regenerate the single 0001_initial migration
migrations: $(STAMP)
	rm -f flagapp/migrations/0*.py
	DJANGO_SETTINGS_MODULE=tests.settings $(BIN)/python -m django makemigrations flagapp

## make constraints: re-pin the toolchain (latest versions pyproject.toml allows), in a fresh venv
constraints:
	rm -rf .venv-constraints
	$(PYTHON) -m venv .venv-constraints
	.venv-constraints/bin/python -m pip install --quiet --upgrade pip
	.venv-constraints/bin/python -m pip install --quiet -e '.[dev,browser]'
	{ sed -n '/^#/p' constraints.txt; \
	  .venv-constraints/bin/python -m pip freeze --all --exclude-editable | grep -v '^-e' \
	    | grep -iv '^\(setuptools\|wheel\)=='; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	rm -rf .venv-constraints
