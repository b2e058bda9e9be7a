#!/usr/bin/env bash
# The base image CI builds on: Debian bookworm, minbase, made by mmdebstrap from Debian's own
# archive (the machines that run CI cannot reach Docker Hub). It plays the part of
# `debian:bookworm-slim`, the base production builds use (deploy/README.md, "The image").
#
#   bash deploy/image/base.sh            # prints the image reference, e.g. localhost/callout-base:bookworm-1a2b3c4d5e6f
#
# The tarball is cached in ${XDG_CACHE_HOME:-~/.cache}/nats-auth-callout, keyed by a hash of
# this recipe (this file): an unchanged recipe reuses it, and podman's own store keeps the
# imported image. A cold run takes ~80 s. Needs root, mmdebstrap and podman.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$HERE/containers.conf}"

SUITE=bookworm
MIRROR=http://deb.debian.org/debian
SECURITY=http://deb.debian.org/debian-security
# What debian:bookworm-slim leaves out (dpkg excludes: later package updates keep them out
# too), except the copyright files.
EXCLUDES=('/usr/share/doc/*' '/usr/share/man/*' '/usr/share/info/*' '/usr/share/locale/*'
  '/usr/share/groff/*' '/usr/share/lintian/*' '/usr/share/linda/*')

say() { printf 'deploy/image/base.sh: %s\n' "$*" >&2; }

key="$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-12)"
ref="localhost/callout-base:$SUITE-$key"
if podman image exists "$ref"; then
  echo "$ref"
  exit 0
fi

cache="${XDG_CACHE_HOME:-$HOME/.cache}/nats-auth-callout"
tarball="$cache/base-$SUITE-$key.tar"
if [[ ! -s "$tarball" ]]; then
  mkdir -p "$cache"
  dpkgopts=()
  for path in "${EXCLUDES[@]}"; do
    dpkgopts+=(--dpkgopt="path-exclude=$path")
  done
  # The licences stay.
  dpkgopts+=(--dpkgopt="path-include=/usr/share/doc/*/copyright")
  say "building $SUITE minbase from $MIRROR into $tarball (~80 s)"
  started=$SECONDS
  mmdebstrap --quiet --variant=minbase --mode=root --format=tar \
    --aptopt='Acquire::Languages "none"' "${dpkgopts[@]}" \
    "$SUITE" "$tarball.part" \
    "deb $MIRROR $SUITE main" \
    "deb $MIRROR $SUITE-updates main" \
    "deb $SECURITY $SUITE-security main"
  mv "$tarball.part" "$tarball"
  say "built in $((SECONDS - started)) s"
  # Only the current recipe's tarball is kept.
  find "$cache" -maxdepth 1 -name "base-$SUITE-*.tar" ! -name "base-$SUITE-$key.tar" -delete
fi
podman import --quiet \
  --change 'CMD ["/bin/bash"]' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  "$tarball" "$ref" >/dev/null
echo "$ref"
