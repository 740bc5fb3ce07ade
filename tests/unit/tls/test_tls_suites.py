"""Go's TLS names in OpenSSL's terms, and configuration errors for unknown ones."""

from __future__ import annotations

import pytest
from OpenSSL import SSL

from wsgate.config.dynamic import CIPHER_SUITES, CURVES, DynamicConfig
from wsgate.config.errors import ConfigError
from wsgate.config.schema import decode
from wsgate.config.sources import load_yaml
from wsgate.tls.suites import (
    CIPHER_NAMES,
    CURVE_NAMES,
    GO_DEFAULT_CIPHERS,
    choose_ciphers,
    curve_list,
)


def test_every_cipher_name_traefik_accepts_is_mapped() -> None:
    assert set(CIPHER_NAMES) == set(CIPHER_SUITES)
    assert set(CURVE_NAMES) == set(CURVES)


#: Gone from OpenSSL 3's default provider (legacy), though Traefik (Go) still accepts them.
LEGACY = ("RC4", "DES-CBC3")


@pytest.mark.parametrize("name", sorted(n for n, o in CIPHER_NAMES.items()
                                        if o is not None and not any(x in o for x in LEGACY)))
def test_mapped_ciphers_exist_in_openssl(name: str) -> None:
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_cipher_list(f"{CIPHER_NAMES[name]}:@SECLEVEL=0".encode())
    names = SSL.Connection(ctx, None).get_cipher_list()
    assert CIPHER_NAMES[name] in names


def test_default_is_gos_list_and_tls13_names_are_ignored() -> None:
    assert choose_ciphers(()).openssl == GO_DEFAULT_CIPHERS
    choice = choose_ciphers(["TLS_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                             "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
                             "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"])
    assert choice.openssl == "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305"
    assert choice.ignored == ("TLS_AES_128_GCM_SHA256",)
    assert choose_ciphers(["TLS_AES_256_GCM_SHA384"]).openssl == ""


def test_legacy_versions_lower_the_security_level() -> None:
    assert choose_ciphers((), allow_legacy_versions=True).openssl.endswith(":@SECLEVEL=0")
    assert "SECLEVEL" not in choose_ciphers(()).openssl


def test_curves_in_order_without_repeats() -> None:
    assert curve_list(["CurveP384", "x25519", "X25519", "secp384r1"]) == ["P-384", "X25519"]


@pytest.mark.parametrize(("yaml", "where"), [
    ("tls:\n  options:\n    modern:\n      cipherSuites: [TLS_NOT_A_SUITE]\n",
     "tls.options.modern.cipherSuites[0]"),
    ("tls:\n  options:\n    modern:\n      curvePreferences: [P256]\n",
     "tls.options.modern.curvePreferences[0]"),
    ("http:\n  serversTransports:\n    t:\n      cipherSuites: [AES128-SHA]\n",
     "http.serversTransports.t.cipherSuites[0]"),
    ("tls:\n  options:\n    x:\n      minVersion: VersionTLS13\n      maxVersion: VersionTLS12\n",
     "tls.options.x.minVersion"),
])
def test_unknown_names_are_configuration_errors_naming_the_option(yaml: str,
                                                                  where: str) -> None:
    with pytest.raises(ConfigError) as info:
        decode(DynamicConfig, load_yaml(yaml, "dynamic.yml"), strict=True)
    assert where in str(info.value)
