"""The audit event's permissions digest: what a grant allows, computed once per distinct
grant (a bounded table) and the same whatever the login's name or expiry."""

from __future__ import annotations

from dataclasses import replace

from callout.decision import Permissions, TimeRange, UserGrant
from callout.observability import audit
from callout.observability.audit import permissions_digest

GRANT = UserGrant(
    name="alice",
    account="APP",
    expires=1_800_000_000,
    permissions=Permissions(pub_allow=("app.>",), sub_allow=("_INBOX.>",)),
    src=("10.0.0.0/8",),
    times=(TimeRange("08:00:00", "18:00:00"),),
    times_location="UTC",
)


def test_the_digest_names_what_is_allowed_not_who_or_until_when() -> None:
    digest = permissions_digest(GRANT)
    assert len(digest) == 16
    assert permissions_digest(replace(GRANT, name="bob", expires=1)) == digest
    widened = replace(GRANT, permissions=Permissions(pub_allow=(">",), sub_allow=("_INBOX.>",)))
    changes = [
        widened,
        replace(GRANT, account="OPS"),
        replace(GRANT, src=()),
        replace(GRANT, connection_types=("WEBSOCKET",)),
        replace(GRANT, times=()),
        replace(GRANT, times_location="Europe/Berlin"),
    ]
    digests = {permissions_digest(grant) for grant in changes}
    assert digest not in digests
    assert len(digests) == len(changes)
    assert permissions_digest(None) == ""


def test_the_table_of_digests_is_bounded() -> None:
    """Every distinct grant (a template per user) adds an entry; the table stays bounded."""
    bound = audit._digest.cache_info().maxsize
    assert bound is not None
    for number in range(bound + 50):
        grant = replace(GRANT, permissions=Permissions(pub_allow=(f"user.{number}.>",)))
        assert permissions_digest(grant) != permissions_digest(GRANT)
    assert audit._digest.cache_info().currsize <= bound
