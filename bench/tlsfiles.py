"""Throwaway TLS material for bench/run.py: a CA, a server certificate signed by it, and an
OpenSSL configuration that pins the TLS 1.3 cipher suite of the bench's own processes.

Made fresh for every run in the run's temporary directory and trusted by nothing else. EC
P-256 keys, like most certificates served today (and quick to generate). The server
certificate names 127.0.0.1 (IP SAN, checked by the client, Traefik and wsgate, which all
connect to the address) and localhost (DNS SAN, checked by nginx: its ``proxy_ssl_name``
verification matches DNS names only).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NAMES = ("127.0.0.1", "localhost")


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    cert: Path
    key: Path
    #: OPENSSL_CONF for the client and backend processes; None leaves OpenSSL's defaults
    openssl_conf: Path | None


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def make_tls_files(directory: Path, tls13_suites: str) -> TlsFiles:
    """Write ca.pem, server.pem, server-key.pem (and openssl.cnf when ``tls13_suites``)."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder()
          .subject_name(_name("wsgate bench CA")).issuer_name(_name("wsgate bench CA"))
          .public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(
              digital_signature=True, content_commitment=False, key_encipherment=False,
              data_encipherment=False, key_agreement=False, key_cert_sign=True,
              crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for n in NAMES:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    cert = (x509.CertificateBuilder()
            .subject_name(_name(NAMES[0])).issuer_name(ca.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_path, cert_path, key_path = (directory / "ca.pem", directory / "server.pem",
                                    directory / "server-key.pem")
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(_pem_key(key))
    key_path.chmod(0o600)
    conf = None
    if tls13_suites:
        # Python 3.11's ssl cannot set TLS 1.3 suites; OpenSSL's system_default section
        # applies to every SSL_CTX the process makes (and replaces /etc/ssl/openssl.cnf).
        conf = directory / "openssl.cnf"
        conf.write_text("openssl_conf = openssl_init\n[openssl_init]\nssl_conf = ssl_sect\n"
                        "[ssl_sect]\nsystem_default = system_default_sect\n"
                        f"[system_default_sect]\nCiphersuites = {tls13_suites}\n")
    return TlsFiles(ca_path, cert_path, key_path, conf)
