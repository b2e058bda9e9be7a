"""A policy bundle: a whole policy directory as one versioned value (JetStream KV).

The bundle holds each file's base name and text, the digest of the tree (the same
`policy_digest` a replica reports for the policy it runs, so a bundle and a directory with the
same files digest the same), who pushed it and when. It is encoded as one JSON object of at
most `MAX_BUNDLE_BYTES` (a KV value is one NATS message: it must fit the server's
``max_payload``, 1 MiB by default). Decoding checks everything again: the format, every name,
the limits, and that the digest matches the files — a value that fails is refused whole.

Pure: no clock (``pushed_at`` is given), no files, no network.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from callout.errors import PolicyError, PolicyIssue
from callout.policy.texts import policy_digest

FORMAT = 1
MAX_BUNDLE_BYTES = 1_000_000  # encoded; below nats-server's default max_payload (1 MiB)
MAX_FILES = 256
MAX_NAME = 128
MAX_PUSHED_BY = 200
# A base name the loader would read: no directory part, no dot-name, a YAML suffix.
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\.ya?ml")
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_SOURCE = "bundle"


@dataclass(frozen=True, slots=True)
class PolicyBundle:
    """One pushed policy tree. ``files`` maps base names to texts, sorted by name (the order
    the loader merges a directory in)."""

    files: Mapping[str, str]
    digest: str
    pushed_by: str
    pushed_at: datetime

    @property
    def size(self) -> int:
        """Bytes of policy text (the encoded bundle is a little larger)."""
        return sum(len(text.encode("utf-8")) for text in self.files.values())


def make_bundle(
    files: Mapping[str, str | bytes], *, pushed_by: str, pushed_at: datetime
) -> PolicyBundle:
    """The bundle of ``files`` (name or path → content; only base names are kept).
    `PolicyError` listing every problem: a bad name, a text that is not UTF-8, too many
    files, a ``pushed_by`` that is not short printable ASCII."""
    issues: list[PolicyIssue] = []
    texts: dict[str, str] = {}
    for path, content in files.items():
        name = path.replace("\\", "/").rsplit("/", 1)[-1]
        _check_name(name, issues)
        if name in texts:
            issues.append(PolicyIssue(path, None, "", f"a second file named {name!r}"))
        try:
            texts[name] = content.decode("utf-8") if isinstance(content, bytes) else content
        except UnicodeDecodeError as exc:
            issues.append(PolicyIssue(path, None, "", f"not UTF-8 (byte {exc.start})"))
    _check_shape(texts, pushed_by, issues)
    if issues:
        raise PolicyError(issues)
    ordered = dict(sorted(texts.items()))
    return PolicyBundle(
        files=MappingProxyType(ordered),
        digest=policy_digest(ordered),
        pushed_by=pushed_by,
        pushed_at=pushed_at.astimezone(UTC),
    )


def encode_bundle(bundle: PolicyBundle) -> bytes:
    """The bundle as the KV value; `PolicyError` if it is larger than `MAX_BUNDLE_BYTES`."""
    data = json.dumps(
        {
            "format": FORMAT,
            "digest": bundle.digest,
            "pushed_by": bundle.pushed_by,
            "pushed_at": bundle.pushed_at.isoformat().replace("+00:00", "Z"),
            "files": dict(bundle.files),
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")
    if len(data) > MAX_BUNDLE_BYTES:
        raise PolicyError([_too_large(len(data))])
    return data


def decode_bundle(data: bytes) -> PolicyBundle:
    """The bundle a KV value holds; `PolicyError` for anything that is not a valid bundle
    (too large, not JSON, another format, a bad name, a digest that does not match)."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise PolicyError([_too_large(len(data))])
    try:
        value = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PolicyError([_issue(f"not a policy bundle: {exc}")]) from None
    if not isinstance(value, dict) or value.get("format") != FORMAT:
        got = value.get("format") if isinstance(value, dict) else type(value).__name__
        raise PolicyError([_issue(f"not a policy bundle of format {FORMAT} (got {got!r})")])
    files, pushed_at = value.get("files"), _timestamp(value.get("pushed_at"))
    if not isinstance(files, dict) or not all(isinstance(t, str) for t in files.values()):
        raise PolicyError([_issue("files: expected a mapping of file name to text")])
    if pushed_at is None:
        raise PolicyError([_issue("pushed_at: expected an ISO 8601 time with a zone")])
    named: list[PolicyIssue] = []
    for name in files:
        _check_name(name, named)  # a stored name is a base name: no path is stripped here
    if named:
        raise PolicyError(named)
    pushed_by = value.get("pushed_by")
    bundle = make_bundle(
        files, pushed_by=pushed_by if isinstance(pushed_by, str) else "", pushed_at=pushed_at
    )
    if list(files) != list(bundle.files):
        raise PolicyError([_issue("files: not in name order")])
    if value.get("digest") != bundle.digest:
        raise PolicyError([_issue("digest: does not match the files (a damaged value)")])
    return bundle


def _check_name(name: str, issues: list[PolicyIssue]) -> None:
    if len(name) > MAX_NAME or not _NAME.fullmatch(name):
        issues.append(
            PolicyIssue(
                name[:MAX_NAME],
                None,
                "",
                f"not a bundle file name: use letters, digits, '_', '.', '-', a .yaml or .yml "
                f"suffix, no leading dot, at most {MAX_NAME} characters",
            )
        )


def _check_shape(texts: Mapping[str, str], pushed_by: str, issues: list[PolicyIssue]) -> None:
    if not texts:
        issues.append(_issue("no *.yaml or *.yml policy files"))
    if len(texts) > MAX_FILES:
        issues.append(_issue(f"{len(texts)} files; a bundle holds at most {MAX_FILES}"))
    if not pushed_by or len(pushed_by) > MAX_PUSHED_BY or not _PRINTABLE.fullmatch(pushed_by):
        issues.append(_issue(f"pushed_by: 1 to {MAX_PUSHED_BY} printable ASCII characters"))


def _too_large(size: int) -> PolicyIssue:
    return _issue(
        f"{size} bytes encoded; a bundle is one KV value of at most {MAX_BUNDLE_BYTES} "
        "bytes: shrink the policy (e.g. users from a directory backend instead of files)"
    )


def _issue(message: str) -> PolicyIssue:
    return PolicyIssue(_SOURCE, None, "", message)


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None
