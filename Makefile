# LeadOps: `make run` sets everything up and starts the app; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: run test web jobs lint bench clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.deps: requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-deps: requirements.txt requirements-dev.txt $(VENV)/.deps
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

## run: install, migrate, create the first admin, add demo data to an empty database, start web + jobs
run: $(VENV)/.deps
	$(PY) -m db setup
	@echo "LeadOps: http://localhost:$(PORT)  (API: http://localhost:$(PORT)/api/health)  Ctrl-C stops both processes"
	@trap 'kill $$(jobs -p) 2>/dev/null; wait' INT TERM EXIT; \
	$(PY) -m jobs & \
	$(VENV)/bin/streamlit run app.py --server.port $(PORT) & \
	wait -n

## web / jobs: one process alone
web: $(VENV)/.deps
	$(VENV)/bin/streamlit run app.py --server.port $(PORT)
jobs: $(VENV)/.deps
	$(PY) -m jobs

## test: install the test dependencies and run the whole suite (SQLite and PostgreSQL)
test: $(VENV)/.dev-deps
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev-deps
	$(VENV)/bin/ruff check .

## bench: the benchmarks, run by hand (figures go into issue notes)
bench: $(VENV)/.dev-deps
	$(PY) bench/intake.py
	$(PY) bench/queue.py
	$(PY) bench/followups.py
	$(PY) bench/dashboard.py
	$(PY) bench/learned_score.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
