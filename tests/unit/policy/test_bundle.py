"""Policy bundles: one versioned value holding a policy tree, refused whole when anything in it
is wrong."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from callout.errors import PolicyError
from callout.policy import check_policy, check_texts
from callout.policy.bundle import (
    MAX_BUNDLE_BYTES,
    MAX_FILES,
    decode_bundle,
    encode_bundle,
    make_bundle,
)

EXAMPLES = Path(__file__).parents[3] / "policies"
WHEN = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
POLICY = "version: 1\nroles:\n  reader:\n    account: APP\n    subscribe: ['app.>']\n"


def _bundle(files: dict[str, str | bytes], by: str = "ci@host") -> bytes:
    return encode_bundle(make_bundle(files, pushed_by=by, pushed_at=WHEN))


def test_bundle_digest_is_the_digest_of_the_same_directory() -> None:
    """A replica running a bundle reports the digest `policy check` prints for the directory."""
    files = {p.name: p.read_bytes() for p in EXAMPLES.iterdir() if p.suffix == ".yaml"}
    bundle = make_bundle(files, pushed_by="me", pushed_at=WHEN)
    directory = check_policy(EXAMPLES).snapshot
    assert directory is not None
    assert bundle.digest == directory.digest
    compiled = check_texts(bundle.files).snapshot
    assert compiled is not None
    assert compiled.digest == bundle.digest


def test_digest_is_stable_across_order_paths_and_time() -> None:
    """The digest depends on names and contents only: not on the order given, the directory
    the files came from, who pushed or when."""
    first = make_bundle(
        {"/a/b.yaml": "x: 1\n", "/a/a.yaml": "y: 2\n"}, pushed_by="a", pushed_at=WHEN
    )
    second = make_bundle(
        {"c/a.yaml": b"y: 2\n", "c/b.yaml": b"x: 1\n"},
        pushed_by="b",
        pushed_at=WHEN + timedelta(days=1),
    )
    assert first.digest == second.digest
    assert list(first.files) == ["a.yaml", "b.yaml"]
    changed = make_bundle({"a.yaml": "y: 3\n", "b.yaml": "x: 1\n"}, pushed_by="a", pushed_at=WHEN)
    assert changed.digest != first.digest


def test_encode_decode_round_trip() -> None:
    """What a replica decodes is exactly what was pushed, with the time in UTC."""
    local = datetime(2026, 11, 30, 13, 0, tzinfo=timezone(timedelta(hours=1)))
    bundle = make_bundle({"p.yaml": "é: 1\n"}, pushed_by="ops@ci", pushed_at=local)
    back = decode_bundle(encode_bundle(bundle))
    assert back == bundle
    assert back.pushed_at == WHEN
    assert back.size == len("é: 1\n".encode())


@pytest.mark.parametrize(
    "name",
    [".hidden.yaml", "notes.txt", "a b.yaml", "x.yaml\n", "a" * 130 + ".yaml", "..data.yaml"],
)
def test_bad_file_names_are_refused(name: str) -> None:
    """A name the loader would not read the same way (dot-names, other suffixes, odd
    characters) cannot enter a bundle."""
    with pytest.raises(PolicyError, match="not a bundle file name"):
        make_bundle({name: POLICY}, pushed_by="me", pushed_at=WHEN)


def test_two_files_with_one_base_name_are_refused() -> None:
    with pytest.raises(PolicyError, match=r"a second file named 'p\.yaml'"):
        make_bundle({"a/p.yaml": POLICY, "b/p.yaml": POLICY}, pushed_by="me", pushed_at=WHEN)


def test_limits() -> None:
    """Too many files, too many bytes, or no file at all: refused with the limit named."""
    many = {f"p{i}.yaml": "x: 1\n" for i in range(MAX_FILES + 1)}
    with pytest.raises(PolicyError, match=f"at most {MAX_FILES}"):
        make_bundle(many, pushed_by="me", pushed_at=WHEN)
    with pytest.raises(PolicyError, match=r"no \*\.yaml"):
        make_bundle({}, pushed_by="me", pushed_at=WHEN)
    big = {"p.yaml": "#" * MAX_BUNDLE_BYTES}
    with pytest.raises(PolicyError, match=f"at most {MAX_BUNDLE_BYTES} bytes"):
        _bundle(big)
    fits = {"p.yaml": "#" * (MAX_BUNDLE_BYTES - 1000)}
    assert len(_bundle(fits)) <= MAX_BUNDLE_BYTES


def test_not_utf8_and_bad_pushed_by_are_refused() -> None:
    with pytest.raises(PolicyError, match="not UTF-8"):
        make_bundle({"p.yaml": b"\xff\xfe"}, pushed_by="me", pushed_at=WHEN)
    with pytest.raises(PolicyError, match="pushed_by"):
        make_bundle({"p.yaml": POLICY}, pushed_by="me\x1b[31m", pushed_at=WHEN)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda v: v.update(digest="0" * 64), "does not match"),
        (lambda v: v["files"].update({"p.yaml": "tampered"}), "does not match"),
        (lambda v: v.update(format=2), "format 1"),
        (lambda v: v.update(files=["p.yaml"]), "expected a mapping"),
        (lambda v: v.update(pushed_at="yesterday"), "ISO 8601"),
        (lambda v: v.update(pushed_at="2026-11-30T12:00:00"), "ISO 8601"),
        (lambda v: v["files"].update({"../../etc/x.yaml": "x"}), "not a bundle file name"),
    ],
)
def test_damaged_values_are_refused(change: object, message: str) -> None:
    """A replica never runs a value that is not exactly a valid bundle."""
    value = json.loads(_bundle({"p.yaml": POLICY}))
    change(value)  # type: ignore[operator]
    with pytest.raises(PolicyError, match=message):
        decode_bundle(json.dumps(value).encode())


def test_garbage_and_oversized_values_are_refused() -> None:
    with pytest.raises(PolicyError, match="not a policy bundle"):
        decode_bundle(b"\x00not json")
    with pytest.raises(PolicyError, match="format 1"):
        decode_bundle(b"[]")
    with pytest.raises(PolicyError, match="at most"):
        decode_bundle(b" " * (MAX_BUNDLE_BYTES + 1))


def test_files_out_of_order_are_refused() -> None:
    value = json.loads(_bundle({"a.yaml": POLICY, "b.yaml": "x: 1\n"}))
    value["files"] = dict(reversed(value["files"].items()))
    with pytest.raises(PolicyError, match="name order"):
        decode_bundle(json.dumps(value).encode())
