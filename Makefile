# Two commands for a newcomer: `make demo` and `make test`. Nothing else needs to be installed first
# but Python 3.11+ and make: the virtualenv and every dependency are set up here.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
MANAGE := $(BIN)/python manage.py
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install messages demo test lint migrate run clean

$(BIN)/python:
	@sh scripts/bootstrap-venv $(PYTHON) $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev]"
	@touch $@

install: $(VENV)/.installed

# The cockpit's translations: locale/*/LC_MESSAGES/django.po compiled to .mo by Babel (plain Python, no GNU
# gettext needed). To add new strings: `manage.py cockpit_makemessages` (that one needs gettext), translate them.
messages: install
	DEBUG=true $(MANAGE) compile_translations -v 0  # only compiles files: no secret needed

# Demo: SQLite and in-process tasks unless DATABASE_URL / REDIS_URL are set. DEBUG is on for the demo only.
demo: export DEBUG ?= true
demo: messages
	$(MANAGE) migrate --noinput -v 0
	$(MANAGE) load_demo --address $(HOST):$(PORT)
	$(MANAGE) runserver --noreload $(HOST):$(PORT)

# Tests: uses DATABASE_URL / REDIS_URL when set; without them runs what can run and lists what was skipped.
test: messages
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

migrate: install
	$(MANAGE) migrate --noinput

# Production-like run (web, worker, beat) with DATABASE_URL, REDIS_URL and SECRET_KEY set.
run: messages
	$(MANAGE) migrate --noinput
	$(MANAGE) collectstatic --noinput -v 0
	$(BIN)/honcho start

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles .pytest_cache .ruff_cache .hypothesis
