# syntax=docker/dockerfile:1
# nats-auth-callout image: one process, `python -m callout`, for the NATS-chart sidecar and the
# Deployment in deploy/. Runs as UID/GID 10001 with a read-only root filesystem; every secret
# arrives as a mounted file. deploy/README.md ("The image") explains the choices below.
#
#   docker build --build-arg VERSION=X.Y.Z -t nats-auth-callout:X.Y.Z .   # or podman/buildah
#   make image                                      # CI: Debian base made locally (deploy/image)
#
# The base is Debian bookworm and the interpreter is Debian's python3 (3.11, security updates
# from Debian until June 2028, by Debian LTS since mid-2026): every file of the image comes
# from Debian's archive or from PyPI (hash-locked). For production builds pin the base by digest:
#   --build-arg BASE_IMAGE=docker.io/library/debian:bookworm-slim@sha256:<index digest>
# CI builds the same recipe on a bookworm minbase made by mmdebstrap (deploy/image/base.sh).
# requirements*.lock are compiled for PYTHON_VERSION; the build fails if the base's python3
# is another version (tests/deploy checks the lock headers against it).
ARG BASE_IMAGE=docker.io/library/debian:bookworm-slim
ARG PYTHON_VERSION=3.11

FROM ${BASE_IMAGE} AS build
ARG PYTHON_VERSION

# PIP_CONFIG_FILE: a build whose network needs its own CA bundle for PyPI hands in a pip.conf
# and the bundle as the build secrets `pip.conf` and `pip-ca` (deploy/image/build.sh does);
# they are mounted for the two RUNs that download, and never land in a layer. Without them
# (a plain `docker build`) pip ignores the missing file and uses PyPI as usual.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    PIP_CONFIG_FILE=/run/secrets/pip.conf \
    PYTHONDONTWRITEBYTECODE=1

# Debian's python3 and what python-ldap (the LDAP backend) compiles against. Not pinned to
# Debian point versions: a stable suite only receives security and bug fixes, and exact pins
# break the build at the next `deb12u` update. Reproducibility comes from the base digest and
# the hash-locked Python requirements.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev \
    gcc libc6-dev libldap2-dev libsasl2-dev \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -c "import sys; v = '%d.%d' % sys.version_info[:2]; \
assert v == '${PYTHON_VERSION}', f'base has Python {v}, the locks are for ${PYTHON_VERSION}'"

WORKDIR /src

# The build backend, pinned by hash in its own venv: it builds python-ldap and our own wheel
# and never reaches the runtime venv.
COPY requirements-build.lock ./
RUN --mount=type=secret,id=pip.conf --mount=type=secret,id=pip-ca \
    python3 -m venv /opt/build \
 && /opt/build/bin/pip install --require-hashes --only-binary=:all: -r requirements-build.lock

# Runtime dependencies (with the ldap, oidc and cert extras): exact versions, every file checked
# against its sha256. Wheels are used as published; python-ldap's sdist (hash-checked too) is
# built with the pinned setuptools above, without build isolation, so nothing unpinned is
# downloaded. Then everything is installed offline from those wheels, by the build venv's pip
# into a runtime venv made without pip: nothing installs anything at run time.
COPY requirements.lock ./
RUN --mount=type=secret,id=pip.conf --mount=type=secret,id=pip-ca \
    /opt/build/bin/pip wheel --require-hashes --no-deps --no-build-isolation \
      --only-binary=:all: --no-binary=python-ldap --wheel-dir /tmp/wheels -r requirements.lock \
 && python3 -m venv --without-pip /opt/venv \
 && /opt/build/bin/pip --python /opt/venv/bin/python install --no-deps --no-index \
      /tmp/wheels/*.whl

# Our own package, built the same way, installed without deps; `pip check` proves the set is
# complete.
COPY pyproject.toml README.md ./
COPY callout/ callout/
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/own . \
 && /opt/build/bin/pip --python /opt/venv/bin/python install --no-deps --no-index /tmp/own/*.whl \
 && /opt/build/bin/pip --python /opt/venv/bin/python check \
 && /opt/venv/bin/python -m callout --version

# Precompile every module. `unchecked-hash` pycs are used without comparing source mtimes, so
# nothing is ever (re)written at run time: the root filesystem can be read-only.
RUN /opt/venv/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/venv/lib


FROM ${BASE_IMAGE} AS runtime

# The interpreter and the LDAP backend's shared libraries (the runtime half of the build
# dependencies above); ca-certificates for the OIDC backend's HTTPS. Not pinned: see above.
# Debian's python3 package compiles its standard library at install time, so a read-only
# container never recompiles it.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 libldap-2.5-0 libsasl2-2 \
    ca-certificates \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*

# A numeric, shell-less system user: `runAsNonRoot` can only verify a numeric USER.
RUN groupadd --system --gid 10001 callout \
 && useradd --system --no-log-init --uid 10001 --gid 10001 \
      --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin callout

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONFAULTHANDLER=1

USER 10001:10001

# /livez, /readyz, /metrics (settings section `http`).
EXPOSE 8080

# Set by `make image` / the release workflow; shown by `podman inspect` and registries.
# Last, so that a new revision reuses every layer above from the build cache.
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.title="nats-auth-callout" \
      org.opencontainers.image.description="Authorization callout service for nats-server" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"

# No HEALTHCHECK: Kubernetes ignores it; the probes in deploy/ do that job.
ENTRYPOINT ["python", "-m", "callout"]
CMD ["serve", "--config", "/etc/callout/config/callout.yaml"]
