"""Client certificate chains: read from the request's ``client_tls``, bounded, verified against
our own trust anchors and revocation lists, and reduced to the fields the mapping rules read
(`callout.credentials.certrules`). Pure: certificates and ``now`` in, values out.

nats-server has verified the chain already when it requires client certificates, against
*its* CA file, at handshake time, with no revocation check. We never rely on that: the chain
is verified again here against the CA bundle configured for this service (which may be
narrower), at the request's time, with the web PKI profile of `cryptography` (EKU
``clientAuth`` on the leaf; key usage, basic constraints and path length of every CA) and the
configured CRLs. Every problem is a `Refusal`, never an exception.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from callout.credentials.certrules import Fields, spiffe_ids
from callout.protocol.claims import ClientTLS

Problem = Literal["expired", "not_yet_valid", "untrusted", "invalid", "revoked"]

_NAME_FIELDS = {
    "CN": NameOID.COMMON_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "serialNumber": NameOID.SERIAL_NUMBER,
    "emailAddress": NameOID.EMAIL_ADDRESS,
    "UID": NameOID.USER_ID,
    "DC": NameOID.DOMAIN_COMPONENT,
    "C": NameOID.COUNTRY_NAME,
    "L": NameOID.LOCALITY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
}
_ISSUER_FIELDS = ("CN", "O", "OU")
# Subject-only client certificates are common in private PKIs: the SAN may be absent.
_LEAF_POLICY = ExtensionPolicy.webpki_defaults_ee().may_be_present(
    x509.SubjectAlternativeName, Criticality.AGNOSTIC, None
)
_MAX_SIGNATURE_CACHE = 256
_VERIFIER_ERRORS = (
    ("candidates exhausted", "untrusted", "not issued by a trusted CA"),
    ("required EKU not found", "invalid", "no clientAuth extended key usage"),
    ("not valid at validation time", "expired", "a CA certificate is outside its validity"),
)


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a chain is refused: ``problem`` picks the deny reason, ``detail`` is for the log
    (never certificate contents)."""

    problem: Problem
    detail: str


@dataclass(frozen=True, slots=True)
class Verified:
    """A chain that verified: the leaf first, the trust anchor last."""

    chain: tuple[x509.Certificate, ...]

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]


def presented(tls: ClientTLS | None) -> tuple[str, ...]:
    """The PEM certificates the client presented, leaf first: the first verified chain (then
    any other certificate of the other chains), or the unverified peer certificates."""
    if tls is None:
        return ()
    if not tls.verified_chains:
        return tls.certs
    first = tls.verified_chains[0]
    others = (pem for chain in tls.verified_chains[1:] for pem in chain)
    return tuple(dict.fromkeys((*first, *others)))


def parse_chain(
    pems: Sequence[str], *, max_certificates: int, max_bytes: int
) -> list[x509.Certificate] | Refusal:
    """The certificates of ``pems`` (one PEM block each), within the bounds."""
    if len(pems) > max_certificates:
        return Refusal("invalid", f"chain of {len(pems)} certificates, at most {max_certificates}")
    chain = []
    for index, text in enumerate(pems):
        if len(text) > max_bytes:
            return Refusal("invalid", f"certificate {index} is over {max_bytes} bytes")
        try:
            certificate = x509.load_pem_x509_certificate(text.encode("ascii"))
        except (UnicodeEncodeError, ValueError):
            return Refusal("invalid", f"certificate {index} is not a PEM certificate")
        chain.append(certificate)
    return chain


def fingerprint(certificate: x509.Certificate) -> str:
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


class TrustAnchors:
    """The CAs a chain must end at, and the CRLs that may revoke its certificates."""

    def __init__(
        self,
        roots: Sequence[x509.Certificate],
        crls: Sequence[x509.CertificateRevocationList] = (),
        *,
        max_depth: int = 4,
    ) -> None:
        if not roots:
            raise ValueError("at least one trusted CA certificate is needed")
        self._store = Store(list(roots))
        self._max_depth = max_depth
        self._crls: dict[x509.Name, list[tuple[int, x509.CertificateRevocationList]]] = {}
        for index, crl in enumerate(crls):
            self._crls.setdefault(crl.issuer, []).append((index, crl))
        # (CRL, issuer key) -> whether the key signed the CRL: one signature check per pair,
        # not per login. Only keys of verified chains get here; bounded all the same.
        self._signed: dict[tuple[int, bytes], bool] = {}

    @property
    def checks_revocation(self) -> bool:
        return bool(self._crls)

    def verify(self, chain: Sequence[x509.Certificate], now: float) -> Verified | Refusal:
        """The verified chain of ``chain[0]`` (the rest are candidate intermediates)."""
        if not chain:
            return Refusal("invalid", "no certificate")
        at = datetime.datetime.fromtimestamp(int(now), datetime.UTC)
        leaf = chain[0]
        if at > leaf.not_valid_after_utc:
            return Refusal("expired", "the certificate has expired")
        if at < leaf.not_valid_before_utc:
            return Refusal("not_yet_valid", "the certificate is not valid yet")
        if not _client_auth(leaf):
            return Refusal("invalid", "no clientAuth extended key usage")
        verifier = (
            PolicyBuilder()
            .store(self._store)
            .time(at)
            .max_chain_depth(self._max_depth)
            .extension_policies(
                ca_policy=ExtensionPolicy.webpki_defaults_ca(), ee_policy=_LEAF_POLICY
            )
            .build_client_verifier()
        )
        try:
            verified = verifier.verify(leaf, list(chain[1:]))
        except VerificationError as error:
            return _refusal(str(error))
        result = Verified(tuple(verified.chain))
        return self._revoked(result, at) or result

    def _revoked(self, verified: Verified, at: datetime.datetime) -> Refusal | None:
        if not self._crls:
            return None
        for depth, (certificate, issuer) in enumerate(
            zip(verified.chain, verified.chain[1:], strict=False)
        ):
            crls = [
                crl
                for index, crl in self._crls.get(issuer.subject, ())
                if self._signed_by(index, crl, issuer)
            ]
            if not crls:
                if depth == 0:  # the leaf's CA must publish one: fail closed
                    return Refusal("invalid", "no valid CRL for the certificate's issuer")
                continue
            if all(crl.next_update_utc is None or crl.next_update_utc < at for crl in crls):
                return Refusal("invalid", "the issuer's CRL is past its next update")
            if any(
                crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
                for crl in crls
            ):
                what = "the certificate" if depth == 0 else f"CA certificate {depth}"
                return Refusal("revoked", f"{what} is revoked")
        return None

    def _signed_by(
        self, index: int, crl: x509.CertificateRevocationList, issuer: x509.Certificate
    ) -> bool:
        key = issuer.public_key()
        spki = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        found = self._signed.get((index, spki))
        if found is None:
            if len(self._signed) >= _MAX_SIGNATURE_CACHE:
                self._signed.clear()
            found = crl.is_signature_valid(key)  # type: ignore[arg-type]  # CA keys sign
            self._signed[(index, spki)] = found
        return found


def _client_auth(leaf: x509.Certificate) -> bool:
    try:
        usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return ExtendedKeyUsageOID.CLIENT_AUTH in usage


def _refusal(message: str) -> Refusal:
    for needle, problem, detail in _VERIFIER_ERRORS:
        if needle in message:
            return Refusal(problem, detail)  # type: ignore[arg-type]  # literals above
    # the verifier names the certificate after "(encountered"; keep only the rule broken
    return Refusal("invalid", message.split(" (encountered", 1)[0][:200])


def certificate_fields(leaf: x509.Certificate) -> Fields:
    """Every field the rules may read, as strings, in certificate order."""
    fields: dict[str, tuple[str, ...]] = {}
    try:
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = x509.SubjectAlternativeName([])
    fields["san.dns"] = _printable(names.get_values_for_type(x509.DNSName))
    uris = _printable(names.get_values_for_type(x509.UniformResourceIdentifier))
    fields["san.uri"] = uris
    fields["san.email"] = _printable(names.get_values_for_type(x509.RFC822Name))
    fields["spiffe.id"] = spiffe_ids(uris)
    for key, oid in _NAME_FIELDS.items():
        fields[f"subject.{key}"] = _values(leaf.subject.get_attributes_for_oid(oid))
    for key in _ISSUER_FIELDS:
        fields[f"issuer.{key}"] = _values(leaf.issuer.get_attributes_for_oid(_NAME_FIELDS[key]))
    fields["sha256"] = (fingerprint(leaf),)
    return fields


def _values(attributes: Iterable[x509.NameAttribute[str | bytes]]) -> tuple[str, ...]:
    return _printable(a.value for a in attributes if isinstance(a.value, str))


def _printable(values: Iterable[str]) -> tuple[str, ...]:
    """A value with control characters (or empty) is never a name: it is left out."""
    return tuple(value for value in values if value and value.isprintable())


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle; ValueError when there is none."""
    return x509.load_pem_x509_certificates(data)


def load_crl(data: bytes) -> x509.CertificateRevocationList:
    """A CRL in PEM or DER; ValueError when it is neither."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_crl(data)
    return x509.load_der_x509_crl(data)
