"""OpenSSL contexts for serving TLS, built from Traefik's ``tls.options``.

One context per (options, certificate), built on first use and kept until the configuration
stops naming that pair: a handshake never builds a context. A connection keeps the context it
was created with, so replacing contexts on reload does not disturb live connections.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto
from OpenSSL._util import lib as _openssl_lib  # SSL_CTX_set1_curves_list is not wrapped
from twisted.logger import Logger

from wsgate.config.dynamic import TLSOptions
from wsgate.config.errors import ConfigError
from wsgate.tls.material import KeyPair, load_ca_bundle
from wsgate.tls.suites import (
    CIPHER_NAMES,
    TLS_VERSIONS,
    CipherChoice,
    choose_ciphers,
    curve_list,
)

__all__ = [
    "SERVED_ALPN",
    "ResolvedOptions",
    "build_server_context",
    "resolve_options",
]

log = Logger()

#: Application protocols wsgate speaks over TLS; HTTP/2 joins once it is implemented.
SERVED_ALPN = ("http/1.1",)

_BASE_OPTIONS = (SSL.OP_NO_COMPRESSION | SSL.OP_CIPHER_SERVER_PREFERENCE
                 | SSL.OP_NO_RENEGOTIATION | SSL.OP_SINGLE_ECDH_USE)
_TLS13 = TLS_VERSIONS["VersionTLS13"]


@dataclass(frozen=True, eq=False)
class ResolvedOptions:
    """A ``tls.options`` entry with its files read and its names translated for OpenSSL.

    ``problem`` is set when the options cannot be used (a CA file that cannot be read, no
    cipher left): connections that would use them are refused, as Traefik refuses the
    handshakes of routers whose options are broken.
    """

    name: str
    options: TLSOptions
    client_cas: tuple[x509.Certificate, ...] = ()
    ciphers: CipherChoice | None = None
    curves: tuple[str, ...] = ()
    alpn: tuple[bytes, ...] = ()
    problem: str = ""
    #: Equal keys, interchangeable contexts (the options and the CA material they read).
    key: tuple[object, ...] = ()


_CURVE_SUPPORT: dict[str, bool] = {}
_CIPHER_SUPPORT: dict[str, bool] = {}


def _cipher_available(openssl_name: str | None) -> bool:
    """Whether the linked OpenSSL offers a TLS 1.2 cipher (3DES and RC4 are often gone).

    None (a TLS 1.3 suite or a signal) has nothing to offer and nothing to miss: True.
    """
    if openssl_name is None:
        return True
    known = _CIPHER_SUPPORT.get(openssl_name)
    if known is None:
        scratch = SSL.Context(SSL.TLS_METHOD)
        try:
            scratch.set_cipher_list(f"{openssl_name}:@SECLEVEL=0".encode("ascii"))
        except SSL.Error:
            known = False
        else:
            known = openssl_name in SSL.Connection(scratch, None).get_cipher_list()
        _CIPHER_SUPPORT[openssl_name] = known
    return known


def _curve_supported(group: str) -> bool:
    """Whether the linked OpenSSL knows a group (the ML-KEM hybrids need OpenSSL 3.5)."""
    known = _CURVE_SUPPORT.get(group)
    if known is None:
        scratch = SSL.Context(SSL.TLS_SERVER_METHOD)
        known = _set_curves(scratch, [group])
        _CURVE_SUPPORT[group] = known
    return known


def _set_curves(ctx: SSL.Context, groups: Sequence[str]) -> bool:
    ok = _openssl_lib.SSL_CTX_set1_curves_list(ctx._context, ":".join(groups).encode("ascii"))
    if ok != 1:
        # A failed call leaves an error on OpenSSL's queue; clear it so that it is not
        # reported against an unrelated later call.
        _openssl_lib.ERR_clear_error()
    return bool(ok == 1)


def resolve_options(name: str, options: TLSOptions) -> ResolvedOptions:
    """Read what the options name (CA files) and check what OpenSSL can do with them."""
    what = f"tls.options.{name}"
    try:
        cas = tuple(load_ca_bundle(options.client_auth.ca_files, f"{what}.clientAuth.caFiles"))
    except ConfigError as exc:
        return ResolvedOptions(name, options, problem=str(exc))
    legacy = TLS_VERSIONS[options.min_version] < TLS_VERSIONS["VersionTLS12"]
    suites = options.cipher_suites
    missing = [n for n in suites if not _cipher_available(CIPHER_NAMES[n])]
    if missing:
        log.warn("{what}.cipherSuites: {names} not available in the linked OpenSSL; left out",
                 what=what, names=", ".join(missing))
        suites = tuple(n for n in suites if n not in missing)
        if not suites:
            return ResolvedOptions(name, options, problem=(
                f"{what}.cipherSuites: none of the listed suites is available in the linked "
                "OpenSSL"))
    ciphers = choose_ciphers(suites, allow_legacy_versions=legacy)
    if ciphers.ignored:
        log.info("{what}.cipherSuites: {names} are TLS 1.3 suites or signals, which cannot be "
                 "chosen (TLS 1.3 always offers its three suites, as in Traefik)",
                 what=what, names=", ".join(ciphers.ignored))
    max_version = TLS_VERSIONS.get(options.max_version, 0)
    if not ciphers.openssl and max_version and max_version < _TLS13:
        return ResolvedOptions(name, options, problem=(
            f"{what}: cipherSuites names no TLS 1.0-1.2 cipher and maxVersion "
            f"{options.max_version} excludes TLS 1.3: no handshake can succeed"))
    curves: list[str] = []
    for group in curve_list(options.curve_preferences):
        if _curve_supported(group):
            curves.append(group)
        else:
            log.warn("{what}.curvePreferences: {group} is not supported by the linked "
                     "OpenSSL; left out", what=what, group=group)
    if options.curve_preferences and not curves:
        log.warn("{what}.curvePreferences: no listed curve is supported; OpenSSL's default "
                 "curves are used", what=what)
    alpn = tuple(p.encode("latin-1") for p in options.alpn_protocols if p in SERVED_ALPN)
    dropped = [p for p in options.alpn_protocols if p not in SERVED_ALPN]
    if dropped and not alpn:
        log.warn("{what}.alpnProtocols: wsgate serves none of {names} (it speaks {served}); "
                 "no ALPN protocol is negotiated", what=what, names=", ".join(dropped),
                 served=", ".join(SERVED_ALPN))
    key = (options, tuple(c.public_bytes(serialization.Encoding.DER) for c in cas))
    return ResolvedOptions(name, options, cas, ciphers, tuple(curves), alpn, key=key)


def _accept_any_certificate(conn: SSL.Connection, cert: crypto.X509, errno: int, depth: int,
                            ok: int) -> bool:
    """RequestClientCert and RequireAnyClientCert: a certificate is asked for, not checked."""
    return True


def _alpn_selector(served: tuple[bytes, ...]) -> Callable[[SSL.Connection, list[bytes]], bytes]:
    def select(conn: SSL.Connection, offered: list[bytes]) -> bytes:
        for protocol in served:
            if protocol in offered:
                return protocol
        # As Go's server: no protocol in common is a fatal no_application_protocol alert
        # (raised here, reported by pyOpenSSL after the handshake step).
        raise SSL.Error(f"no application protocol in common (client offered "
                        f"{b', '.join(offered).decode('latin-1')})")
    return select


def _session_id_context(resolved: ResolvedOptions, pair: KeyPair | None) -> bytes:
    """Sessions resume only within the context (options and certificate) that made them."""
    digest = hashlib.sha256(repr(resolved.key).encode("utf-8", "backslashreplace"))
    digest.update((pair.fingerprint if pair is not None else "none").encode("ascii"))
    return digest.digest()[:32]


def build_server_context(resolved: ResolvedOptions, pair: KeyPair | None) -> SSL.Context:
    """A server context for ``resolved`` options serving ``pair``.

    ``pair`` None builds a context with no certificate: every handshake on it fails with a
    handshake_failure alert (used to refuse a name under ``sniStrict``).
    """
    if resolved.problem or resolved.ciphers is None:
        raise ConfigError(resolved.problem or f"tls.options.{resolved.name} is not resolved")
    options = resolved.options
    ctx = SSL.Context(SSL.TLS_SERVER_METHOD)
    flags = _BASE_OPTIONS
    if options.disable_session_tickets:
        flags |= SSL.OP_NO_TICKET
    ctx.set_options(flags)
    # An idle connection gives its 2 x 16 KiB record buffers back to the allocator.
    ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)
    min_version = TLS_VERSIONS[options.min_version]
    if not resolved.ciphers.openssl:
        min_version = max(min_version, _TLS13)
    ctx.set_min_proto_version(min_version)
    ctx.set_max_proto_version(TLS_VERSIONS.get(options.max_version, 0))
    if resolved.ciphers.openssl:
        try:
            ctx.set_cipher_list(resolved.ciphers.openssl.encode("ascii"))
        except SSL.Error:
            raise ConfigError(f"tls.options.{resolved.name}.cipherSuites: none of the listed "
                              "suites is available in the linked OpenSSL") from None
    if resolved.curves and not _set_curves(ctx, resolved.curves):
        raise ConfigError(f"tls.options.{resolved.name}.curvePreferences: OpenSSL refused "
                          f"{':'.join(resolved.curves)}")
    ctx.set_session_id(_session_id_context(resolved, pair))
    _client_auth(ctx, resolved)
    if resolved.alpn:
        ctx.set_alpn_select_callback(_alpn_selector(resolved.alpn))
    if pair is not None:
        ctx.use_certificate(pair.leaf)
        for extra in pair.chain[1:]:
            ctx.add_extra_chain_cert(extra)
        ctx.use_privatekey(pair.key)
        ctx.check_privatekey()
    return ctx


def _client_auth(ctx: SSL.Context, resolved: ResolvedOptions) -> None:
    kind = resolved.options.client_auth.effective_type
    for ca in resolved.client_cas:
        ctx.add_client_ca(ca)  # named in the CertificateRequest
    if kind == "NoClientCert":
        return
    if kind == "RequestClientCert":
        ctx.set_verify(SSL.VERIFY_PEER, _accept_any_certificate)
    elif kind == "RequireAnyClientCert":
        ctx.set_verify(SSL.VERIFY_PEER | SSL.VERIFY_FAIL_IF_NO_PEER_CERT,
                       _accept_any_certificate)
    else:
        store = ctx.get_cert_store()
        assert store is not None
        for ca in resolved.client_cas:
            store.add_cert(crypto.X509.from_cryptography(ca))
        mode = SSL.VERIFY_PEER
        if kind == "RequireAndVerifyClientCert":
            mode |= SSL.VERIFY_FAIL_IF_NO_PEER_CERT
        ctx.set_verify(mode, None)
