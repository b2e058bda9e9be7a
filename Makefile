# The two commands of the README:
#   make dev    - install into .venv and start `callout dev` (local nats-server + service)
#   make check  - install into .venv and run every check: format, lint, types, policies,
#                 deploy files (kustomize + kubernetes-validate, yamllint, hadolint), tests
# CI runs `make check` (see .ci/run).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev check install lint test schema

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,lint]'
	touch $(STAMP)

install: $(STAMP)

dev: $(STAMP)
	$(BIN)/callout dev $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff format --check callout tests deploy
	$(BIN)/ruff check callout tests deploy
	$(BIN)/mypy

test: $(STAMP)
	$(BIN)/pytest

check: lint $(STAMP)
	$(BIN)/callout policy check --strict policies
	$(BIN)/callout policy test policies policies/tests
	bash deploy/check.sh
	$(BIN)/pytest

schema: $(STAMP)
	$(BIN)/callout policy schema --output policies/schema.json

# make fuzz - a long coverage-guided atheris run through the worker (tests/fuzz/README.md).
# atheris lives in its own venv beside .venv (it is no test dependency and needs a wheel for
# this Python). The corpus keeps growing across runs; the seeds stay valid (fixed keys and clock).
.PHONY: fuzz
FUZZ_VENV ?= .venv-fuzz
FUZZ_CORPUS ?= .fuzz-corpus
FUZZ_RUNS ?= 1000000
FUZZ_CRASHES ?= .fuzz-crashes/
FUZZ_STAMP := $(FUZZ_VENV)/.installed

$(FUZZ_STAMP): pyproject.toml
	$(PYTHON) -m venv $(FUZZ_VENV)
	$(FUZZ_VENV)/bin/pip install --quiet --disable-pip-version-check atheris coverage -e '.[test]'
	touch $(FUZZ_STAMP)

fuzz: $(FUZZ_STAMP)
	$(FUZZ_VENV)/bin/python tests/fuzz/atheris_request_path.py seed $(FUZZ_CORPUS)
	mkdir -p $(FUZZ_CRASHES)
	$(FUZZ_VENV)/bin/python tests/fuzz/atheris_request_path.py $(FUZZ_CORPUS) \
		-atheris_runs=$(FUZZ_RUNS) -print_final_stats=1 \
		-artifact_prefix=$(FUZZ_CRASHES) $(FUZZ_ARGS)
