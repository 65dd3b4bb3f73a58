# Two commands set deskpal up on a machine that has only Python >= 3.11:
#   make serve   serve on http://127.0.0.1:8000 (SQLite under ./var, a demo customer printed once);
#                options go in SERVE_ARGS, e.g. make serve SERVE_ARGS="--port 8080"
#   make test    ruff, ruff format --check, mypy on src/, pytest on SQLite and PostgreSQL (and, for
#                tests/browser, Debian's Chromium; for tests/mail_in_imap, Debian's Dovecot: each
#                installed with apt-get when missing and run as root)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SERVE_ARGS ?=
CHROMIUM := /usr/bin/chromium
DOVECOT := /usr/sbin/dovecot

.PHONY: serve test lint chromium dovecot worker migrate clean

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

# The browser tests drive Debian's Chromium (never a browser Playwright would download). A no-op when
# it is there or when not root; a failed install fails only under CI (elsewhere the tests skip).
chromium:
	@if [ ! -x $(CHROMIUM) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's chromium for tests/browser"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || case "$$CI" in 1|true|TRUE|True|yes) exit 1;; *) echo "chromium not installed: tests/browser will skip";; esac; \
	fi

# The IMAP tests poll Debian's Dovecot, installed like Chromium; tests/mail_in_imap/dovecot.py runs
# its own instance, unprivileged, on free ports (never the package's system service).
dovecot:
	@if [ ! -x $(DOVECOT) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "installing Debian's dovecot-imapd for tests/mail_in_imap"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-imapd >/dev/null; } \
	  || case "$$CI" in 1|true|TRUE|True|yes) exit 1;; *) echo "dovecot not installed: tests/mail_in_imap will skip";; esac; \
	fi

test: lint chromium dovecot
	$(BIN)/pytest -q

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
