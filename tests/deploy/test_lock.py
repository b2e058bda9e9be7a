"""The image's hash-locked requirements agree with pyproject.toml and with the Dockerfile."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.deploy.manifests import ROOT

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def _locked(path: Path) -> dict[str, tuple[Version, int]]:
    """name -> (pinned version, number of sha256 hashes) for every entry of a pip lock file."""
    entries: dict[str, tuple[Version, int]] = {}
    current: str | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if match := _PIN.match(line):
            current = canonicalize_name(match.group(1))
            entries[current] = (Version(match.group(2)), 0)
        elif current and line.strip().startswith("--hash=sha256:"):
            version, hashes = entries[current]
            entries[current] = (version, hashes + 1)
        elif not line.startswith((" ", "\t")):
            current = None
    return entries


def _pyproject() -> dict[str, object]:
    data: dict[str, object] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return data


def _requirements(key: str, table: str) -> list[Requirement]:
    section = _pyproject()[table]
    assert isinstance(section, dict)
    return [Requirement(text) for text in section[key]]


def test_lock_pins_every_runtime_dependency_within_its_range() -> None:
    """The image runs the dependencies pyproject.toml declares, at versions it accepts."""
    locked = _locked(ROOT / "requirements.lock")
    for requirement in _requirements("dependencies", "project"):
        name = canonicalize_name(requirement.name)
        assert name in locked, f"{requirement.name} is not in requirements.lock: regenerate it"
        version, _ = locked[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements.lock pins {name}=={version}, outside {requirement.specifier}"
        )


# How uv's lock names a package that pyproject.toml asks for, alone or among other reasons.
_VIA_PYPROJECT = {
    "# via nats-auth-callout (pyproject.toml)",
    "#   nats-auth-callout (pyproject.toml)",
}


def _locked_as_direct(path: Path) -> set[str]:
    """Names the lock file pins because pyproject.toml asks for them (its `# via` lines)."""
    direct: set[str] = set()
    current: str | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if match := _PIN.match(line):
            current = canonicalize_name(match.group(1))
        elif current and line.strip() in _VIA_PYPROJECT:
            direct.add(current)
    return direct


def test_lock_pins_nothing_pyproject_no_longer_asks_for() -> None:
    """A dependency dropped from pyproject.toml leaves the image when the lock is regenerated."""
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    declared = {canonicalize_name(r.name) for r in _requirements("dependencies", "project")}
    for extra in ("ldap", "oidc", "cert"):  # the extras the image installs (see the lock's header)
        declared |= {
            canonicalize_name(Requirement(text).name)
            for text in project["optional-dependencies"][extra]
        }
    stale = sorted(_locked_as_direct(ROOT / "requirements.lock") - declared)
    assert not stale, f"requirements.lock still pins {stale}: regenerate it (deploy/README.md)"


def test_every_locked_file_is_hash_checked() -> None:
    """`pip install --require-hashes` refuses any entry without a hash; so do we, earlier."""
    for lock in ("requirements.lock", "requirements-build.lock"):
        for name, (version, hashes) in _locked(ROOT / lock).items():
            assert hashes >= 1, f"{lock}: {name}=={version} has no --hash"


def test_build_lock_satisfies_the_build_system() -> None:
    """The wheel is built with the pinned setuptools, which must satisfy [build-system]."""
    locked = _locked(ROOT / "requirements-build.lock")
    for requirement in _requirements("requires", "build-system"):
        version, _ = locked[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version)


def test_lock_targets_the_python_of_the_image() -> None:
    """Wheels and markers were resolved for the interpreter the Dockerfile's base image has.

    The build itself fails when the base's python3 is not PYTHON_VERSION.
    """
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    version = re.search(r"^ARG PYTHON_VERSION=(\d+\.\d+)$", dockerfile, re.MULTILINE)
    assert version, "Dockerfile: ARG PYTHON_VERSION=X.Y not found"
    for lock in ("requirements.lock", "requirements-build.lock"):
        header = (ROOT / lock).read_text(encoding="utf-8").split("\n", 3)[1]
        assert f"--python-version {version.group(1)} " in header, f"{lock}: {header}"


def test_docker_context_admits_every_copied_file() -> None:
    """.dockerignore is an allow-list; every COPY source of the Dockerfile must be on it."""
    allowed = {
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    }
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    for match in re.finditer(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.MULTILINE):
        for source in match.group(1).split():
            assert source.rstrip("/") in allowed, f"COPY {source}: excluded by .dockerignore"
            assert (ROOT / source).exists(), f"COPY {source}: no such file"
