# Waybill — the two commands a newcomer needs are `make run` and `make test`.
# Every target creates .venv and installs the project into it on first use;
# a second call with nothing changed installs nothing.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.waybill-installed

# Every package of the project, installed editable into one environment.
PACKAGE_DIRS := contracts shared deploy/sandboxes deploy/demo $(patsubst %/pyproject.toml,%,$(wildcard services/*/pyproject.toml))
PACKAGE_FILES := $(addsuffix /pyproject.toml,$(PACKAGE_DIRS)) requirements-dev.txt

PYTEST_ARGS ?=
comma := ,

.DEFAULT_GOAL := help
.PHONY: help run demo test lint bench install clean check-new-service chaos long lock charts

# What goes into a service image (deploy/docker/Dockerfile): Waybill's packages,
# built from the context, and the third-party packages locked in IMAGE_LOCK.
SERVICE_DIRS   := $(patsubst %/pyproject.toml,%,$(wildcard services/*/pyproject.toml))
IMAGE_DIRS     := contracts shared $(SERVICE_DIRS)
IMAGE_PACKAGES := waybill-contracts waybill-runtime $(SERVICE_DIRS:services/%=waybill-%)
IMAGE_LOCK     := deploy/docker/requirements.lock
# The build backend alone, installed first: nkeys ships no wheel and is built
# without build isolation, so its backend must come from the lock too.
IMAGE_BUILD_LOCK := deploy/docker/requirements-build.lock

help: ## Show the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-8s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): $(PACKAGE_FILES)
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Waybill needs Python 3.11 or newer; run make with PYTHON=/path/to/python3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt $(foreach d,$(PACKAGE_DIRS),-e '$(d)$(if $(filter shared,$(d)),[local$(comma)otel])')
	@touch $@

install: $(STAMP) ## Create .venv and install Waybill into it

run: $(STAMP) ## Start Waybill locally: embedded NATS, services, sandboxes (Ctrl-C stops)
	$(BIN)/waybill up

demo: $(STAMP) ## A finite demo run that checks every order reached its end state
	$(BIN)/waybill up --demo

test: $(STAMP) ## Run the test suite (starts its own nats-server)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## ruff, mypy (strict on contracts/ and shared/), the contract compatibility check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/waybill contracts check

charts: $(STAMP) ## Regenerate the charts' values from the declarations; vendor waybill-lib into each (offline)
	$(BIN)/waybill helm values
	$(BIN)/python -m tests.deploy.charts

check-new-service: ## Scaffold a service in a fresh clone; make lint, make test and waybill up there
	bash tests/acceptance/new_service_in_a_copy.sh

chaos: $(STAMP) ## Chaos tests: kill -9 replicas, NATS down, mid-burst on the local stack; nothing lost or repeated
	$(BIN)/python -m pytest -m chaos $(PYTEST_ARGS)

long: $(STAMP) ## Long tests apart from make test: stacks run twice or doubled, NATS broken mid-flow
	$(BIN)/python -m pytest -m long $(PYTEST_ARGS)

lock: $(STAMP) ## Regenerate the images' lock files (deploy/docker/*.lock); needs PyPI
	printf '%s\n' $(patsubst ./shared,./shared[otel],$(IMAGE_DIRS:%=./%)) | $(BIN)/uv pip compile - deploy/docker/requirements.in \
		--universal --python-version 3.11 --generate-hashes --quiet \
		--custom-compile-command 'make lock' \
		$(IMAGE_PACKAGES:%=--no-emit-package %) --output-file $(IMAGE_LOCK)
	echo setuptools | $(BIN)/uv pip compile - --constraint $(IMAGE_LOCK) \
		--universal --python-version 3.11 --generate-hashes --quiet \
		--custom-compile-command 'make lock' --output-file $(IMAGE_BUILD_LOCK)

bench: $(STAMP) ## Benchmarks: the bus beside baselines as ratios; bursts of orders through the local stack, CPU per order per process
	$(BIN)/python -m tests.bench

clean: ## Remove .venv and local state
	rm -rf $(VENV) .waybill .pytest_cache .mypy_cache .ruff_cache .hypothesis
