# Every workflow a person repeats. `make help` lists them.
SHELL := /bin/bash
PY := .venv/bin/python
LOCALSTACK := PYTHONPATH=scripts $(PY) -m localstack

.PHONY: help tools up down status test unit integration e2e bench lint clean-state

help: ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 16

tools: ## build or fetch every tool the stack needs (cached by version; a no-op when done)
	@bash scripts/provision/all.sh

up: tools ## start the local stack: Kubernetes, node agent, Keycloak, the hub; prints the URL and demo users
	@$(LOCALSTACK) up

down: ## stop everything `make up` or the tests started
	@test -x $(PY) && $(LOCALSTACK) down || true

status: ## which local servers are running
	@$(LOCALSTACK) status

# Two pytest runs: Playwright's sync API keeps an event loop running for the browser tests'
# session, and the strict asyncio unit tests need the loop to themselves.
test: tools lint ## lint, then the whole suite: unit, integration and browser tests on the real local stack
	@status=0; $(PY) -m pytest tests/unit || status=$$?; $(PY) -m pytest tests/integration || status=$$?; exit $$status

lint: tools ## ruff (lint and format check), helm lint of the chart and its examples, the values schema
	@$(PY) -m ruff check .
	@$(PY) -m ruff format --check .
	@$(PY) chart/tools/values_schema.py --check
	@$(PY) chart/tools/values_table.py --check
	@helm=$$($(PY) -c 'import sys; sys.path.insert(0, "scripts"); from localstack.common import helm_path; print(helm_path())'); \
	  "$$helm" lint --quiet chart && \
	  for example in chart/examples/*.yaml; do "$$helm" lint --quiet --strict chart -f "$$example" || exit 1; done

unit: tools ## unit tests only (no servers)
	@$(PY) -m pytest tests/unit

integration: tools ## integration tests against the real servers (starts what is missing)
	@$(PY) -m pytest tests/integration

e2e: tools ## the browser suite only
	@$(PY) -m pytest tests/integration -m e2e

bench: up ## benchmarks against the running local stack (started if needed); writes docs/benchmarks.md
	@$(PY) -m benchmarks

clean-state: down ## forget the local stack's state (etcd data, Keycloak database, hub database)
	rm -rf .local-stack
