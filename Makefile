# Every workflow a person repeats. `make help` lists them.
SHELL := /bin/bash
PY := .venv/bin/python
LOCALSTACK := PYTHONPATH=scripts $(PY) -m localstack

# The kind backend (real containers) needs more tools and the images: asked for by E2E_BACKEND=kind or KIND=1.
KIND ?= $(if $(filter kind,$(E2E_BACKEND)),1,)

# make test-next: the next hub releases (requirements-next.txt) in their own .venv-next.
PY_NEXT := .venv-next/bin/python
# The integration tests that drive the hub; the cluster, Keycloak and chart-rendering tests do not
# depend on the hub's release and run in `make test` only.
NEXT_INTEGRATION ?= tests/integration/test_e2e_spawn_rules.py tests/integration/test_e2e_browser.py \
	tests/integration/test_e2e_sessions_and_faults.py \
	tests/integration/test_chart.py::test_hub_with_the_charts_service_account_completes_a_spawn

.PHONY: help tools images up down status test test-next test-kind test-all unit integration e2e bench lint clean-state

help: ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | expand -t 16

tools: ## build or fetch every tool the stack needs (cached by version; a no-op when done); KIND=1 adds the kind backend's and `make images`
	@bash scripts/provision/all.sh
	@if [ -n "$(KIND)" ]; then bash scripts/provision/kind.sh && PYTHONPATH=scripts $(PY) -m images; fi

images: ## the kind node image and the chart's images, built here (cached by content); PRIMEHUB_IMAGES=pull pulls the official ones
	@bash scripts/provision/all.sh
	@bash scripts/provision/kind.sh
	@PYTHONPATH=scripts $(PY) -m images

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
	@# helm lint prints its notes (the chart's symlinks) even when it passes: shown only on failure
	@helm=$$($(PY) -c 'import sys; sys.path.insert(0, "scripts"); from localstack.common import helm_path; print(helm_path())'); \
	  out=$$("$$helm" lint chart 2>&1) || { echo "$$out"; exit 1; }; \
	  for example in chart/examples/*.yaml; do \
	    out=$$("$$helm" lint --strict chart -f "$$example" 2>&1) || { echo "$$out"; exit 1; }; done; \
	  echo "helm lint: the chart and its $$(ls chart/examples/*.yaml | wc -l) examples pass"

test-kind: ## the browser suite and the real-container tests on kind (E2E_BACKEND=kind)
	@E2E_BACKEND=kind $(MAKE) --no-print-directory e2e

test-all: ## what CI runs: `make test` (local stack), `make test-next`, then `make test-kind` (real containers)
	@# The two backends share the hub's and Keycloak's loopback ports: the local stack is stopped first.
	@status=0; for t in test test-next down test-kind; do $(MAKE) --no-print-directory $$t || status=$$?; done; exit $$status

test-next: tools ## unit and hub integration tests on the newest hub releases (.venv-next, requirements-next.txt)
	@bash scripts/provision/python-next.sh
	@status=0; $(PY_NEXT) -m pytest tests/unit || status=$$?; \
	PRIMEHUB_HUB_VENV=.venv-next $(PY_NEXT) -m pytest $(NEXT_INTEGRATION) || status=$$?; exit $$status

unit: tools ## unit tests only (no servers)
	@$(PY) -m pytest tests/unit

integration: tools ## integration tests against the real servers (starts what is missing)
	@$(PY) -m pytest tests/integration

e2e: tools ## the browser suite only
	@$(PY) -m pytest tests/integration -m e2e

bench: up ## benchmarks against the running local stack (started if needed); writes docs/benchmarks.md (BENCH_ARGS="--only servers --quick")
	@$(PY) -m benchmarks $(BENCH_ARGS)

clean-state: down ## forget the local stack's state (etcd data, Keycloak database, hub database)
	rm -rf .local-stack
