#!/usr/bin/env bash
# CycloneDX SBOM (JSON) of an image's Python environment, /opt/venv, read by the image's own
# interpreter: the pinned cyclonedx-bom (pure Python, resolved for the image's Python version)
# is installed on the host into .venv-tools/sbom and mounted read-only; the container runs as
# UID 10001, read-only, without network.
#
#   bash deploy/image/sbom.sh IMAGE OUTPUT.cdx.json
#
# ENGINE=podman (default, with deploy/image/containers.conf) or docker (the release workflow);
# PLATFORM=linux/arm64 picks one platform of a multi-arch image. Used by build.sh and by
# .github/workflows/release.yml.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ENGINE="${ENGINE:-podman}"
PYTHON="${PYTHON:-python3}"
PIN="cyclonedx-bom==7.5.0"
TOOLS="$ROOT/.venv-tools/sbom"

if (($# != 2)); then
  echo "usage: deploy/image/sbom.sh IMAGE OUTPUT" >&2
  exit 2
fi
image="$1"
output="$2"
if [[ "$ENGINE" == podman ]]; then
  export CONTAINERS_CONF="${CONTAINERS_CONF:-$ROOT/deploy/image/containers.conf}"
fi

python_version="$(sed -n 's/^ARG PYTHON_VERSION=//p' "$ROOT/Dockerfile")"
wanted="$PIN python$python_version"
if [[ ! -f "$TOOLS/.pin" || "$(cat "$TOOLS/.pin")" != "$wanted" ]]; then
  rm -rf "$TOOLS"
  "$PYTHON" -m pip install --quiet --disable-pip-version-check --only-binary=:all: \
    --python-version "$python_version" --target "$TOOLS" "$PIN"
  printf '%s' "$wanted" >"$TOOLS/.pin"
fi

platform=()
if [[ -n "${PLATFORM:-}" ]]; then
  platform=(--platform "$PLATFORM")
fi
"$ENGINE" run --rm "${platform[@]}" --read-only --network none --user 10001:10001 \
  --volume "$TOOLS:/sbom-tools:ro" --env PYTHONPATH=/sbom-tools \
  --volume "$ROOT/pyproject.toml:/sbom/pyproject.toml:ro" \
  --entrypoint /usr/bin/python3 "$image" \
  -m cyclonedx_py environment --output-reproducible --of JSON \
  --pyproject /sbom/pyproject.toml /opt/venv >"$output.part"
mv "$output.part" "$output"
