"""Traefik's (Go's) names for TLS versions, cipher suites and curves, in OpenSSL's terms.

Sans-I/O. Go configures TLS 1.0-1.2 cipher suites only: the TLS 1.3 suites are always the
three standard ones and cannot be chosen. OpenSSL behaves the same way when the TLS 1.2 list
is set with ``set_cipher_list`` and the TLS 1.3 list is left alone, so a TLS 1.3 name in
``cipherSuites`` is accepted and has no effect, as in Traefik.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "CIPHER_NAMES",
    "CURVE_NAMES",
    "GO_DEFAULT_CIPHERS",
    "TLS_VERSIONS",
    "CipherChoice",
    "choose_ciphers",
    "curve_list",
]

#: Protocol version numbers, as OpenSSL's SSL_CTX_set_{min,max}_proto_version take them.
TLS_VERSIONS = {
    "VersionTLS10": 0x0301,
    "VersionTLS11": 0x0302,
    "VersionTLS12": 0x0303,
    "VersionTLS13": 0x0304,
}

#: Go cipher suite name -> OpenSSL name; None for names that are not TLS 1.0-1.2 ciphers
#: (the TLS 1.3 suites, always on, and TLS_FALLBACK_SCSV, a signal rather than a cipher).
CIPHER_NAMES: dict[str, str | None] = {
    "TLS_RSA_WITH_RC4_128_SHA": "RC4-SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": "DES-CBC3-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA": "ECDHE-ECDSA-RC4-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA": "ECDHE-RSA-RC4-SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA": "ECDHE-RSA-DES-CBC3-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_AES_128_GCM_SHA256": None,
    "TLS_AES_256_GCM_SHA384": None,
    "TLS_CHACHA20_POLY1305_SHA256": None,
    "TLS_FALLBACK_SCSV": None,
}

#: Go's default TLS 1.2 suites (crypto/tls, Go 1.22 and later: ECDHE only, no 3DES or RC4),
#: used when ``cipherSuites`` is empty so that wsgate offers what Traefik offers.
GO_DEFAULT_CIPHERS = ":".join((
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-SHA", "ECDHE-RSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA", "ECDHE-RSA-AES256-SHA",
))

#: Go/RFC 8446 curve name -> OpenSSL group name.
CURVE_NAMES = {
    "secp256r1": "P-256", "CurveP256": "P-256",
    "secp384r1": "P-384", "CurveP384": "P-384",
    "secp521r1": "P-521", "CurveP521": "P-521",
    "x25519": "X25519", "X25519": "X25519",
    "x25519mlkem768": "X25519MLKEM768", "X25519MLKEM768": "X25519MLKEM768",
    "secp256r1mlkem768": "SecP256r1MLKEM768", "SecP256r1MLKEM768": "SecP256r1MLKEM768",
    "secp384r1mlkem1024": "SecP384r1MLKEM1024", "SecP384r1MLKEM1024": "SecP384r1MLKEM1024",
}


@dataclass(frozen=True)
class CipherChoice:
    """An OpenSSL cipher string for a configured ``cipherSuites`` list.

    ``ignored`` are the configured names with no TLS 1.0-1.2 meaning (TLS 1.3 suites,
    TLS_FALLBACK_SCSV). An empty ``openssl`` means that no TLS 1.2 cipher was asked for:
    only TLS 1.3 can be negotiated.
    """

    openssl: str
    ignored: tuple[str, ...] = ()


def choose_ciphers(names: Iterable[str], *, allow_legacy_versions: bool = False) -> CipherChoice:
    """The OpenSSL cipher string for Go names (already validated by the configuration model).

    With ``allow_legacy_versions`` (a minVersion below TLS 1.2), OpenSSL's security level is
    lowered to 0: OpenSSL 3 refuses TLS 1.0 and 1.1 at any higher level, while Go allows them
    when asked to.
    """
    names = tuple(names)
    suffix = ":@SECLEVEL=0" if allow_legacy_versions else ""
    if not names:
        return CipherChoice(GO_DEFAULT_CIPHERS + suffix)
    chosen: list[str] = []
    ignored: list[str] = []
    for name in names:
        openssl = CIPHER_NAMES[name]
        if openssl is None:
            ignored.append(name)
        elif openssl not in chosen:
            chosen.append(openssl)
    return CipherChoice(":".join(chosen) + (suffix if chosen else ""), tuple(ignored))


def curve_list(names: Iterable[str]) -> list[str]:
    """OpenSSL group names for Go curve names, in order, without repeats."""
    out: list[str] = []
    for name in names:
        group = CURVE_NAMES[name]
        if group not in out:
            out.append(group)
    return out
