# treu: `make run` serves the demo, `make test` runs the suite. Nothing else is needed by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ASSETS := node_modules/.package-lock.json
export TREU_DATA_DIR ?= ./data

.PHONY: run test check fmt lint bench migrate revision demo clean install browsers assets messages

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Browser libraries (the till's QR decoder) come from npm, exactly as the lock file says.
$(ASSETS): package.json package-lock.json
	@command -v npm > /dev/null || (echo "treu needs Node.js 18+ (npm) for its browser assets" >&2; exit 1)
	npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
	touch $(ASSETS)

install: $(STAMP) $(ASSETS)

assets: $(ASSETS)

run: $(STAMP) $(ASSETS)
	@$(BIN)/treu init
	@$(BIN)/treu demo --if-empty
	@echo
	@echo "serving http://127.0.0.1:8000 (Ctrl-C stops it)"
	@$(BIN)/treu serve --host 127.0.0.1 --port 8000

test: $(STAMP) $(ASSETS) browsers
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The browser tests drive Debian's Chromium (Playwright's own download does not work offline).
browsers:
	@command -v chromium > /dev/null || [ "$$(id -u)" != 0 ] || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium > /dev/null)

check: $(STAMP)
	$(BIN)/ruff format --check app tests bench alembic
	$(BIN)/ruff check app tests bench alembic
	$(BIN)/mypy
	$(MAKE) test

fmt: $(STAMP)
	$(BIN)/ruff format app tests bench alembic
	$(BIN)/ruff check --fix app tests bench alembic

# wrk comes from the system; as root it is installed if missing, otherwise you are told how.
bench: $(STAMP)
	@command -v wrk > /dev/null || [ "$$(id -u)" != 0 ] || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk > /dev/null)
	@command -v wrk > /dev/null || { echo "make bench needs wrk: apt-get install wrk (or brew install wrk)"; exit 1; }
	$(BIN)/python -m bench.run
	# Dashboard KPIs over a café with ~1M ledger entries (the demo history takes minutes;
	# BENCH_KPI_DATA=dir keeps it for the next run).
	# Starlette 1.x warns that its TestClient wants httpx2; httpx works, the warning is noise here.
	$(BIN)/python -W 'ignore:Using `httpx` with' -m bench.kpi

migrate: $(STAMP)
	$(BIN)/treu db upgrade

# Extract every translatable string (to update a catalog under app/web/locale/de/LC_MESSAGES).
messages: $(STAMP)
	$(BIN)/pybabel extract -F babel.cfg -o app/web/locale/messages.pot --no-location .

revision: $(STAMP)
	$(BIN)/alembic revision --autogenerate -m "$(m)"

demo: $(STAMP)
	$(BIN)/treu init
	$(BIN)/treu demo

clean:
	rm -rf $(VENV) node_modules data .pytest_cache .mypy_cache .ruff_cache test-artifacts
