#!/usr/bin/env bash
# `make image`: build the Dockerfile with buildah (no Docker daemon) on the Debian base of
# deploy/image/base.sh, then write the image's SBOM beside it.
#
#   bash deploy/image/build.sh            # -> localhost/nats-auth-callout:<version>
#
# Outputs, in dist/image/ (git-ignored):
#   nats-auth-callout-<version>.cdx.json  CycloneDX SBOM of the image's Python environment
#   image.txt                             the image reference that was built
#   build-times.txt                       seconds per step and the image size (for README)
#
# pip inside the build reaches PyPI through this machine's TLS set-up: the CA bundle pip uses
# here (`pip config get global.cert`, else the system bundle) is handed in as a build secret,
# with a two-line pip.conf pointing at it. Secrets are mounted for one RUN only and never land
# in a layer; nothing is written into the repository. Needs root, buildah, podman, mmdebstrap.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$ROOT/deploy/image/containers.conf}"

PYTHON="${PYTHON:-python3}"
OUT="$ROOT/dist/image"

say() { printf 'deploy/image/build.sh: %s\n' "$*" >&2; }

version="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' callout/__init__.py)"
[[ -n "$version" ]] || { say "no __version__ in callout/__init__.py"; exit 1; }
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git status --porcelain 2>/dev/null)" ]]; then
  revision="$revision-dirty"
fi
# Where the source lives: the clone's origin, else this checkout.
source="${SOURCE:-$(git remote get-url origin 2>/dev/null || echo "file://$ROOT")}"
image="${IMAGE:-localhost/nats-auth-callout:$version}"
mkdir -p "$OUT"
: >"$OUT/build-times.txt"
times() { printf '%s\n' "$*" >>"$OUT/build-times.txt"; }

started=$SECONDS
base="$(bash deploy/image/base.sh)"
times "base_seconds=$((SECONDS - started)) base=$base"

secrets="$(mktemp -d)"
trap 'rm -rf "$secrets"' EXIT
ca="$("$PYTHON" -m pip config get global.cert 2>/dev/null || true)"
ca="${PIP_CERT:-${ca:-/etc/ssl/certs/ca-certificates.crt}}"
printf '[global]\ncert = /run/secrets/pip-ca\n' >"$secrets/pip.conf"

started=$SECONDS
say "building $image on $base"
buildah bud --quiet --layers --isolation chroot --network host --runtime runc \
  --build-arg "BASE_IMAGE=$base" \
  --build-arg "VERSION=$version" \
  --build-arg "REVISION=$revision" \
  --build-arg "SOURCE=$source" \
  --secret "id=pip.conf,src=$secrets/pip.conf" \
  --secret "id=pip-ca,src=$ca" \
  --tag "$image" . >/dev/null
times "build_seconds=$((SECONDS - started))"
size="$(podman image inspect --format '{{.Size}}' "$image")"
times "size_bytes=$size"

started=$SECONDS
sbom="$OUT/nats-auth-callout-$version.cdx.json"
PYTHON="$PYTHON" bash deploy/image/sbom.sh "$image" "$sbom"
times "sbom_seconds=$((SECONDS - started))"
printf '%s\n' "$image" >"$OUT/image.txt"
say "built $image ($((size / 1024 / 1024)) MiB), SBOM $sbom"
