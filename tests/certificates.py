"""Certificates made in the tests with `cryptography`: a root CA, an intermediate, and client
certificates with whatever names, key usages, validity and signer a test needs."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime(2027, 1, 15, 8, 0, tzinfo=datetime.UTC)  # tests.unit.policy.helpers.NOW
DAY = datetime.timedelta(days=1)


def name(**fields: str) -> x509.Name:
    """``name(CN="x", OU="y")``: a subject with those attributes, in that order."""
    oids = {
        "CN": NameOID.COMMON_NAME,
        "O": NameOID.ORGANIZATION_NAME,
        "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
        "C": NameOID.COUNTRY_NAME,
        "serialNumber": NameOID.SERIAL_NUMBER,
        "emailAddress": NameOID.EMAIL_ADDRESS,
        "UID": NameOID.USER_ID,
    }
    return x509.Name([x509.NameAttribute(oids[key], value) for key, value in fields.items()])


def pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


@dataclass(frozen=True)
class Authority:
    """A CA: its certificate and key; it issues intermediates, client certificates and CRLs."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @classmethod
    def root(cls, common_name: str = "Test Root CA") -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = name(CN=common_name, O="Example")
        builder = _ca_builder(subject, subject, key.public_key(), key.public_key())
        return cls(builder.sign(key, hashes.SHA256()), key)

    @property
    def pem(self) -> str:
        return pem(self.certificate)

    def intermediate(self, common_name: str = "Test Devices CA") -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = _ca_builder(
            name(CN=common_name, O="Example"),
            self.certificate.subject,
            key.public_key(),
            self.key.public_key(),
        )
        return Authority(builder.sign(self.key, hashes.SHA256()), key)

    def issue(
        self,
        subject: x509.Name | None = None,
        *,
        dns: Sequence[str] = (),
        uris: Sequence[str] = (),
        emails: Sequence[str] = (),
        client_auth: bool = True,
        not_before: datetime.datetime = NOW - DAY,
        not_after: datetime.datetime = NOW + 30 * DAY,
        serial: int | None = None,
    ) -> Client:
        """A client certificate (EKU clientAuth unless ``client_auth`` is False)."""
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
        names += [x509.UniformResourceIdentifier(u) for u in uris]
        names += [x509.RFC822Name(e) for e in emails]
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client_auth else ExtendedKeyUsageOID.CODE_SIGNING
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject if subject is not None else name(CN="device"))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(serial if serial is not None else x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        return Client(builder.sign(self.key, hashes.SHA256()), key)

    def server(self, address: str = "127.0.0.1") -> Client:
        """A TLS server certificate for ``address`` (an IP SAN, EKU serverAuth)."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(name(CN=address))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(datetime.datetime.now(datetime.UTC) - DAY)
            .not_valid_after(datetime.datetime.now(datetime.UTC) + DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(address))]),
                critical=False,
            )
        )
        return Client(builder.sign(self.key, hashes.SHA256()), key)

    def crl(
        self,
        revoked: Sequence[x509.Certificate] = (),
        *,
        next_update: datetime.datetime = NOW + 7 * DAY,
    ) -> x509.CertificateRevocationList:
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(NOW - DAY)
            .next_update(next_update)
        )
        for certificate in revoked:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(certificate.serial_number)
                .revocation_date(NOW - DAY)
                .build()
            )
        return builder.sign(self.key, hashes.SHA256())


@dataclass(frozen=True)
class Client:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def pem(self) -> str:
        return pem(self.certificate)

    def write(self, directory: Path, stem: str, *chain: Authority) -> tuple[Path, Path]:
        """``stem.pem`` (this certificate, then ``chain``) and ``stem.key``, for a TLS client."""
        cert_file, key_file = directory / f"{stem}.pem", directory / f"{stem}.key"
        cert_file.write_text(self.pem + "".join(authority.pem for authority in chain))
        key_file.write_bytes(
            self.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        key_file.chmod(0o600)
        return cert_file, key_file

    def server_context(self, directory: Path, stem: str = "server") -> ssl.SSLContext:
        """A TLS server context presenting this certificate (one made by `Authority.server`)."""
        cert_file, key_file = self.write(directory, stem)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_file, key_file)
        return context


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _ca_builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer_key: ec.EllipticCurvePublicKey,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - 365 * DAY)
        .not_valid_after(NOW + 3650 * DAY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key), critical=False
        )
    )
