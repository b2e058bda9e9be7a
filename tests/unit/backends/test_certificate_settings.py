"""The certificate backend's settings and files: rules checked at load, CA and CRL files
read (and read again when they change), SPIFFE IDs by the standard, the README example."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization

from callout.backends.certificates import REFRESH_INTERVAL, CertificateBackend, load_anchors
from callout.backends.chain import reloading
from callout.credentials.certificates import TrustAnchors
from callout.credentials.certrules import parse_spiffe_id, spiffe_ids
from callout.decision import Identity
from callout.errors import ConfigError
from callout.observability.metrics import Metrics
from callout.settings.backends.certificates import CertificateBackendSettings
from tests.certificates import Authority, name
from tests.unit.backends.certs import (
    AT,
    SPIFFE,
    denied,
    settings,
    snapshot_placeholder,
    with_tls,
)


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


def test_certificate_file_reloads_are_counted_by_result_in_the_metrics(
    tmp_path: Path, root: Authority, devices: Authority
) -> None:
    """An operator alerts on a CRL renewal that did not load: both results exist at 0 from
    the start, then count the changed files that loaded and those that did not."""
    mine = CertificateBackend.from_settings(_files(tmp_path, root, devices.crl()))
    metrics = Metrics()
    metrics.watch_file_reloads(reloading([mine]))

    def count(result: str) -> float | None:
        labels = {"backend": "cert", "result": result}
        return metrics.registry.get_sample_value("callout_backend_file_reloads_total", labels)

    assert (count("success"), count("failure")) == (0.0, 0.0)
    crl = devices.crl().public_bytes(serialization.Encoding.PEM)
    (tmp_path / "devices.crl").write_bytes(crl + b"\n")
    assert mine.refresh() is True
    (tmp_path / "devices.crl").write_text("truncated")
    assert mine.refresh() is False
    assert mine.refresh() is False  # the same broken file is counted once
    assert (count("success"), count("failure")) == (1.0, 1.0)
