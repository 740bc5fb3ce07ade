"""Certificates and keys from the configuration: file paths or inline PEM, chains included.

A configuration value such as ``certFile`` holds either a path or the PEM text itself, as in
Traefik. It is taken as PEM when it contains a PEM header, else as a path. Problems raise
:class:`~wsgate.config.errors.ConfigError` naming the configuration key (``what``).
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from wsgate.config.errors import ConfigError

__all__ = [
    "DEFAULT_CERT_COMMON_NAME",
    "KeyPair",
    "PrivateKey",
    "certificate_names",
    "describe_certificate",
    "generate_default_key_pair",
    "is_ip_address",
    "load_ca_bundle",
    "load_key_pair",
    "make_key_pair",
    "read_pem",
]

PrivateKey = (rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
              | ed448.Ed448PrivateKey)

#: Subject of the certificate wsgate generates when the default store has none (Traefik's
#: is "TRAEFIK DEFAULT CERT").
DEFAULT_CERT_COMMON_NAME = "WSGATE DEFAULT CERT"

_PEM_MARK = "-----BEGIN "


def read_pem(value: str, what: str) -> bytes:
    """The PEM bytes of a value that is inline PEM or a path to a file holding it."""
    if _PEM_MARK in value:
        return value.encode("utf-8")
    if not value.strip():
        raise ConfigError(f"{what} is empty")
    try:
        with open(value, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {value!r}: {exc.strerror or exc}") from None
    if _PEM_MARK.encode() not in data:
        raise ConfigError(f"{what}: {value!r} holds no PEM data")
    return data


def _load_certificates(pem: bytes, what: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise ConfigError(f"{what}: invalid certificate PEM: {exc}") from None
    if not certs:
        raise ConfigError(f"{what}: no certificate found")
    return certs


def _load_key(pem: bytes, what: str) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except TypeError:
        raise ConfigError(f"{what}: encrypted private keys are not supported") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise ConfigError(f"{what}: invalid private key PEM: {exc}") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey,
                            ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        raise ConfigError(f"{what}: unsupported private key type {type(key).__name__}")
    return key


def certificate_names(cert: x509.Certificate) -> list[str]:
    """The names a certificate serves: subject CN, DNS names and IP addresses, lower-cased."""
    names: list[str] = []
    for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
        value = attr.value if isinstance(attr.value, str) else attr.value.decode("latin-1")
        names.append(value.lower())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        names.extend(n.lower() for n in san.get_values_for_type(x509.DNSName))
        names.extend(str(ip) for ip in san.get_values_for_type(x509.IPAddress))
    out: list[str] = []
    for name in names:
        if name and name not in out:
            out.append(name)
    return out


def describe_certificate(cert: x509.Certificate) -> str:
    """A short human description for logs: its names, or its subject."""
    names = certificate_names(cert)
    return ", ".join(names[:4]) + (" ..." if len(names) > 4 else "") if names else \
        cert.subject.rfc4514_string()


@dataclass(frozen=True, eq=False)
class KeyPair:
    """A certificate chain (leaf first) and the private key of its leaf."""

    chain: tuple[x509.Certificate, ...]
    key: PrivateKey
    #: Where it came from, for logs (``tls.certificates[0]@file``...).
    source: str
    names: tuple[str, ...] = field(default=())
    #: Identity of the material (sha256 of the chain and key); equal material, equal id.
    fingerprint: str = ""

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]


def _fingerprint(chain: Sequence[x509.Certificate], key: PrivateKey) -> str:
    digest = hashlib.sha256()
    for cert in chain:
        digest.update(cert.public_bytes(serialization.Encoding.DER))
    digest.update(key.private_bytes(serialization.Encoding.DER,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    return digest.hexdigest()


def _public_der(key: object) -> bytes:
    return key.public_bytes(  # type: ignore[attr-defined,no-any-return]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def make_key_pair(chain: Sequence[x509.Certificate], key: PrivateKey, source: str) -> KeyPair:
    """A KeyPair from loaded objects; the key must belong to the first certificate."""
    if _public_der(chain[0].public_key()) != _public_der(key.public_key()):
        raise ConfigError(f"{source}: the private key does not match the certificate "
                          f"({describe_certificate(chain[0])})")
    return KeyPair(tuple(chain), key, source, tuple(certificate_names(chain[0])),
                   _fingerprint(chain, key))


def load_key_pair(cert_file: str, key_file: str, source: str) -> KeyPair:
    """Load ``certFile`` (leaf then intermediates) and ``keyFile``; ``source`` names them."""
    chain = _load_certificates(read_pem(cert_file, f"{source}.certFile"), f"{source}.certFile")
    key = _load_key(read_pem(key_file, f"{source}.keyFile"), f"{source}.keyFile")
    return make_key_pair(chain, key, source)


def load_ca_bundle(values: Iterable[str], what: str) -> list[x509.Certificate]:
    """Every certificate of every value (path or PEM) of a CA list such as ``rootCAs``."""
    out: list[x509.Certificate] = []
    for i, value in enumerate(values):
        where = f"{what}[{i}]"
        out.extend(_load_certificates(read_pem(value, where), where))
    return out


def generate_default_key_pair(now: datetime.datetime | None = None) -> KeyPair:
    """A self-signed certificate for handshakes no configured certificate matches.

    Like Traefik's: RSA 2048, valid for a year, its common name saying what it is and its
    only DNS name random (``<hex>.<hex>.wsgate.default``), so that it never matches a real
    name and clients can tell it apart.
    """
    now = now or datetime.datetime.now(datetime.UTC)
    token = secrets.token_hex(32)
    domain = f"{token[:32]}.{token[32:]}.wsgate.default"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DEFAULT_CERT_COMMON_NAME)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=True,
            data_encipherment=False, key_agreement=False, key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    # The default certificate is served for unknown names only: it is not indexed by name.
    return KeyPair((cert,), key, "generated default certificate", (), _fingerprint([cert], key))


def is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True

