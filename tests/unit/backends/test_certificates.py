"""The certificate backend: chains verified against our own CAs, bounded, mapped by explicit
rules; every certificate here is made by the test (tests/certificates.py)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from callout.backends.certificates import CertificateBackend
from callout.credentials.certificates import TrustAnchors, certificate_fields
from callout.decision import Decision, Identity, Lane, Reason
from callout.policy import PolicySnapshot
from tests.certificates import DAY, NOW, Authority, name
from tests.unit.backends.certs import (
    AT,
    SPIFFE,
    backend,
    denied,
    login,
    settings,
    snapshot_placeholder,
    with_tls,
)
from tests.unit.policy.helpers import request, snapshot

POLICY = """\
roles:
  device:
    publish: {allow: ["telemetry.{{user.name}}.>"]}
    subscribe: {allow: ["commands.{{user.name}}.>"]}
  workload:
    publish: {allow: ["svc.{{user.attr.ns}}.{{user.name}}.>"]}
groups:
  "ou:sensors": {roles: [device]}
  workloads: {roles: [workload]}
"""


@pytest.fixture
def policy(tmp_path: Path) -> PolicySnapshot:
    return snapshot(tmp_path, POLICY)


async def test_a_spiffe_svid_names_the_workload_and_its_namespace(
    root: Authority, devices: Authority, policy: PolicySnapshot
) -> None:
    """spiffe.id is first-class: trust domain pinned, path groups become principal/attrs."""
    svid = devices.issue(name(CN="checkout"), uris=[SPIFFE])
    identity = await login(backend(root), svid, devices)
    assert isinstance(identity, Identity)
    assert identity.principal == "checkout"
    assert dict(identity.attributes) == {"ns": "shop"}
    assert identity.groups == ("workloads",)
    assert identity.expires_at == int(svid.certificate.not_valid_after_utc.timestamp())
    decision = policy.authorize(identity, request(), AT)
    assert decision.grant is not None
    assert decision.grant.permissions.pub_allow == ("svc.shop.checkout.>",)


async def test_another_trust_domain_is_not_the_pinned_one(
    root: Authority, devices: Authority
) -> None:
    """The same CA may sign SVIDs of several trust domains; only the pinned one names users."""
    svid = devices.issue(uris=["spiffe://staging.example.org/ns/shop/sa/checkout"])
    result = denied(await login(backend(root), svid, devices))
    assert result.reason is Reason.UNKNOWN_USER


async def test_a_device_certificate_maps_dns_san_to_user_and_ou_to_group(
    root: Authority, devices: Authority, policy: PolicySnapshot
) -> None:
    """The mTLS device of policies/README.md: SAN -> user, OU -> group -> role."""
    device = devices.issue(name(CN="t-17", OU="sensors"), dns=["t-17.devices.example.org"])
    identity = await login(backend(root), device, devices)
    assert isinstance(identity, Identity)
    assert (identity.principal, identity.groups) == ("t-17", ("ou:sensors",))
    grant = policy.authorize(identity, request(), AT).grant
    assert grant is not None
    assert grant.permissions.pub_allow == ("telemetry.t-17.>",)
    assert grant.permissions.sub_allow == ("commands.t-17.>",)


async def test_an_email_san_names_a_person(root: Authority) -> None:
    person = root.issue(name(CN="Ada"), emails=["ada@example.org"])
    identity = await login(backend(root), person)
    assert isinstance(identity, Identity)
    assert identity.principal == "ada@example.org"


async def test_a_subject_only_certificate_maps_by_subject_field(root: Authority) -> None:
    """Private PKIs often issue certificates without SANs: subject.CN is a field like any."""
    legacy = root.issue(name(CN="plc-4", O="Plant"))
    identity = await login(backend(root, identity=[{"field": "subject.CN"}]), legacy)
    assert isinstance(identity, Identity)
    assert identity.principal == "plc-4"


@pytest.mark.parametrize(
    ("when", "reason"),
    [
        ({"not_before": NOW - 10 * DAY, "not_after": NOW - DAY}, Reason.CREDENTIAL_EXPIRED),
        ({"not_before": NOW + DAY, "not_after": NOW + 10 * DAY}, Reason.INVALID_CERTIFICATE),
    ],
    ids=["expired", "not-yet-valid"],
)
async def test_a_certificate_outside_its_validity_is_refused(
    root: Authority, when: dict[str, Any], reason: Reason
) -> None:
    """Validity is checked at the request's time, not at the server's handshake."""
    outside = root.issue(dns=["t-1.devices.example.org"], **when)
    assert denied(await login(backend(root), outside)).reason is reason


async def test_a_chain_to_another_ca_is_untrusted_even_if_the_server_verified_it(
    root: Authority,
) -> None:
    """The server's CA file may trust more than we do: our own CA bundle decides."""
    other = Authority.root("Another CA")
    stranger = other.issue(dns=["t-1.devices.example.org"])
    result = denied(await login(backend(root), stranger, other))
    assert result.reason is Reason.UNTRUSTED_ISSUER


async def test_a_certificate_without_client_auth_usage_is_refused(root: Authority) -> None:
    signer = root.issue(dns=["t-1.devices.example.org"], client_auth=False)
    result = denied(await login(backend(root), signer))
    assert (result.reason, result.detail) == (
        Reason.INVALID_CERTIFICATE,
        "no clientAuth extended key usage",
    )


async def test_a_revoked_certificate_is_refused_through_the_crl(
    root: Authority, devices: Authority
) -> None:
    revoked = devices.issue(dns=["t-1.devices.example.org"])
    fine = devices.issue(dns=["t-2.devices.example.org"])
    crls = (devices.crl([revoked.certificate]),)
    result = denied(await login(backend(root, crls), revoked, devices))
    assert (result.reason, result.detail) == (
        Reason.INVALID_CERTIFICATE,
        "the certificate is revoked",
    )
    assert isinstance(await login(backend(root, crls), fine, devices), Identity)


async def test_a_revoked_intermediate_revokes_what_it_issued(
    root: Authority, devices: Authority
) -> None:
    crls = (root.crl([devices.certificate]), devices.crl())
    device = devices.issue(dns=["t-1.devices.example.org"])
    result = denied(await login(backend(root, crls), device, devices))
    assert result.detail == "CA certificate 1 is revoked"


async def test_with_crls_configured_a_stale_or_missing_crl_fails_closed(
    root: Authority, devices: Authority
) -> None:
    """Revocation that cannot be checked is not skipped."""
    device = devices.issue(dns=["t-1.devices.example.org"])
    stale = (devices.crl(next_update=NOW - DAY),)
    assert "next update" in denied(await login(backend(root, stale), device, devices)).detail
    # a CRL that only claims the issuer's name, signed by another key, does not count
    forged = Authority(Authority.root("Test Devices CA").certificate, Authority.root().key)
    missing = (root.crl(), forged.crl())
    detail = denied(await login(backend(root, missing), device, devices)).detail
    assert detail == "no valid CRL for the certificate's issuer"


@pytest.mark.parametrize(
    "dns",
    ["{{user.account}}", "a.>", "*", "x>", "t 1"],
    ids=["template", "dot-gt", "star", "gt", "space"],
)
async def test_a_san_with_subject_metacharacters_never_widens_a_grant(
    root: Authority, policy: PolicySnapshot, dns: str
) -> None:
    """The name is taken as is, and the policy refuses it in a template or renders it
    literally; it can never become a wildcard or another variable."""
    rules = [{"field": "san.dns"}]
    groups = [{"field": "san.dns", "group": "ou:sensors"}]
    crafted = root.issue(dns=[dns])
    identity = await login(backend(root, identity=rules, groups=groups), crafted)
    assert isinstance(identity, Identity)
    assert identity.principal == dns
    decision = policy.authorize(identity, request(), AT)
    if decision.grant is None:
        assert decision.reason is Reason.UNSAFE_TEMPLATE_VALUE
        return
    assert decision.grant.permissions.pub_allow == (f"telemetry.{dns}.>",)
    assert dns == "{{user.account}}"  # the only one that is subject-safe: kept literally


async def test_two_different_matching_values_are_ambiguous(root: Authority) -> None:
    """Explicit rules: a certificate naming two users is refused, never one picked."""
    both = root.issue(dns=["a.devices.example.org", "b.devices.example.org"])
    result = denied(await login(backend(root), both))
    assert result.reason is Reason.UNKNOWN_USER
    assert "matches 2 different san.dns values" in result.detail


async def test_a_certificate_no_rule_matches_names_nobody(root: Authority) -> None:
    unnamed = root.issue(dns=["printer.lan"])
    result = denied(await login(backend(root), unnamed))
    assert result.detail == "no identity rule matches the certificate"


@pytest.mark.parametrize(
    ("chain", "detail"),
    [
        (tuple(f"x{i}" for i in range(5)), "chain of 5 certificates, at most 4"),
        (("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",), "not a PEM"),
        (("é",), "not a PEM"),
        (("A" * 20000,), "over 16384 bytes"),
    ],
    ids=["too-long", "garbage", "not-ascii", "too-large"],
)
async def test_hostile_chains_are_refused_before_any_parsing_cost(
    root: Authority, chain: tuple[str, ...], detail: str
) -> None:
    result = denied(await backend(root).authenticate(with_tls(chain), snapshot_placeholder()))
    assert result.reason is Reason.INVALID_CERTIFICATE
    assert detail in result.detail


async def test_unverified_peer_certificates_are_verified_the_same_way(root: Authority) -> None:
    """``certs`` (no verified chain) gets exactly the same checks as ``verified_chains``."""
    device = root.issue(dns=["t-9.devices.example.org"])
    mine = backend(root)
    identity = await mine.authenticate(
        with_tls((device.pem,), verified=False), snapshot_placeholder()
    )
    assert isinstance(identity, Identity)
    stranger = Authority.root("Other").issue(dns=["t-9.devices.example.org"])
    result = await mine.authenticate(
        with_tls((stranger.pem,), verified=False), snapshot_placeholder()
    )
    assert denied(result).reason is Reason.UNTRUSTED_ISSUER


async def test_no_certificate_is_not_this_backends_kind(root: Authority) -> None:
    """A request without client certificates passes to the next backend, in no lane."""
    mine, plain = backend(root), request(user="alice", password="pw")
    assert await mine.authenticate(plain, snapshot_placeholder()) is None
    assert mine.lane(plain, snapshot_placeholder()) is None
    device = root.issue(dns=["t-1.devices.example.org"])
    assert mine.lane(with_tls((device.pem,)), snapshot_placeholder()) is Lane.CHEAP


async def test_a_client_certificate_cannot_act_as_a_ca(root: Authority) -> None:
    """Basic constraints: a leaf our CA issued cannot issue certificates of its own."""
    leaf = root.issue(dns=["t-1.devices.example.org"])
    forged = Authority(leaf.certificate, leaf.key).issue(dns=["t-2.devices.example.org"])
    result = denied(await login(backend(root), forged, Authority(leaf.certificate, leaf.key)))
    assert result.reason is Reason.UNTRUSTED_ISSUER


async def test_a_name_with_control_characters_names_nobody(root: Authority) -> None:
    """A value with a newline or another control character is left out of every field."""
    crafted = root.issue(name(CN="t-1\nadmin", OU="sensors\x00"))
    mine = backend(root, identity=[{"field": "subject.CN"}])
    result = denied(await login(mine, crafted))
    assert result.reason is Reason.UNKNOWN_USER
    assert certificate_fields(crafted.certificate)["subject.OU"] == ()


_ARMOUR = st.binary(max_size=600).map(
    lambda der: (
        "-----BEGIN CERTIFICATE-----\n"
        + base64.encodebytes(der).decode()
        + "-----END CERTIFICATE-----\n"
    )
)


@hypothesis_settings(max_examples=200, deadline=None)
@given(chain=st.lists(st.one_of(st.text(max_size=200), _ARMOUR), min_size=1, max_size=6))
def test_any_presented_chain_is_a_decision_never_an_exception(chain: list[str]) -> None:
    """Junk, truncated DER inside PEM armour, too many entries: always a deny value."""
    root = _FUZZ_ROOT
    mine = CertificateBackend(settings(), TrustAnchors([root.certificate]), clock=lambda: AT)
    result = mine.decide(tuple(chain), AT)
    assert isinstance(result, Decision)
    assert not result.allowed


_FUZZ_ROOT = Authority.root("Fuzz Root")
