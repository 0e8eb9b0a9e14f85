# Every workflow a person repeats. `make help` lists them.
SHELL := /bin/bash
PY := .venv/bin/python
LOCALSTACK := PYTHONPATH=scripts $(PY) -m localstack

# The kind backend (real containers) needs more tools and the images: asked for by E2E_BACKEND=kind or KIND=1.
KIND ?= $(if $(filter kind,$(E2E_BACKEND)),1,)

.PHONY: help tools images up down status test test-kind test-all unit integration e2e bench lint chart-lint clean-state

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
test: tools ## the whole suite: unit, integration and browser tests on the real local stack
	@status=0; $(PY) -m pytest tests/unit || status=$$?; $(PY) -m pytest tests/integration || status=$$?; exit $$status

test-kind: ## the browser suite and the real-container tests on kind (E2E_BACKEND=kind)
	@E2E_BACKEND=kind $(MAKE) --no-print-directory e2e

test-all: ## what CI runs: `make test` on the local stack, then `make test-kind`
	@status=0; $(MAKE) --no-print-directory test || status=$$?; $(MAKE) --no-print-directory test-kind || status=$$?; exit $$status

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
