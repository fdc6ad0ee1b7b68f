# The README's commands. `make serve` and `make test` work on a fresh machine:
# they create .venv and install the project into it first.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3

.PHONY: install serve test lint browser postgres bench bench-http clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -e '.[dev]' --config-settings editable_mode=compat
	touch $@

install: $(VENV)/.installed

serve: install
	$(VENV)/bin/geofence serve

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy geofence

# Debian's chromium for the map's browser test (apt-get when missing; fails loudly)
browser:
	bash .ci/install-chromium

# Debian's PostgreSQL and PostGIS: the tests run the store and the API on both SQLite and
# a throwaway PostgreSQL cluster (api/pgtest.py); apt-get when missing; fails loudly
postgres:
	bash .ci/install-postgres

# the kernels are compiled once first (a fresh checkout has no cache: see api/warm.py)
test: lint browser postgres
	$(PY) -m api.warm
	$(VENV)/bin/pytest -q -n 2

bench: install postgres
	$(PY) -m bench.engine
	$(PY) -m bench.decisions
	$(PY) -m bench.gnss

# the HTTP service against a bare FastAPI endpoint (needs Debian's wrk)
bench-http: install
	@command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk"; exit 1; }
	$(PY) bench/http.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache .hypothesis
