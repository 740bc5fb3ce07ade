"""A throwaway PKI for TLS tests: a CA, server and client certificates, and bad ones.

Everything is made with ``cryptography`` (EC P-256 keys: fast to generate) and written as PEM
files under a test's directory. Nothing here is trusted outside the test that made it.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, as objects, PEM text and files."""

    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_path: Path
    key_path: Path
    #: The chain written in cert_path (leaf first), for certificates under an intermediate.
    chain: tuple[x509.Certificate, ...] = ()

    @property
    def cert_pem(self) -> str:
        return self.cert_path.read_text()

    @property
    def key_pem(self) -> str:
        return self.key_path.read_text()


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        if name.startswith(("spiffe://", "urn:", "https://")):
            entries.append(x509.UniformResourceIdentifier(name))
            continue
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


class PKI:
    """A CA that issues certificates into ``directory``; ``other`` makes an unrelated CA."""

    def __init__(self, directory: Path, name: str = "wsgate test CA") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.ca_key = _key()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.ca = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(subject)
            .public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - DAY).not_valid_after(NOW + 30 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(self.ca_key, hashes.SHA256())
        )
        slug = name.replace(" ", "-")
        self.ca_path = directory / f"{slug}.pem"
        self.ca_path.write_bytes(self.ca.public_bytes(serialization.Encoding.PEM))

    @property
    def ca_pem(self) -> str:
        return self.ca_path.read_text()

    def issue(self, filename: str, names: list[str], *, common_name: str | None = None,
              not_before: datetime.datetime | None = None,
              not_after: datetime.datetime | None = None, client: bool = False,
              self_signed: bool = False) -> Issued:
        key = _key()
        subject = x509.Name([x509.NameAttribute(
            NameOID.COMMON_NAME, common_name or (names[0] if names else filename))])
        issuer = subject if self_signed else self.ca.subject
        signer = key if self_signed else self.ca_key
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject).issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or NOW - DAY)
            .not_valid_after(not_after or NOW + 10 * DAY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]),
                critical=False)
        )
        if names:
            builder = builder.add_extension(_san(names), critical=False)
        cert = builder.sign(signer, hashes.SHA256())
        cert_path = self.directory / f"{filename}.crt"
        key_path = self.directory / f"{filename}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return Issued(cert, key, cert_path, key_path, (cert,))

    def expired(self, filename: str, names: list[str]) -> Issued:
        return self.issue(filename, names, not_before=NOW - 10 * DAY, not_after=NOW - DAY)

    def self_signed(self, filename: str, names: list[str]) -> Issued:
        return self.issue(filename, names, self_signed=True)

    # -- clients --------------------------------------------------------------------------------
    def client_context(self, *, cert: Issued | None = None,
                       alpn: list[str] | None = None) -> ssl.SSLContext:
        """A client context that trusts only this CA (and presents ``cert`` if given)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cafile=str(self.ca_path))
        if cert is not None:
            ctx.load_cert_chain(str(cert.cert_path), str(cert.key_path))
        if alpn:
            ctx.set_alpn_protocols(alpn)
        return ctx

    def server_context(self, issued: Issued, *, alpn: list[str] | None = None,
                       client_ca: PKI | None = None) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(issued.cert_path), str(issued.key_path))
        if alpn:
            ctx.set_alpn_protocols(alpn)
        if client_ca is not None:
            ctx.load_verify_locations(cafile=str(client_ca.ca_path))
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx


def peer_names(sock: ssl.SSLSocket | ssl.SSLObject) -> list[str]:
    """The DNS names of the certificate a TLS peer presented (checked or not)."""
    der = sock.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [*san.get_values_for_type(x509.DNSName),
            *(str(ip) for ip in san.get_values_for_type(x509.IPAddress))]


def peer_common_name(sock: ssl.SSLSocket | ssl.SSLObject) -> str:
    der = sock.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


# -- in-memory handshakes (no sockets) ------------------------------------------------------------

@dataclass
class Handshake:
    """The outcome of an in-memory handshake between a Python ssl client and an OpenSSL
    server connection."""

    ok: bool
    client: ssl.SSLObject
    server: object
    error: str = ""

    @property
    def server_names(self) -> list[str]:
        return peer_names(self.client)

    @property
    def server_common_name(self) -> str:
        return peer_common_name(self.client)


def client_hello(client_ctx: ssl.SSLContext, server_hostname: str | None) -> bytes:
    """The first flight a Python ssl client sends (its ClientHello records)."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_ctx.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def handshake(server_ctx: object, client_ctx: ssl.SSLContext, server_hostname: str | None,
              *, exchange: bytes = b"ping") -> Handshake:
    """Run a full handshake (and one application record each way) in memory.

    ``server_ctx`` is an ``OpenSSL.SSL.Context``; its errors and the client's end the
    handshake and are reported in ``error``.
    """
    from OpenSSL import SSL

    server = SSL.Connection(server_ctx, None)  # type: ignore[arg-type]
    server.set_accept_state()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(incoming, outgoing, server_hostname=server_hostname)
    client_done = server_done = False
    error = ""
    for _ in range(50):
        if not client_done:
            try:
                client.do_handshake()
                client_done = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as exc:
                error = f"client: {exc}"
        data = outgoing.read()
        if data:
            server.bio_write(data)
        if not server_done:
            try:
                server.do_handshake()
                server_done = True
            except SSL.WantReadError:
                pass
            except SSL.Error as exc:
                error = error or f"server: {exc}"
        try:
            back = server.bio_read(65536)
        except SSL.WantReadError:
            back = b""
        if back:
            incoming.write(back)
        if error and not back and not data:
            break
        if client_done and server_done:
            break
    ok = client_done and server_done and not error
    if ok:
        # TLS 1.3 only confirms a client certificate after the handshake: exchange data.
        try:
            client.write(exchange)
            server.bio_write(outgoing.read())
            got = server.recv(1024)
            assert got == exchange
            server.send(exchange)
            incoming.write(server.bio_read(65536))
            assert client.read(1024) == exchange
        except (ssl.SSLError, SSL.Error) as exc:
            ok, error = False, f"after handshake: {exc}"
            try:
                incoming.write(server.bio_read(65536))
                client.read(1024)
            except (ssl.SSLError, SSL.Error) as late:
                error += f"; client: {late}"
    return Handshake(ok, client, server, error)
