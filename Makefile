# Two commands set deskpal up on a machine that has only Python >= 3.11:
#   make serve   serve on http://127.0.0.1:8000 (SQLite under ./var, a demo customer printed once);
#                options go in SERVE_ARGS, e.g. make serve SERVE_ARGS="--port 8080"
#   make test    ruff, ruff format --check, mypy on src/, pytest on SQLite and PostgreSQL
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SERVE_ARGS ?=

.PHONY: serve test lint worker migrate clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/deskpal serve $(SERVE_ARGS)

worker: $(STAMP)
	$(BIN)/deskpal worker

migrate: $(STAMP)
	$(BIN)/deskpal migrate

lint: $(STAMP)
	$(BIN)/ruff check src tests $(wildcard bench)
	$(BIN)/ruff format --check src tests $(wildcard bench)
	$(BIN)/mypy src

test: lint
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
