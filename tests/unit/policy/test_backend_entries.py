"""Policy entries for the other backends: ``tokens:`` and deny groups; errors at file:line."""

from __future__ import annotations

import bcrypt
import pytest

from callout.credentials.tokens import hmac_hash
from callout.decision import Identity, Reason
from callout.errors import PolicyError, PolicyIssue
from callout.policy import check_texts, compile_texts
from tests.unit.policy.helpers import HEADER, NOW, request, texts

HASH = hmac_hash(b"p" * 32, "nac_abc_" + "s" * 43)
ROLES = 'roles:\n  app: {publish: {allow: ["app.>"]}}\n'


def errors_of(files: dict[str, str]) -> list[PolicyIssue]:
    with pytest.raises(PolicyError) as caught:
        compile_texts(files)
    return caught.value.issues


def test_a_plaintext_token_is_an_error_at_its_line() -> None:
    """A secret pasted into a policy file must be caught before it loads, and located."""
    text = HEADER + ROLES + "tokens:\n  abc:\n    hash: nac_abc_secret\n    owner: me\n"
    (issue,) = errors_of(texts(t_yaml=text))
    assert issue.line == 7
    assert issue.path == "tokens.abc.hash"
    assert "plaintext tokens are not allowed" in issue.message
    assert "nac_abc_secret" not in issue.message


@pytest.mark.parametrize(
    ("entry", "path", "message"),
    [
        (f'    hash: "{HASH}"\n', "tokens.abc.owner", "required key is missing"),
        (
            f'    hash: "{HASH}"\n    owner: me\n    expires: 2027-01-15T09:00:00\n',
            "tokens.abc.expires",
            "time zone",
        ),
        (
            f'    hash: "{HASH}"\n    owner: me\n    roles: [nope]\n',
            "tokens.abc.roles[0]",
            "unknown role",
        ),
    ],
    ids=["no-owner", "naive-expires", "unknown-role"],
)
def test_token_entry_errors_name_the_field(entry: str, path: str, message: str) -> None:
    """Security teams fix what the checker points at; the path must be the exact field."""
    issues = errors_of(texts(t_yaml=HEADER + ROLES + "tokens:\n  abc:\n" + entry))
    assert [(i.path, message in i.message) for i in issues] == [(path, True)]


def test_a_token_id_defined_twice_is_an_error() -> None:
    """Two files must not both define what one token id may do."""
    entry = f'tokens:\n  abc:\n    hash: "{HASH}"\n    owner: me\n    roles: [app]\n'
    (issue,) = errors_of(texts(a_yaml=HEADER + ROLES + entry, b_yaml="version: 1\n" + entry))
    assert "token 'abc' is also defined in" in issue.message


def test_legacy_and_never_expiring_tokens_are_warned_about() -> None:
    """bcrypt tokens cost a KDF per unknown token; tokens without expiry live forever."""
    legacy = bcrypt.hashpw(b"x", bcrypt.gensalt(4)).decode()
    text = (
        HEADER
        + ROLES
        + f'tokens:\n  old:\n    hash: "{legacy}"\n    owner: me\n    roles: [app]\n'
        + '    expires: "2027-01-01"\n'
    )
    result = check_texts(texts(t_yaml=text))
    assert result.ok
    assert result.snapshot is not None
    assert result.snapshot.legacy_tokens == ("old",)
    messages = [w.message for w in result.warnings]
    assert any("legacy bcrypt token" in m for m in messages)
    text = (
        HEADER + ROLES + f'tokens:\n  new:\n    hash: "{HASH}"\n    owner: me\n    roles: [app]\n'
    )
    result = check_texts(texts(t_yaml=text))
    assert [w.message for w in result.warnings] == ["this token never expires; set expires"]


def test_a_deny_group_refuses_its_members_whatever_else_they_are_in() -> None:
    """Explicit deny wins: membership in a blocked group overrides every allowing group."""
    text = HEADER + ROLES + "groups:\n  readers: {roles: [app]}\n  blocked: {deny: true}\n"
    policy = compile_texts(texts(g_yaml=text))
    allowed = policy.authorize(Identity("dave", "ldap", groups=("readers",)), request(), NOW)
    assert allowed.allowed
    denied = policy.authorize(
        Identity("dave", "ldap", groups=("readers", "blocked")), request(), NOW
    )
    assert denied.reason is Reason.EXPLICIT_DENY


@pytest.mark.parametrize(
    ("group", "message"),
    [
        ("{deny: true, roles: [app]}", "a deny group grants nothing"),
        ("{description: nothing}", "at least one role"),
    ],
)
def test_a_group_either_grants_roles_or_denies(group: str, message: str) -> None:
    """A group that grants nothing and denies nothing is a mistake worth an error."""
    (issue,) = errors_of(texts(g_yaml=HEADER + ROLES + f"groups:\n  g: {group}\n"))
    assert message in issue.message
