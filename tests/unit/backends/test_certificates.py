"""The certificate backend: chains verified against our own CAs, bounded, mapped by explicit
rules; every certificate here is made by the test (tests/certificates.py)."""

from __future__ import annotations

import base64
import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from callout.backends.certificates import (
    REFRESH_INTERVAL,
    CertificateBackend,
    load_anchors,
)
from callout.credentials.certificates import TrustAnchors, certificate_fields
from callout.credentials.certrules import parse_spiffe_id, spiffe_ids
from callout.decision import Decision, Identity, Lane, Reason
from callout.errors import ConfigError
from callout.policy import PolicySnapshot
from callout.protocol.claims import AuthRequest, ClientTLS
from callout.settings.certificates import CertificateBackendSettings
from tests.certificates import DAY, NOW, Authority, Client, name
from tests.unit.policy.helpers import request, snapshot

AT = NOW.timestamp()
SPIFFE = "spiffe://prod.example.org/ns/shop/sa/checkout"
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


@pytest.fixture(scope="module")
def root() -> Authority:
    return Authority.root()


@pytest.fixture(scope="module")
def devices(root: Authority) -> Authority:
    return root.intermediate()


@pytest.fixture
def policy(tmp_path: Path) -> PolicySnapshot:
    return snapshot(tmp_path, POLICY)


def settings(**changes: Any) -> CertificateBackendSettings:
    return CertificateBackendSettings.model_validate(
        {
            "type": "cert",
            "ca_files": ["unused.pem"],
            "identity": [
                {
                    "field": "spiffe.id",
                    "trust_domain": "prod.example.org",
                    "pattern": "/ns/(?P<ns>[a-z-]+)/sa/(?P<principal>[a-z-]+)",
                },
                {
                    "field": "san.dns",
                    "pattern": r"(?P<principal>[a-z0-9-]+)\.devices\.example\.org",
                },
                {"field": "san.email"},
            ],
            "groups": [
                {"field": "subject.OU"},
                {"field": "spiffe.id", "trust_domain": "prod.example.org", "group": "workloads"},
            ],
            "group_prefix": "ou:",
            **changes,
        }
    )


def backend(root: Authority, crls: tuple[Any, ...] = (), **changes: Any) -> CertificateBackend:
    config = settings(**changes)
    anchors = TrustAnchors([root.certificate], crls, max_depth=config.max_chain_length)
    return CertificateBackend(config, anchors, clock=lambda: AT)


def with_tls(chain: tuple[str, ...], *, verified: bool = True) -> AuthRequest:
    """A request as nats-server sends it: the chain it verified, or the peer certificates."""
    if verified:
        tls = ClientTLS("1.3", "TLS_AES_128_GCM_SHA256", verified_chains=(chain,))
    else:
        tls = ClientTLS("1.3", "TLS_AES_128_GCM_SHA256", certs=chain)
    return dataclasses.replace(request(), tls=tls)


async def login(backend: CertificateBackend, client: Client, *chain: Authority) -> Any:
    pems = (client.pem, *(authority.pem for authority in chain))
    return await backend.authenticate(with_tls(pems), snapshot_placeholder())


def snapshot_placeholder() -> PolicySnapshot:
    """The backend does not read the policy: an empty one."""
    return PolicySnapshot("d", "s", {}, {}, {})


def denied(result: object) -> Decision:
    assert isinstance(result, Decision), result
    assert not result.allowed
    return result


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
    missing = (root.crl(), dataclasses.replace(forged).crl())
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


def test_settings_refuse_a_spiffe_rule_without_its_trust_domain() -> None:
    with pytest.raises(ValueError, match=r"spiffe\.id needs trust_domain"):
        settings(identity=[{"field": "spiffe.id"}])
    with pytest.raises(ValueError, match=r"trust_domain applies to field: spiffe\.id only"):
        settings(identity=[{"field": "san.dns", "trust_domain": "example.org"}])


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"field": "san.dns", "pattern": "(unclosed"}, "not a regular expression"),
        ({"field": "subject.XX"}, "Input should be"),
        ({"field": "san.dns", "group": "g"}, "Extra inputs are not permitted"),
    ],
)
def test_settings_refuse_bad_identity_rules(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        settings(identity=[rule])


def test_a_group_rule_cannot_take_a_principal() -> None:
    with pytest.raises(ValueError, match="a group rule has no principal"):
        settings(groups=[{"field": "san.dns", "pattern": "(?P<principal>.*)"}])


def test_unreadable_or_wrong_trust_files_are_configuration_errors(
    tmp_path: Path, root: Authority
) -> None:
    """Named by path, exit 78 at start: never a backend that trusts nothing."""
    missing = settings(ca_files=[str(tmp_path / "none.pem")])
    with pytest.raises(ConfigError, match=r"none\.pem: cannot read the CA bundle"):
        load_anchors(missing)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(ConfigError, match=r"junk\.pem: not a PEM bundle"):
        load_anchors(settings(ca_files=[str(junk)]))
    ca = tmp_path / "ca.pem"
    ca.write_text(root.pem)
    with pytest.raises(ConfigError, match=r"junk\.pem: not a CRL"):
        load_anchors(settings(ca_files=[str(ca)], crl_files=[str(junk)]))
    der = tmp_path / "devices.crl"
    der.write_bytes(root.crl().public_bytes(serialization.Encoding.DER))
    assert load_anchors(settings(ca_files=[str(ca)], crl_files=[str(der)])).checks_revocation


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("spiffe://prod.example.org/ns/shop/sa/checkout", True),
        ("spiffe://prod.example.org", True),
        ("spiffe://Prod.example.org/x", False),  # trust domains are lower-case
        ("spiffe://prod.example.org:443/x", False),  # no port
        ("spiffe://user@prod.example.org/x", False),  # no user info
        ("spiffe://prod.example.org/a//b", False),  # no empty segment
        ("spiffe://prod.example.org/a/../b", False),  # no dot segments
        ("spiffe://prod.example.org/a?b=c", False),  # no query
        ("spiffe://prod.example.org/a%2Fb", False),  # no percent-encoding
        ("spiffe://prod.example.org/", False),  # no trailing slash
        ("https://prod.example.org/x", False),
        ("spiffe://prod.example.org/" + "a" * 2048, False),  # over 2048 bytes
    ],
)
def test_spiffe_ids_follow_the_standard(text: str, valid: bool) -> None:
    assert (parse_spiffe_id(text) is not None) is valid


def test_only_a_single_uri_san_is_a_spiffe_id() -> None:
    """An X.509-SVID carries exactly one URI SAN; with two, neither names a workload."""
    assert spiffe_ids((SPIFFE,)) == (SPIFFE,)
    assert spiffe_ids((SPIFFE, "https://example.org/")) == ()


async def test_a_client_certificate_cannot_act_as_a_ca(root: Authority) -> None:
    """Basic constraints: a leaf our CA issued cannot issue certificates of its own."""
    leaf = root.issue(dns=["t-1.devices.example.org"])
    forged = Authority(leaf.certificate, leaf.key).issue(dns=["t-2.devices.example.org"])
    result = denied(await login(backend(root), forged, Authority(leaf.certificate, leaf.key)))
    assert result.reason is Reason.UNTRUSTED_ISSUER


def test_the_readme_example_is_valid_and_maps_as_documented(root: Authority) -> None:
    """The `cert` block of the README's backend section, run against a device certificate."""
    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    block = next(b for b in readme.split("```yaml\n")[1:] if "type: cert" in b.split("```")[0])
    documented = yaml.safe_load(block.split("```")[0])["backends"][1]
    config = CertificateBackendSettings.model_validate(documented)
    mine = CertificateBackend(config, TrustAnchors([root.certificate]), clock=lambda: AT)
    device = root.issue(name(CN="t-17", OU="sensors"), dns=["t-17.devices.example.org"])
    identity = mine.decide((device.pem,), AT)
    assert isinstance(identity, Identity)
    assert (identity.principal, identity.groups) == ("t-17", ("ou:sensors",))
    svid = root.issue(uris=[SPIFFE])
    identity = mine.decide((svid.pem,), AT)
    assert isinstance(identity, Identity)
    assert (identity.principal, identity.groups) == ("checkout", ("workloads",))


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


def _files(tmp_path: Path, root: Authority, crl: Any) -> CertificateBackendSettings:
    (tmp_path / "ca.pem").write_text(root.pem)
    (tmp_path / "devices.crl").write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return settings(ca_files=[str(tmp_path / "ca.pem")], crl_files=[str(tmp_path / "devices.crl")])


def test_a_renewed_crl_is_used_without_a_restart_and_a_broken_one_is_not(
    tmp_path: Path, root: Authority, devices: Authority
) -> None:
    """CRLs are renewed often: a new file revokes at the next look; a file that no longer
    loads leaves the last good set in use."""
    device = devices.issue(dns=["t-1.devices.example.org"])
    mine = CertificateBackend.from_settings(_files(tmp_path, root, devices.crl()))
    chain = (device.pem, devices.pem)
    assert isinstance(mine.decide(chain, AT), Identity)
    assert mine.refresh() is False  # nothing changed
    crl = devices.crl([device.certificate]).public_bytes(serialization.Encoding.PEM)
    (tmp_path / "devices.crl").write_bytes(crl + b"\n")  # other size: a change
    assert mine.refresh() is True
    assert denied(mine.decide(chain, AT)).detail == "the certificate is revoked"
    (tmp_path / "devices.crl").write_text("truncated")
    assert mine.refresh() is False
    assert denied(mine.decide(chain, AT)).detail == "the certificate is revoked"


async def test_logins_look_at_the_files_in_the_background_at_most_every_interval(
    tmp_path: Path, root: Authority, devices: Authority
) -> None:
    now = [AT]
    config = _files(tmp_path, root, devices.crl())
    mine = CertificateBackend.from_settings(config, clock=lambda: now[0])
    device = devices.issue(dns=["t-1.devices.example.org"])
    request_ = with_tls((device.pem, devices.pem))
    crl = devices.crl([device.certificate]).public_bytes(serialization.Encoding.PEM)
    (tmp_path / "devices.crl").write_bytes(crl + b"\n")
    assert isinstance(await mine.authenticate(request_, snapshot_placeholder()), Identity)
    assert mine.refreshing is None  # too soon to look
    now[0] += REFRESH_INTERVAL
    await mine.authenticate(request_, snapshot_placeholder())  # decided with what it had
    assert mine.refreshing is not None
    assert await mine.refreshing is True
    result = denied(await mine.authenticate(request_, snapshot_placeholder()))
    assert result.detail == "the certificate is revoked"
