"""Certificates and keys from file paths or inline PEM, and the generated default."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.tlspki import PKI
from wsgate.config.errors import ConfigError
from wsgate.tls.material import (
    DEFAULT_CERT_COMMON_NAME,
    generate_default_key_pair,
    load_ca_bundle,
    load_key_pair,
    read_pem,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return PKI(tmp_path_factory.mktemp("pki"))


def test_paths_and_inline_pem_load_the_same_pair(pki: PKI) -> None:
    issued = pki.issue("both", ["both.test", "127.0.0.1"])
    from_files = load_key_pair(str(issued.cert_path), str(issued.key_path), "tls.certificates[0]")
    inline = load_key_pair(issued.cert_pem, issued.key_pem, "tls.certificates[1]")
    assert from_files.fingerprint == inline.fingerprint
    assert from_files.names == ("both.test", "127.0.0.1")


def test_a_chain_keeps_its_order(pki: PKI, tmp_path: Path) -> None:
    issued = pki.issue("leaf", ["leaf.test"])
    chained = tmp_path / "chain.pem"
    chained.write_text(issued.cert_pem + pki.ca_pem)
    pair = load_key_pair(str(chained), str(issued.key_path), "x")
    assert [c.subject for c in pair.chain] == [issued.cert.subject, pki.ca.subject]


def test_errors_name_the_key(pki: PKI, tmp_path: Path) -> None:
    issued = pki.issue("one", ["one.test"])
    other = pki.issue("two", ["two.test"])
    with pytest.raises(ConfigError, match=r"tls.certificates\[2\].certFile: cannot read"):
        load_key_pair(str(tmp_path / "missing.crt"), str(issued.key_path),
                      "tls.certificates[2]")
    with pytest.raises(ConfigError, match="does not match the certificate"):
        load_key_pair(str(issued.cert_path), str(other.key_path), "tls.certificates[0]")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not pem at all")
    with pytest.raises(ConfigError, match="holds no PEM data"):
        read_pem(str(garbage), "rootCAs[0]")
    with pytest.raises(ConfigError, match="keyFile: invalid private key"):
        load_key_pair(issued.cert_pem, issued.cert_pem, "t")


def test_ca_bundle_reads_every_certificate(pki: PKI) -> None:
    other = PKI(pki.directory / "other", "other CA")
    cas = load_ca_bundle([pki.ca_pem + other.ca_pem, str(pki.ca_path)], "rootCAs")
    assert [c.subject for c in cas] == [pki.ca.subject, other.ca.subject, pki.ca.subject]


def test_generated_default_certificate() -> None:
    pair = generate_default_key_pair()
    cert = pair.leaf
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == \
        DEFAULT_CERT_COMMON_NAME
    assert cert.issuer == cert.subject
    assert isinstance(pair.key, rsa.RSAPrivateKey) and pair.key.key_size == 2048
    (name,) = cert.extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert name.endswith(".wsgate.default") and len(name) == 32 + 1 + 32 + len(".wsgate.default")
    assert ExtendedKeyUsageOID.SERVER_AUTH in cert.extensions.get_extension_for_class(
        x509.ExtendedKeyUsage).value
    assert generate_default_key_pair().fingerprint != pair.fingerprint
