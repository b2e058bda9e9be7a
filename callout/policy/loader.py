"""Reading a policy directory: the file I/O over `callout.policy.texts.check_texts`.

Every ``*.yaml``/``*.yml`` directly in the directory is read (symlinks followed, dot-names
skipped: Kubernetes ConfigMap mounts hold a ``..data`` link); what the files say is checked by
the pure `check_texts`. Any error fails the whole load with a `PolicyError` listing each issue
as file, line, dotted path, message.
"""

from __future__ import annotations

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
    missing: list[PolicyIssue] = []
    texts: dict[str, bytes] = {}
    unreadable: dict[str, str] = {}
    for path in _policy_files(directory, missing):
        try:
            texts[str(path)] = path.read_bytes()
        except OSError as exc:
            unreadable[str(path)] = f"cannot read: {exc.strerror}"
    return check_texts(texts, source=str(directory), unreadable=unreadable, missing=missing)


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
