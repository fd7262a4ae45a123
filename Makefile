# Two commands matter: `make run` starts the whole system, `make test` runs the whole suite.
# Both create the virtual environment first when it is missing or out of date.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PACKAGES := libs/events services/api-gateway services/scheduler services/dispatcher \
            services/reporter tools/fake-provider tools/smsctl
SRC_DIRS := $(addsuffix /src,$(PACKAGES))
STAMP := $(VENV)/.installed-stamp
NODE_STAMP := tools/asyncapi/node_modules/.installed-stamp
OIDC_STAMP := tools/oidc-provider/node_modules/.installed-stamp

.PHONY: help venv lock audit run test test-unit test-integration test-e2e test-admin lint fmt migrate \
        bench asyncapi openapi browser up down logs services clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

# uv.lock pins every package of the workspace (runtime and the dev group) with its hashes; uv
# installs exactly that, our packages editable. --inexact keeps pip and uv itself in the venv.
UV := $(BIN)/uv
UV_SYNC := UV_PROJECT_ENVIRONMENT=$(VENV) UV_PYTHON_DOWNLOADS=never $(UV) sync --frozen \
           --all-packages --inexact --python $(BIN)/python

$(STAMP): uv.lock pyproject.toml scripts/uv-requirements.txt $(addsuffix /pyproject.toml,$(PACKAGES))
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes -r scripts/uv-requirements.txt
	$(UV_SYNC)
	@touch $@

venv: $(STAMP) ## create or update the virtual environment (exactly uv.lock)

lock: $(STAMP) ## update uv.lock after a pyproject.toml changed, then install it
	$(UV) lock
	$(UV_SYNC)
	@touch $(STAMP)

# The AsyncAPI document is validated by the reference parser (npm), pinned by package-lock.json.
$(NODE_STAMP): tools/asyncapi/package.json tools/asyncapi/package-lock.json
	npm ci --prefix tools/asyncapi --ignore-scripts --no-audit --no-fund
	@touch $@

# A real OpenID Connect provider (oidc-provider on npm) for the admin UI's login tests.
$(OIDC_STAMP): tools/oidc-provider/package.json tools/oidc-provider/package-lock.json
	npm ci --prefix tools/oidc-provider --ignore-scripts --no-audit --no-fund
	@touch $@

browser: ## Debian's chromium for the admin UI's browser tests (installed only when missing)
	@scripts/install-browser.sh

# PostgreSQL and RabbitMQ where DATABASE_URL/AMQP_URL (run) or TEST_DATABASE_URL/TEST_AMQP_URL
# (test) point: used when they answer; else started (installed ones, Docker, apt as root), or a
# message with the commands that would fix it. See scripts/ensure_services.py.
ENSURE := $(PYTHON) scripts/ensure_services.py
COMPOSE := docker compose -p sms-platform -f deploy/docker-compose.yml

services: ## start PostgreSQL and RabbitMQ for both run and test when they do not answer
	@$(ENSURE) --for run --for test

run: $(STAMP) ## migrate and start every service in the foreground (Ctrl-C stops all)
	@$(ENSURE) --for run
	$(BIN)/python scripts/run.py

migrate: $(STAMP) ## apply database migrations to DATABASE_URL
	$(BIN)/sms-migrate gateway scheduler dispatcher reporter

test: $(STAMP) $(NODE_STAMP) $(OIDC_STAMP) browser ## the whole suite against the real PostgreSQL and RabbitMQ
	@$(ENSURE) --for test
	$(BIN)/pytest

test-unit: $(STAMP) ## fast tests with no services
	$(BIN)/pytest $$(find libs services tools -path '*tests/unit' -type d)

test-integration: $(STAMP) ## tests against PostgreSQL and RabbitMQ
	@$(ENSURE) --for test
	$(BIN)/pytest $$(find libs services tools -path '*tests/integration' -type d)

test-e2e: $(STAMP) ## every service as a real process
	@$(ENSURE) --for test
	$(BIN)/pytest tests/e2e

test-admin: $(STAMP) $(OIDC_STAMP) browser ## admin UI: real browser, real OIDC provider
	@$(ENSURE) --for test
	$(BIN)/pytest services/api-gateway/gateway_tests/admin

lint: $(STAMP) ## ruff, mypy, and the audit when the package registry answers
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy $(SRC_DIRS)
	@$(BIN)/python scripts/audit.py --if-reachable

audit: $(STAMP) ## pip-audit: every package of uv.lock against the registry's advisories
	@$(BIN)/python scripts/audit.py

fmt: $(STAMP) ## format and autofix
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

asyncapi: $(STAMP) $(NODE_STAMP) ## regenerate and validate docs/asyncapi.json from the models
	$(BIN)/sms-asyncapi --output docs/asyncapi.json
	node tools/asyncapi/validate.mjs docs/asyncapi.json --strict

openapi: $(STAMP) ## regenerate docs/openapi.json (the API contract) from the gateway
	$(BIN)/python -m gateway.openapi --output docs/openapi.json

N ?= 100000
REPLICAS ?=
bench: $(STAMP) ## end-to-end benchmark: N clients (100,000), one mailing, 20 ms provider; REPLICAS=scheduler=2,...
	@$(ENSURE) --for run
	$(BIN)/python scripts/bench.py -n $(N) --replicas "$(REPLICAS)"

up: ## docker compose: the whole platform with Prometheus and Grafana
	$(COMPOSE) --env-file .env up -d --build
	@$(PYTHON) scripts/compose_urls.py

down: ## docker compose: stop it
	$(COMPOSE) down

logs: ## docker compose: follow the logs
	$(COMPOSE) logs -f

clean: ## remove the virtual environment and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

dashboard-png: $(STAMP) ## docs/dashboard.png: the dashboard's panel queries against a real Prometheus over a real run
	$(UV) run --no-sync --with matplotlib python scripts/render_dashboard.py
