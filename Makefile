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

.PHONY: dev check install lint test schema image image-test

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

image: $(STAMP)
	PYTHON=$(BIN)/python bash deploy/image/build.sh

# A separate pytest run: the main one never collects tests/image (see its conftest.py).
image-test: image
	CALLOUT_IMAGE="$$(cat dist/image/image.txt)" $(BIN)/pytest -p no:cacheprovider tests/image
