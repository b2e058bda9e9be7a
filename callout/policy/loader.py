"""Reading a policy directory: the file I/O over `callout.policy.texts.check_texts`.

Every ``*.yaml``/``*.yml`` directly in the directory is read (symlinks followed, dot-names
skipped: Kubernetes ConfigMap mounts hold a ``..data`` link); what the files say is checked by
the pure `check_texts`. Any error fails the whole load with a `PolicyError` listing each issue
as file, line, dotted path, message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from callout.errors import PolicyError, PolicyIssue
from callout.policy.snapshot import PolicySnapshot
from callout.policy.texts import CheckResult, check_texts

_SUFFIXES = (".yaml", ".yml")


def load_policy(directory: Path) -> PolicySnapshot:
    """The snapshot of ``directory``; `PolicyError` listing every error if it has any."""
    result = check_policy(directory)
    if result.snapshot is None:
        raise PolicyError(result.errors)
    return result.snapshot


def check_policy(directory: Path) -> CheckResult:
    """Load ``directory`` and lint it: errors, warnings, and the snapshot if error-free."""
    read = read_policy(directory)
    return check_texts(
        read.texts, source=str(directory), unreadable=read.unreadable, missing=read.missing
    )


@dataclass(frozen=True, slots=True)
class PolicyFiles:
    """What a policy directory holds: each file's content by path (merge order), the files
    that could not be read and why, and problems finding the files at all."""

    texts: dict[str, bytes]
    unreadable: dict[str, str]
    missing: list[PolicyIssue]


def read_policy(directory: Path) -> PolicyFiles:
    """Read every policy file of ``directory`` (the files `check_policy` checks)."""
    read = PolicyFiles({}, {}, [])
    for path in _policy_files(directory, read.missing):
        try:
            read.texts[str(path)] = path.read_bytes()
        except OSError as exc:
            read.unreadable[str(path)] = f"cannot read: {exc.strerror}"
    return read


def _policy_files(directory: Path, errors: list[PolicyIssue]) -> list[Path]:
    if not directory.is_dir():
        errors.append(PolicyIssue(str(directory), None, "", "not a directory"))
        return []
    files = sorted(
        path
        for path in directory.iterdir()
        if path.suffix in _SUFFIXES and not path.name.startswith(".") and path.is_file()
    )
    if not files:
        errors.append(PolicyIssue(str(directory), None, "", "no *.yaml or *.yml policy files"))
    return files
