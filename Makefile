# One task runner for people and CI. `make run` and `make test` are all a new user needs.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTHON ?= python3

.PHONY: install chromium faketime run cluster test unit lint format bench bench-tools chaos clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[brokers,llm,interop,test]'
	@touch $(STAMP)

install: $(STAMP)

run: install  ## the embedded mesh: control plane + NATS + SQLite + demo agents
	$(VENV)/bin/agentmesh up --demo

cluster: install  ## 3 NATS nodes (JetStream R3) + PostgreSQL (DATABASE_URL) + 2 control planes + 3 agents
	$(VENV)/bin/agentmesh up --cluster 3

chromium:  ## the system browser the web UI tests drive (Playwright downloads none)
	@command -v chromium >/dev/null || { apt-get update -q && apt-get install -y -q chromium; }

faketime:  ## libfaketime, the skewed wall clock of the chaos battery's clock-skew workers
	@test -n "$$(ls /usr/lib/*/faketime/libfaketime.so.1 2>/dev/null)" || { apt-get update -q && apt-get install -y -q faketime; }

# three workers, one test file each at a time: the suite waits on brokers and processes
# much of the time, so a third worker on two cores fills those waits (measured: 630 s of
# pytest with two workers, 513 s with three, on this 2-core machine)
PYTEST_WORKERS ?= 3

test: install lint chromium faketime  ## every test suite (needs nothing running; starts its own servers)
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile --durations=30  # the slowest tests, to keep it under 10 min

unit: install
	$(PY) -m pytest tests/unit -q

lint: install
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff format src tests bench examples
	$(VENV)/bin/ruff check --fix src tests bench examples

bench-tools: install  ## the load generator and profiler of the benchmarks
	@command -v wrk >/dev/null || { apt-get update -q && apt-get install -y -q wrk; }
	@test -x $(VENV)/bin/py-spy || $(PY) -m pip install -q --disable-pip-version-check -e '.[brokers,llm,test,bench]'

bench: install bench-tools  ## hot paths next to raw baselines; writes bench/results/latest.json
	$(PY) -m bench.run

chaos: install faketime  ## the fault and abuse battery at full size: a table of scenario, target, measured, pass
	$(PY) -m bench.chaos

clean:
	rm -rf $(VENV) .agentmesh .pytest_cache .mypy_cache .ruff_cache
