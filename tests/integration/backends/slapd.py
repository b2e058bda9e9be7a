"""A throwaway OpenLDAP `slapd` on 127.0.0.1 for the LDAP tests (docs/operations.md#ldap-in-tests).

The directory: people alice, bob, carol, dave and the service account; groups nats-admins
(alice), nats-readers (alice, bob, dave), ops-team (carol), nats-operators (the ops-team
group: a nested group) and nats-blocked (dave). Groups are added online so that the memberof
overlay fills ``memberOf``. slapd runs in the foreground (``-d``), owned by the fixture, and
listens on a plain and an LDAPS port with a certificate from a throwaway CA.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from callout.devserver.processes import free_port, stop_process, wait_for_port

SUFFIX = "dc=example,dc=org"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"
SERVICE_DN = f"cn=callout,ou=services,{SUFFIX}"
SERVICE_PASSWORD = "service-pw"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "root-pw"  # tests only: the fixture loads groups with it
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "dave": "dave-pw"}
DEPARTMENTS = {"alice": "eng", "bob": "sales.eu", "carol": "ops", "dave": "eng"}

_MODULES = ("/usr/lib/ldap", "/usr/lib64/openldap", "/usr/lib/openldap")
_SCHEMAS = ("/etc/ldap/schema", "/etc/openldap/schema")


def find_slapd() -> str | None:
    """The slapd binary (Debian installs it in /usr/sbin, which is not on every PATH)."""
    found = shutil.which("slapd")
    if found:
        return found
    return "/usr/sbin/slapd" if Path("/usr/sbin/slapd").is_file() else None


def _first_dir(candidates: tuple[str, ...]) -> str:
    return next((c for c in candidates if Path(c).is_dir()), candidates[0])


def _person(uid: str, given: str) -> str:
    return (
        f"dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {given}\n"
        f"sn: {given}\nmail: {uid}@example.org\ndepartmentNumber: {DEPARTMENTS[uid]}\n"
        f"userPassword: {PASSWORDS[uid]}\n"
    )


def _group(cn: str, *members: str) -> str:
    lines = [f"dn: cn={cn},{GROUPS}", "objectClass: groupOfNames", f"cn: {cn}"]
    lines += [f"member: {member}" for member in members]
    return "\n".join(lines) + "\n"


def person_dn(uid: str) -> str:
    return f"uid={uid},{PEOPLE}"


def group_dn(cn: str) -> str:
    return f"cn={cn},{GROUPS}"


_BASE_LDIF = "\n".join(
    [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\n"
        "o: Example\n",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n",
        f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n",
        f"dn: ou=services,{SUFFIX}\nobjectClass: organizationalUnit\nou: services\n",
        f"dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
        f"cn: callout\nuserPassword: {SERVICE_PASSWORD}\n",
        *(_person(uid, uid.title()) for uid in PASSWORDS),
    ]
)
# Added online, in this order, so the memberof overlay sees every member (nested: ops-team first).
_GROUPS_LDIF = "\n".join(
    [
        _group("nats-admins", person_dn("alice")),
        _group("nats-readers", person_dn("alice"), person_dn("bob"), person_dn("dave")),
        _group("ops-team", person_dn("carol")),
        _group("nats-operators", group_dn("ops-team")),
        _group("nats-blocked", person_dn("dave")),
    ]
)


def _config(directory: Path, tls: TlsFiles) -> str:
    schemas = _first_dir(_SCHEMAS)
    return f"""\
include {schemas}/core.schema
include {schemas}/cosine.schema
include {schemas}/inetorgperson.schema
modulepath {_first_dir(_MODULES)}
moduleload back_mdb
moduleload memberof
pidfile {directory}/slapd.pid
argsfile {directory}/slapd.args
TLSCACertificateFile {tls.ca}
TLSCertificateFile {tls.cert}
TLSCertificateKeyFile {tls.key}
database mdb
maxsize 16777216
suffix "{SUFFIX}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PASSWORD}
directory {directory}/db
index objectClass eq
index uid eq
index member eq
overlay memberof
access to attrs=userPassword
  by anonymous auth
  by self read
  by * none
access to *
  by users read
  by * none
"""


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path


def make_tls(directory: Path, name: str = "test") -> TlsFiles:
    """A CA and a server certificate for 127.0.0.1/localhost, written as PEM files."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.key.chmod(0o600)
    return files


@dataclass
class Slapd:
    """One slapd process with the test directory; ``start``/``stop``/``pause`` by PID."""

    directory: Path
    binary: str
    port: int = field(default_factory=free_port)
    tls_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.tls_port}"

    @property
    def log_file(self) -> Path:
        return self.directory / "slapd.log"

    @property
    def tls(self) -> TlsFiles:
        return TlsFiles(
            self.directory / "tls" / "ca.pem",
            self.directory / "tls" / "server.pem",
            self.directory / "tls" / "server.key",
        )

    def create(self) -> Slapd:
        """Write the config and the people offline, start, then add the groups online."""
        (self.directory / "db").mkdir(parents=True)
        tls = make_tls(self.directory / "tls")
        config = self.directory / "slapd.conf"
        config.write_text(_config(self.directory, tls), encoding="utf-8")
        (self.directory / "base.ldif").write_text(_BASE_LDIF, encoding="utf-8")
        slapadd = str(Path(self.binary).with_name("slapadd"))
        subprocess.run(
            [slapadd, "-q", "-f", str(config), "-l", str(self.directory / "base.ldif")],
            check=True,
            capture_output=True,
        )
        self.start()
        (self.directory / "groups.ldif").write_text(_GROUPS_LDIF, encoding="utf-8")
        self.ldap_tool("ldapadd", "-f", str(self.directory / "groups.ldif"))
        return self

    def ldap_tool(self, tool: str, *args: str) -> str:
        """Run an ldap-utils command as the root DN against this server."""
        done = subprocess.run(
            [tool, "-x", "-H", self.url, "-D", ROOT_DN, "-w", ROOT_PASSWORD, *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return done.stdout

    def start(self, timeout: float = 10.0) -> None:
        urls = f"{self.url}/ {self.ldaps_url}/"
        with self.log_file.open("ab") as log:
            # -d 256 (stats) keeps slapd in the foreground and logs each BIND, which tests count
            self.process = subprocess.Popen(
                [self.binary, "-d", "256", "-f", str(self.directory / "slapd.conf"), "-h", urls],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for_port(self.port, timeout, self.process)
        wait_for_port(self.tls_port, timeout, self.process)

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.resume()
        stop_process(self.process, timeout)

    def kill(self) -> None:
        """SIGKILL: the directory dies mid-run, connections reset, nothing is flushed."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def pause(self) -> None:
        """Freeze slapd (SIGSTOP): connections are accepted by the kernel, nothing answers."""
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)

    def binds(self, dn: str) -> int:
        """How many simple binds as ``dn`` slapd has logged so far."""
        needle = f'BIND dn="{dn}" method=128'
        time.sleep(0.05)  # slapd writes the stats line right after answering
        text = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
        return text.count(needle)
