# The template's own tasks. The generated project has its own Makefile.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

export UV_PYTHON_DOWNLOADS ?= never

# The default answers of cookiecutter.json.
DEMO_SLUG := acme-service
DEMO_PACKAGE := acme_service
DEMO_HOST := 127.0.0.1
DEMO_PORT := 8000

.PHONY: help demo test test-fast lint format replica

help: ## list the tasks
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

demo: ## bake with the defaults into a temp folder and serve it on embedded defaults (SQLite, no Redis)
	@dir="$$(mktemp -d)"; \
	echo "Baking into $$dir"; \
	uv run --locked cookiecutter . --no-input --output-dir "$$dir"; \
	cd "$$dir/$(DEMO_SLUG)"; \
	unset VIRTUAL_ENV DATABASE_URL DATABASE_REPLICA_URL REDIS_URL; \
	uv sync; \
	uv run $(DEMO_PACKAGE) migrate; \
	echo "OpenAPI docs: http://$(DEMO_HOST):$(DEMO_PORT)/docs"; \
	exec uv run $(DEMO_PACKAGE) serve --host $(DEMO_HOST) --port $(DEMO_PORT)

test: replica ## run every test: hooks, bakes of each option set and their own checks
	uv run --locked pytest tests -v

test-fast: ## the quick tests only (no uv sync, ruff, mypy, alembic or pytest inside bakes)
	uv run --locked pytest tests -v -m "not bake"

replica: ## make sure the local streaming replica on port 5433 runs
	bash scripts/pg-replica.sh ensure

lint: ## ruff on the hooks, tests and scripts; syntax of the shell scripts; the CI workflow's schema
	uv run --locked ruff check hooks tests scripts
	uv run --locked ruff format --check hooks tests scripts
	bash -n scripts/pg-replica.sh
	bash -n .ci/run
	uv run --locked check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml

format: ## apply ruff's fixes and formatting to the hooks, tests and scripts
	uv run --locked ruff check --fix hooks tests scripts
	uv run --locked ruff format hooks tests scripts
