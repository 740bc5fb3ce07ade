"""TLS to backends: one client context per serversTransport, verification per connection.

Verification is on unless a transport sets ``insecureSkipVerify``: the chain must lead to the
transport's ``rootCAs`` (else the system trust store), and the certificate must be valid for
``serverName`` or the server URL's host (a DNS name, or an IP address checked against IP
SANs). ``peerCertSANs`` (and the deprecated ``peerCertURI``) replace the host check with
"the certificate carries one of these SANs". Only HTTP/1.1 is offered over ALPN: a backend
that also speaks h2 still gets the WebSocket upgrade it expects.

A verification failure aborts the connection before any request byte is written, with an
:class:`~wsgate.proxy.errors.UpstreamError` that says why (expired, unknown authority,
self-signed, wrong host) and names the backend; the exchange answers 502 and logs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from OpenSSL import SSL, crypto
from OpenSSL._util import ffi as _openssl_ffi
from OpenSSL._util import lib as _openssl_lib
from service_identity.cryptography import (
    verify_certificate_hostname,
    verify_certificate_ip_address,
)
from service_identity.exceptions import CertificateError, VerificationError
from twisted.internet.interfaces import IOpenSSLClientConnectionCreator
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from wsgate.config.dynamic import Certificate
from wsgate.config.errors import ConfigError
from wsgate.proxy.errors import UpstreamError
from wsgate.tls.material import (
    certificate_names,
    describe_certificate,
    is_ip_address,
    load_ca_bundle,
    load_key_pair,
)
from wsgate.tls.suites import TLS_VERSIONS, choose_ciphers

__all__ = ["BackendTLS", "ClientTLSSettings", "build_client_context"]

log = Logger()

#: What the backend leg speaks; a backend offering h2 as well must pick this.
CLIENT_ALPN = (b"http/1.1",)
#: Go's client default.
DEFAULT_CLIENT_MIN_VERSION = "VersionTLS12"

# X509_V_ERR_* codes worth a plainer explanation than OpenSSL's text.
_EXPIRED = 10
_NOT_YET_VALID = 9
_SELF_SIGNED_LEAF = 18
_SELF_SIGNED_IN_CHAIN = 19
_UNKNOWN_ISSUER = frozenset({2, 20, 21})


@dataclass(frozen=True)
class PeerSAN:
    type: str
    value: str


@dataclass(frozen=True)
class ClientTLSSettings:
    """The TLS part of a serversTransport (dynamic, or the static one as default@internal)."""

    transport: str
    server_name: str = ""
    insecure_skip_verify: bool = False
    root_cas: tuple[str, ...] = ()
    certificates: tuple[Certificate, ...] = ()
    cipher_suites: tuple[str, ...] = ()
    min_version: str = ""
    max_version: str = ""
    peer_sans: tuple[PeerSAN, ...] = ()
    spiffe: bool = False

    @classmethod
    def from_transport(cls, name: str, config: Any) -> ClientTLSSettings:
        sans = [PeerSAN(s.type, s.value) for s in getattr(config, "peer_cert_sans", ())]
        uri = getattr(config, "peer_cert_uri", "")
        if uri:
            sans.append(PeerSAN("URI", uri))
        return cls(
            transport=name,
            server_name=getattr(config, "server_name", ""),
            insecure_skip_verify=bool(config.insecure_skip_verify),
            root_cas=tuple(config.root_cas),
            certificates=tuple(getattr(config, "certificates", ())),
            cipher_suites=tuple(getattr(config, "cipher_suites", ())),
            min_version=getattr(config, "min_version", ""),
            max_version=getattr(config, "max_version", ""),
            peer_sans=tuple(sans),
            spiffe=getattr(config, "spiffe", None) is not None,
        )


def build_client_context(settings: ClientTLSSettings) -> SSL.Context:
    """The client context of a transport; raises ConfigError naming the bad setting."""
    what = f"serversTransport {settings.transport}"
    if settings.spiffe:
        raise ConfigError(f"{what}: spiffe is not supported by wsgate")
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION)
    ctx.set_mode(SSL.MODE_RELEASE_BUFFERS)
    min_name = settings.min_version or DEFAULT_CLIENT_MIN_VERSION
    ctx.set_min_proto_version(TLS_VERSIONS[min_name])
    ctx.set_max_proto_version(TLS_VERSIONS.get(settings.max_version, 0))
    ciphers = choose_ciphers(settings.cipher_suites,
                             allow_legacy_versions=TLS_VERSIONS[min_name] < 0x0303)
    if ciphers.openssl:
        try:
            ctx.set_cipher_list(ciphers.openssl.encode("ascii"))
        except SSL.Error:
            raise ConfigError(f"{what}: none of cipherSuites is available in the linked "
                              "OpenSSL") from None
    elif TLS_VERSIONS.get(settings.max_version, 0x0304) < 0x0304:
        raise ConfigError(f"{what}: cipherSuites names no TLS 1.0-1.2 cipher and maxVersion "
                          f"{settings.max_version} excludes TLS 1.3")
    else:
        ctx.set_min_proto_version(0x0304)
    ctx.set_alpn_protos(list(CLIENT_ALPN))
    if settings.root_cas:
        store = ctx.get_cert_store()
        assert store is not None
        for ca in load_ca_bundle(settings.root_cas, f"{what}.rootCAs"):
            store.add_cert(crypto.X509.from_cryptography(ca))
    elif not settings.insecure_skip_verify:
        ctx.set_default_verify_paths()
    if settings.certificates:
        if len(settings.certificates) > 1:
            log.warn("{what}: only the first of {n} client certificates is presented",
                     what=what, n=len(settings.certificates))
        first = settings.certificates[0]
        pair = load_key_pair(first.cert_file, first.key_file, f"{what}.certificates[0]")
        ctx.use_certificate(pair.leaf)
        for extra in pair.chain[1:]:
            ctx.add_extra_chain_cert(extra)
        ctx.use_privatekey(pair.key)
        ctx.check_privatekey()
    return ctx


class BackendTLS:
    """The client TLS of one serversTransport; its context is built on first use.

    Building lazily keeps transports that never reach an https server from loading the
    system trust store (hundreds of certificates) into memory.
    """

    def __init__(self, settings: ClientTLSSettings) -> None:
        self.settings = settings
        self._context: SSL.Context | None = None
        self._problem = ""
        self._creators: dict[tuple[str, int], _ClientConnectionCreator] = {}
        if settings.insecure_skip_verify:
            log.warn("serversTransport {name}: insecureSkipVerify is set: backend TLS "
                     "certificates are not verified for services using it",
                     name=settings.transport)

    def context(self) -> tuple[SSL.Context, str]:
        """The context, and the configuration problem that makes it unusable (if any)."""
        if self._context is None:
            try:
                self._context = build_client_context(self.settings)
            except ConfigError as exc:
                self._problem = str(exc)
                log.error("{problem}; TLS connections over this transport fail with 502",
                          problem=self._problem)
                self._context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        return self._context, self._problem

    def creator_for(self, host: str, port: int) -> IOpenSSLClientConnectionCreator:
        """What connectSSL needs to reach ``host:port`` over this transport."""
        key = (host, port)
        creator = self._creators.get(key)
        if creator is None:
            creator = _ClientConnectionCreator(self, host, port)
            self._creators[key] = creator
        return creator


@implementer(IOpenSSLClientConnectionCreator)
class _ClientConnectionCreator:
    def __init__(self, tls: BackendTLS, host: str, port: int) -> None:
        self.tls = tls
        settings = tls.settings
        self.expected = settings.server_name or host
        self.expected_is_ip = is_ip_address(self.expected)
        # RFC 6066: SNI carries DNS names only.
        self.sni = None if self.expected_is_ip else self.expected.encode("idna")
        shown_host = f"[{host}]" if ":" in host else host
        self.backend = f"{shown_host}:{port}"

    def clientConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        context, problem = self.tls.context()
        connection = SSL.Connection(context, None)
        if self.sni is not None:
            connection.set_tlsext_host_name(self.sni)
        connection.set_verify(SSL.VERIFY_PEER, _Verifier(self, tlsProtocol, problem))
        return connection


class _Verifier:
    """The verify callback of one backend connection: decides, and says why it refused."""

    __slots__ = ("creator", "problem", "protocol")

    def __init__(self, creator: _ClientConnectionCreator, protocol: Any, problem: str) -> None:
        self.creator = creator
        self.protocol = protocol
        self.problem = problem

    def __call__(self, conn: SSL.Connection, cert: crypto.X509, errno: int, depth: int,
                 ok: int) -> bool:
        settings = self.creator.tls.settings
        if self.problem:
            return self._fail(self.problem)
        if not ok and not settings.insecure_skip_verify:
            return self._fail(_chain_error(errno, depth, cert.to_cryptography()))
        if depth == 0:
            leaf = cert.to_cryptography()
            if settings.peer_sans:
                missing = _peer_sans_problem(leaf, settings.peer_sans)
                if missing:
                    return self._fail(missing)
            elif not settings.insecure_skip_verify:
                wrong = _host_problem(leaf, self.creator.expected, self.creator.expected_is_ip)
                if wrong:
                    return self._fail(wrong)
            self.protocol = None
        return True

    def _fail(self, reason: str) -> bool:
        protocol, self.protocol = self.protocol, None
        if protocol is not None:
            error = UpstreamError(502, f"TLS verification failed: {reason}",
                                  backend=self.creator.backend)
            protocol.failVerification(Failure(error))
        return False


def _chain_error(errno: int, depth: int, cert: x509.Certificate) -> str:
    where = f"[{describe_certificate(cert)}]" if depth == 0 else \
        f"[chain depth {depth}: {cert.subject.rfc4514_string()}]"
    if errno == _EXPIRED:
        return (f"certificate has expired (notAfter "
                f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M:%S} UTC) {where}")
    if errno == _NOT_YET_VALID:
        return (f"certificate is not yet valid (notBefore "
                f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M:%S} UTC) {where}")
    if errno == _SELF_SIGNED_LEAF:
        return f"self-signed certificate, not issued by a trusted authority {where}"
    if errno == _SELF_SIGNED_IN_CHAIN:
        return f"self-signed certificate in the chain, not a trusted authority {where}"
    if errno in _UNKNOWN_ISSUER:
        return (f"unknown certificate authority (issuer "
                f"{cert.issuer.rfc4514_string()} is not trusted) {where}")
    text = _openssl_ffi.string(_openssl_lib.X509_verify_cert_error_string(errno))
    return f"{text.decode('ascii', 'replace')} (X509 error {errno}) {where}"


def _host_problem(leaf: x509.Certificate, expected: str, is_ip: bool) -> str:
    try:
        if is_ip:
            verify_certificate_ip_address(leaf, expected.strip("[]"))
        else:
            verify_certificate_hostname(leaf, expected)
    except (VerificationError, CertificateError):
        names = ", ".join(certificate_names(leaf)) or leaf.subject.rfc4514_string()
        return f"wrong host: the certificate is for {names}, not {expected}"
    return ""


def _peer_sans_problem(leaf: x509.Certificate, wanted: Sequence[PeerSAN]) -> str:
    for san in wanted:
        if san.type == "URI":
            uris = _uris(leaf)
            if any(u.lower() == san.value.lower() for u in uris):
                return ""
        else:
            try:
                verify_certificate_hostname(leaf, san.value)
            except (VerificationError, CertificateError):
                continue
            return ""
    shown = ", ".join(f"{s.type}:{s.value}" for s in wanted)
    names = ", ".join(certificate_names(leaf) + _uris(leaf)) or "no SAN"
    return f"the certificate carries none of peerCertSANs ({shown}); it has {names}"


def _uris(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return list(san.get_values_for_type(x509.UniformResourceIdentifier))
