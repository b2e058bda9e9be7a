"""The pure policy compiler: file texts in, a `PolicySnapshot` (or every problem) out.

`check_texts` takes the policy files as a mapping of file name to content, in the order they
are merged; it parses them with line marks, validates, merges, compiles and lints, touching no
file. Every issue names the file (the mapping's key), line, dotted path and what is wrong.
`callout.policy.loader` is the file I/O around it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from types import MappingProxyType
from typing import Any

from pydantic import ValidationError

from callout.credentials.tokens import token_hash_scheme
from callout.errors import PolicyError, PolicyIssue
from callout.policy.compiler import Compiled, Entry, Merged, compile_policy
from callout.policy.lint import lint
from callout.policy.models import PolicyFile
from callout.policy.snapshot import PolicySnapshot
from callout.policy.yamldoc import Document, parse

_FRIENDLY = {
    "extra_forbidden": "unknown key",
    "missing": "required key is missing",
}


@dataclass(slots=True)
class CheckResult:
    """What a check found. ``snapshot`` is set when there are no errors; ``merged``
    keeps every entry with its file and line for further checks."""

    errors: list[PolicyIssue] = field(default_factory=list)
    warnings: list[PolicyIssue] = field(default_factory=list)
    snapshot: PolicySnapshot | None = None
    merged: Merged | None = None  # the entries as written, with their files (policy tools)
    notes: list[PolicyIssue] = field(default_factory=list)  # facts, never failing a check
    acknowledged: list[PolicyIssue] = field(default_factory=list)  # warnings a team accepted

    @property
    def ok(self) -> bool:
        return not self.errors


def compile_texts(texts: Mapping[str, str | bytes], *, source: str = "") -> PolicySnapshot:
    """The snapshot of ``texts`` (file name → content); `PolicyError` listing every error."""
    result = check_texts(texts, source=source)
    if result.snapshot is None:
        raise PolicyError(result.errors)
    return result.snapshot


def check_texts(
    texts: Mapping[str, str | bytes],
    *,
    source: str = "",
    unreadable: Mapping[str, str] = MappingProxyType({}),
    missing: Sequence[PolicyIssue] = (),
) -> CheckResult:
    """Check and lint ``texts`` (file name → content, merged in this order): errors,
    warnings, and the snapshot if error-free. ``unreadable`` maps files that could not be
    read to why; ``missing`` are problems finding the files. The snapshot's digest covers
    each file's base name and content, so the same files elsewhere digest the same."""
    result = CheckResult(errors=list(missing))
    syntax = [PolicyIssue(name, None, "", why) for name, why in unreadable.items()]
    documents: list[tuple[Document, PolicyFile]] = []
    merged = Merged(unparsed=bool(unreadable))
    for name, text in texts.items():
        raw = text.encode("utf-8") if isinstance(text, str) else text
        parsed = _validated(name, raw, syntax, result.errors, merged)
        if parsed is not None:
            documents.append(parsed)
    _merge(documents, merged, result.errors)
    compiled, issues = compile_policy(merged)
    result.errors.extend(issues)
    result.errors.sort(key=_position)
    result.errors[:0] = sorted(syntax, key=_position)
    if result.errors:
        return result
    findings = lint(merged, compiled)
    result.warnings.extend(sorted(findings.warnings, key=_position))
    result.notes.extend(sorted(findings.notes, key=_position))
    result.acknowledged.extend(sorted(findings.acknowledged, key=_position))
    result.snapshot = _snapshot(policy_digest(texts), source, compiled)
    result.merged = merged
    return result


def policy_digest(texts: Mapping[str, str | bytes]) -> str:
    """The sha256 of a policy tree: each file's base name, length and content, in order."""
    digest = hashlib.sha256()
    for name, text in texts.items():
        raw = text.encode("utf-8") if isinstance(text, str) else text
        digest.update(f"{PurePath(name).name}\0{len(raw)}\0".encode())
        digest.update(raw)
    return digest.hexdigest()


def _position(issue: PolicyIssue) -> tuple[str, int]:
    return issue.file, issue.line or 0


def _validated(
    file: str,
    raw: bytes,
    syntax: list[PolicyIssue],
    errors: list[PolicyIssue],
    merged: Merged,
) -> tuple[Document, PolicyFile] | None:
    """The file's document and model. Entries with schema errors are left out (and their role
    names and defaults marked broken) so that the rest of the file is still checked and merged:
    every independent problem once, no cascade."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        syntax.append(PolicyIssue(file, None, "", f"not UTF-8 (byte {exc.start})"))
        merged.unparsed = True
        return None
    doc, issues = parse(file, text)
    syntax.extend(issues)
    if doc is None:
        merged.unparsed = True
        return None
    if not isinstance(doc.data, dict):
        kind = "a list" if isinstance(doc.data, list) else "a single value"
        errors.append(doc.issue((), f"a policy file must be a mapping, not {kind}"))
        merged.unparsed = True
        return None
    # A value the parser could not read is None in the data: its schema error is no news.
    reported = {issue.path for issue in issues if issue.message.startswith("invalid value")}
    data: dict[str, Any] = doc.data
    for _ in range(_MAX_PRUNES):
        try:
            return doc, PolicyFile.model_validate(data)
        except ValidationError as exc:
            found = exc.errors(include_input=False)
            errors.extend(
                issue
                for issue in (_issue(doc, error) for error in found)
                if not any(_within(issue.path, path) for path in reported)
            )
            pruned = _pruned(data, found, merged)
            if pruned is None:
                return None
            data = pruned
            reported |= {_dotted_loc(error["loc"]) for error in found}
    return None


_MAX_PRUNES = 3  # prune-and-revalidate rounds per file; each removes every failing entry
_SECTIONS = ("roles", "users", "groups", "tokens")


def _dotted_loc(loc: Any) -> str:
    return ".".join(str(part) for part in loc if part != "[key]")


def _within(path: str, parent: str) -> bool:
    return bool(parent) and (path == parent or path.startswith(parent + "."))


def _pruned(data: dict[str, Any], found: list[Any], merged: Merged) -> dict[str, Any] | None:
    """``data`` without the entries (or top-level keys) that failed; None when what failed
    is the file itself (a missing or wrong ``version``, a whole section of the wrong type)."""
    out = {
        key: dict(value) if key in _SECTIONS and isinstance(value, dict) else value
        for key, value in data.items()
    }
    for error in found:
        loc = [part for part in error["loc"] if part != "[key]"]
        if not loc or loc[0] == "version":
            _mark_broken(data, merged)
            return None
        section = str(loc[0])
        if section in _SECTIONS and len(loc) > 1 and isinstance(out.get(section), dict):
            out[section].pop(str(loc[1]), None)
            if section == "roles":
                merged.broken_roles.add(str(loc[1]))
            continue
        if section == "roles" and isinstance(data.get("roles"), dict):
            merged.broken_roles.update(str(name) for name in data["roles"])
        merged.broken_defaults |= section == "defaults"
        out.pop(section, None)
    return out


def _mark_broken(data: dict[str, Any], merged: Merged) -> None:
    """What a file that cannot be used defines must not make other files' references look
    wrong."""
    roles = data.get("roles")
    if isinstance(roles, dict):
        merged.broken_roles.update(str(name) for name in roles)
    merged.broken_defaults |= "defaults" in data


def _issue(doc: Document, error: Any) -> PolicyIssue:
    path = tuple(part for part in error["loc"] if part != "[key]")
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] in _FRIENDLY:
        message = _FRIENDLY[error["type"]]
    elif error["type"] == "string_pattern_mismatch" and path and path[-1] in ("start", "end"):
        message = "expected a clock time HH:MM:SS between 00:00:00 and 23:59:59"
    elif error["type"] == "string_pattern_mismatch":
        message = f"invalid value ({message.lower()})"
    return doc.issue(path, message)


def _merge(
    documents: list[tuple[Document, PolicyFile]], merged: Merged, errors: list[PolicyIssue]
) -> None:
    for doc, policy in documents:
        if policy.defaults is not None:
            entry = Entry(policy.defaults, doc, ("defaults",))
            if merged.defaults is not None:
                errors.append(entry.issue(f"defaults are already set in {_where(merged.defaults)}"))
            else:
                merged.defaults = entry
        for section, target, values in (
            ("roles", merged.roles, policy.roles),
            ("users", merged.users, policy.users),
            ("groups", merged.groups, policy.groups),
            ("tokens", merged.tokens, policy.tokens),
        ):
            for name, value in values.items():
                new = Entry(value, doc, (section, name))
                first = target.setdefault(name, new)  # type: ignore[arg-type]
                if first is not new:
                    where = _where(first)
                    errors.append(new.issue(f"{section[:-1]} {name!r} is also defined in {where}"))


def _where(entry: Entry[Any]) -> str:
    line = entry.doc.line(entry.path)
    return entry.doc.file if line is None else f"{entry.doc.file}:{line}"


def _snapshot(digest: str, source: str, compiled: Compiled) -> PolicySnapshot:
    return PolicySnapshot(
        digest=digest,
        source=source,
        users=MappingProxyType(compiled.users),
        nkeys=MappingProxyType(compiled.nkeys),
        groups=MappingProxyType(compiled.groups),
        tokens=MappingProxyType(compiled.tokens),
        deny_groups=compiled.deny_groups,
        legacy_tokens=tuple(
            token.id
            for token in compiled.tokens.values()
            if token_hash_scheme(token.hash) == "bcrypt"
        ),
    )
