# dataexport: every target sets up what it needs itself, so a fresh clone only runs
# `make demo` or `make test`. Tools are called by path (.venv/bin/..., .tools/sam/bin/sam):
# nothing relies on an activated virtual environment.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules

# Python 3.11 is the Lambda runtime; prefer an explicit python3.11, else python3 (checked below).
PYTHON ?= $(firstword $(shell command -v python3.11 python3 2>/dev/null))
PORT ?= 3000
# Test files run in this many worker processes, each with its own embedded PostgreSQL; one on a
# shared DATABASE_URL server, where tests would drop and fill the same tables.
PYTEST_WORKERS ?= $(if $(DATABASE_URL),1,3)

VENV := .venv
VENV_BIN := $(VENV)/bin
# The stamp lives inside the venv: deleting the venv or editing pyproject.toml reinstalls.
VENV_STAMP := $(VENV)/.dataexport-installed

# SAM CLI pins many of its own dependencies, so it gets a venv of its own.
SAM_CLI_VERSION ?= 1.170.0
SAM_VENV := .tools/sam
SAM := $(SAM_VENV)/bin/sam
SAM_STAMP := $(SAM_VENV)/.installed-$(SAM_CLI_VERSION)

# checkov pins many packages too (the deploy gate's policy scan): another venv of its own.
CHECKOV_VERSION ?= 3.3.30
CHECKOV_VENV := .tools/checkov
CHECKOV := $(CHECKOV_VENV)/bin/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

# Every handler is a module named `app`; with `explicit_package_bases` (pyproject.toml) mypy names
# them functions.<dir>.app from the repository root, so one run checks them all without clashes.
MYPY_TARGETS := layers/dataexport/dataexport local/dataexport_local tests \
	$(sort $(wildcard functions/*/app.py)) $(sort $(wildcard tasks/*/*_task.py))

export SAM_CLI_TELEMETRY := 0
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help venv sam checkov lint format typecheck validate build deploy-check pytest test test-slow test-browser demo local bench bench-smoke backup-image smoke \
	clean distclean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

venv: $(VENV_STAMP) ## create .venv and install the project with its dev tools

$(VENV_STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "python3.11 not found (set PYTHON=...)" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
		|| { echo "$(PYTHON) is not Python 3.11 (set PYTHON=...)" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(VENV_BIN)/python -m pip install --quiet --upgrade pip
	$(VENV_BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

sam: $(SAM_STAMP) ## install the AWS SAM CLI into .tools/sam

$(SAM_STAMP):
	@test -n "$(PYTHON)" || { echo "python3.11 not found (set PYTHON=...)" >&2; exit 1; }
	rm -rf $(SAM_VENV)
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(SAM_VENV)/bin/python -m pip install --quiet 'aws-sam-cli==$(SAM_CLI_VERSION)'
	touch $@

checkov: $(CHECKOV_STAMP) ## install checkov into .tools/checkov (the deploy gate's policy scan)

$(CHECKOV_STAMP):
	@test -n "$(PYTHON)" || { echo "python3.11 not found (set PYTHON=...)" >&2; exit 1; }
	rm -rf $(CHECKOV_VENV)
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet 'checkov==$(CHECKOV_VERSION)'
	touch $@

lint: venv ## ruff check and ruff format --check
	$(VENV_BIN)/ruff check .
	$(VENV_BIN)/ruff format --check .

format: venv ## ruff format, then ruff check --fix
	$(VENV_BIN)/ruff format .
	$(VENV_BIN)/ruff check --fix .

typecheck: venv ## mypy --strict over the package, the local runtime, the tests and every handler
	$(VENV_BIN)/mypy $(MYPY_TARGETS)

validate: sam ## sam validate --lint
	$(SAM) validate --lint --template-file template.yaml

build: sam ## sam build (the layer is built for arm64 from PyPI wheels, no container)
	$(SAM) build --template-file template.yaml

deploy-check: venv sam checkov ## the deploy gate: sam validate and build, the SAM transform, ASL, cfn-lint, checkov, sizes, arm64 binaries
	$(VENV_BIN)/dataexport-local deploy-check --sam $(SAM) --checkov $(CHECKOV) --template template.yaml

pytest: venv ## run the tests in parallel, then those that measure the machine alone (not bench, test-slow, test-browser)
	$(VENV_BIN)/pytest --ignore=tests/bench -m "not slow and not serial and not browser" \
		--numprocesses $(PYTEST_WORKERS) --dist loadfile
	$(VENV_BIN)/pytest --ignore=tests/bench -m "serial and not slow and not browser"

test: venv sam checkov ## everything CI checks: lint, types, the deploy gate, tests
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory typecheck
	$(MAKE) --no-print-directory deploy-check
	$(MAKE) --no-print-directory bench-smoke
	$(MAKE) --no-print-directory pytest

test-slow: venv ## only the tests marked slow (10,000,000-row CSV, XLSX past a sheet; LARGE_EXPORT_ROWS)
	$(VENV_BIN)/pytest --ignore=tests/bench -m slow -s

test-browser: venv ## /v1/docs in headless Chromium (needs `apt-get install chromium`, or CHROMIUM=<binary>)
	$(VENV_BIN)/pytest tests/e2e -m browser -rs

demo: venv ## one real export end to end on the local runtime
	$(VENV_BIN)/dataexport-local demo

local: venv ## serve the API locally on PORT (default 3000)
	$(VENV_BIN)/dataexport-local serve --port $(PORT)

bench: venv ## benchmarks: ratios against PostgreSQL's COPY, printed (BENCH_ROWS, default 2,000,000)
	$(VENV_BIN)/pytest tests/bench -s

backup-image: ## build the backup task's image for arm64 Fargate and push it (BACKUP_IMAGE_URI=<ecr repo>:<tag>)
	@test -n "$(BACKUP_IMAGE_URI)" || { echo "Set BACKUP_IMAGE_URI, e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/dataexport-backup:1"; exit 2; }
	docker buildx build --platform linux/arm64 -f tasks/backup/Dockerfile -t "$(BACKUP_IMAGE_URI)" --push .

bench-smoke: venv ## the benchmarks at a small size, so CI knows they still run
	BENCH_ROWS=20000 BENCH_REPEAT=1 $(VENV_BIN)/pytest tests/bench -s

smoke: venv ## one export end to end against a running stack: make smoke API_URL=<ApiUrl output> TOKEN=<bearer token>
	@test -n "$(API_URL)" || { echo "Set API_URL (the stack's ApiUrl output) and TOKEN, e.g. make smoke API_URL=https://abc.execute-api.eu-west-1.amazonaws.com/dev TOKEN=eyJ..."; exit 2; }
	@# Not echoed, and passed in the environment: the token stays out of the terminal and ps.
	@TOKEN="$(TOKEN)" $(VENV_BIN)/dataexport-local smoke --api-url "$(API_URL)"

clean: ## remove build output and caches (keeps .venv, .tools and .local)
	rm -rf .aws-sam .mypy_cache .ruff_cache .pytest_cache build dist
	find . \( -path ./.git -o -path ./.venv -o -path ./.tools -o -path ./.local \) -prune -o \
		\( -name __pycache__ -o -name '*.egg-info' \) -type d -print0 | xargs -0 -r rm -rf

distclean: clean ## also remove .venv, .tools and the local runtime's data (.local)
	rm -rf $(VENV) .tools .local
