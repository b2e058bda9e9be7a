# syntax=docker/dockerfile:1
# nats-auth-callout image: one process, `python -m callout`, for the NATS-chart sidecar and the
# Deployment in deploy/. Build: docker build -t nats-auth-callout:0.1.0 .
# Runs as UID/GID 10001 with a read-only root filesystem; every secret arrives as a mounted file.

# Pinned by tag; for production builds pin the digest too:
#   --build-arg PYTHON_IMAGE=python:3.12.12-slim-bookworm@sha256:<index digest>
# The Python minor version must match the `--python-version` that requirements.lock was
# compiled for (tests/deploy checks this).
ARG PYTHON_IMAGE=python:3.12.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1 \
    PYTHONDONTWRITEBYTECODE=1

# The LDAP backend's python-ldap has no wheel: it is built here against libldap (pinned for
# bookworm). The runtime stage only gets the shared libraries.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc=4:12.2.0-3 \
    libldap2-dev=2.5.13+dfsg-5 libsasl2-dev=2.1.28+dfsg-10+deb12u1 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# The build backend, pinned by hash in its own venv: it builds python-ldap and our own wheel
# and never reaches the runtime venv.
COPY requirements-build.lock ./
RUN python -m venv /opt/build \
 && /opt/build/bin/pip install --require-hashes --only-binary=:all: -r requirements-build.lock

# Runtime dependencies (with the ldap and oidc extras): exact versions, every file checked
# against its sha256. Wheels are used as published; python-ldap's sdist (hash-checked too) is
# built with the pinned setuptools above, without build isolation, so nothing unpinned is
# downloaded. Then everything is installed offline from those wheels.
COPY requirements.lock ./
RUN /opt/build/bin/pip wheel --require-hashes --no-deps --no-build-isolation \
      --only-binary=:all: --no-binary=python-ldap --wheel-dir /tmp/wheels -r requirements.lock \
 && python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-deps --no-index /tmp/wheels/*.whl

# Our own package, built the same way, installed without deps; `pip check` proves the set is
# complete.
COPY pyproject.toml README.md ./
COPY callout/ callout/
RUN /opt/build/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /tmp/own . \
 && /opt/venv/bin/pip install --no-deps --no-index /tmp/own/*.whl \
 && /opt/venv/bin/pip check \
 && /opt/venv/bin/python -m callout --version

# Precompile every module. `unchecked-hash` pycs are used without comparing source mtimes, so
# nothing is ever (re)written at run time: the root filesystem can be read-only.
RUN /opt/venv/bin/python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/venv/lib


FROM ${PYTHON_IMAGE} AS runtime

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="nats-auth-callout" \
      org.opencontainers.image.description="Authorization callout service for nats-server" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

# The LDAP backend's shared libraries (the runtime half of the build dependencies above).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libldap-2.5-0=2.5.13+dfsg-5 \
    libsasl2-2=2.1.28+dfsg-10+deb12u1 \
 && rm -rf /var/lib/apt/lists/*

# A numeric, shell-less system user: `runAsNonRoot` can only verify a numeric USER.
RUN groupadd --system --gid 10001 callout \
 && useradd --system --no-log-init --uid 10001 --gid 10001 \
      --home-dir /nonexistent --no-create-home --shell /usr/sbin/nologin callout

# The base image ships its standard library without .pyc files: compile it here, or a read-only
# container recompiles it in memory on every start (the service's imports: 0.24 s from .pyc,
# 0.85 s from source, measured).
RUN python -m compileall -q -j 0 "$(python -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')"

COPY --from=build /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONFAULTHANDLER=1

USER 10001:10001

# /livez, /readyz, /metrics (settings section `http`).
EXPOSE 8080

# No HEALTHCHECK: Kubernetes ignores it; the probes in deploy/ do that job.
ENTRYPOINT ["python", "-m", "callout"]
CMD ["serve", "--config", "/etc/callout/config/callout.yaml"]
