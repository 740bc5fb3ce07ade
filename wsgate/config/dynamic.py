"""The dynamic configuration (routing) model: what one provider says about routers, services,
middlewares, servers transports and TLS, with Traefik's key names and defaults.

One provider's configuration is decoded into :class:`DynamicConfig` with
:func:`wsgate.config.schema.decode`; :mod:`wsgate.config.runtime` then merges the
configurations of every provider, qualifies names (``name@provider``) and checks references.

Checks made here are the ones that need nothing but the object itself (a server URL that does
not parse, a service with two kinds, an unknown TLS version). Checks across objects (a router
naming a missing service) belong to the runtime, which disables only the object concerned.

wsgate's own keys, which Traefik lacks, live in one ``wsgate`` section inside a router and
inside a ``loadBalancer`` service (declared with ``wsgate=True``), plus the ``websocket``
health-check mode.
"""

# ruff: noqa: RUF009  (key() is this package's dataclass field specifier)
from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, Mapping
from urllib.parse import urlsplit

from wsgate.config.schema import Duration, RawValue, frozen_map, key

Problems = Iterator[tuple[str, str]]

#: Traefik refuses priorities above this for user routers (MaxInt - 1000 on 64 bits).
MAX_USER_PRIORITY = 2**63 - 1 - 1000

SERVER_SCHEMES = ("http", "https", "h2c")

TLSVersion = Literal["VersionTLS10", "VersionTLS11", "VersionTLS12", "VersionTLS13"]
OptionalTLSVersion = Literal["", "VersionTLS10", "VersionTLS11", "VersionTLS12", "VersionTLS13"]
_TLS_VERSION_ORDER = {"VersionTLS10": 10, "VersionTLS11": 11, "VersionTLS12": 12,
                      "VersionTLS13": 13}

#: Cipher suite names Traefik accepts (Go's crypto/tls names).
CIPHER_SUITES = frozenset({
    "TLS_RSA_WITH_RC4_128_SHA", "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA", "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256", "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA", "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_FALLBACK_SCSV",
})

#: Curve names Traefik accepts (Go names and RFC 8446 names).
CURVES = frozenset({
    "secp256r1", "CurveP256", "secp384r1", "CurveP384", "secp521r1", "CurveP521",
    "x25519", "X25519", "x25519mlkem768", "X25519MLKEM768", "secp256r1mlkem768",
    "SecP256r1MLKEM768", "secp384r1mlkem1024", "SecP384r1MLKEM1024",
})


def _check_ciphers(names: tuple[str, ...], key_name: str = "cipherSuites") -> Problems:
    for i, name in enumerate(names):
        if name not in CIPHER_SUITES:
            yield f"{key_name}[{i}]", f"unknown cipher suite {name!r}"


def _check_versions(min_version: str, max_version: str) -> Problems:
    if min_version and max_version and \
            _TLS_VERSION_ORDER[min_version] > _TLS_VERSION_ORDER[max_version]:
        yield "minVersion", (f"TLS minimum version {min_version} is above the maximum "
                             f"version {max_version}")


def _check_not_negative(**values: float) -> Problems:
    for name, value in values.items():
        if value < 0:
            yield name, f"must not be negative (got {value})"


def server_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a server address (scheme http/https/h2c, a host, a port)."""
    if not url:
        return "a server needs a url"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return f"invalid server URL {url!r}: {exc}"
    if parts.scheme.lower() not in SERVER_SCHEMES:
        shown = repr(parts.scheme) if parts.scheme else "none"
        return (f"invalid server URL {url!r}: the scheme must be http, https or h2c "
                f"(got {shown})")
    if not parts.hostname:
        return f"invalid server URL {url!r}: no host"
    if port is not None and port == 0:
        return f"invalid server URL {url!r}: port 0"
    return None


# =========================================================================== shared pieces

@dataclass(frozen=True)
class Domain:
    main: str = key("main", "", doc="Main domain name.")
    sans: tuple[str, ...] = key("sans", (), doc="Subject alternative names.")


@dataclass(frozen=True)
class Certificate:
    """A certificate and its key: each a file path or the PEM text itself."""

    cert_file: str = key("certFile", "", doc="Certificate: a file path or inline PEM.")
    key_file: str = key("keyFile", "", doc="Private key: a file path or inline PEM.")

    def validate(self) -> Problems:
        if not self.cert_file:
            yield "certFile", "a certificate needs certFile"
        if not self.key_file:
            yield "keyFile", "a certificate needs keyFile"


@dataclass(frozen=True)
class ClientTLS:
    """TLS settings for a client connection made by a middleware (Redis)."""

    ca: str = key("ca", "", doc="CA certificate: path or PEM.")
    cert: str = key("cert", "", doc="Client certificate: path or PEM.")
    key_: str = key("key", "", doc="Client key: path or PEM.")
    insecure_skip_verify: bool = key("insecureSkipVerify", False)


# =========================================================================== routers

@dataclass(frozen=True)
class RouterTLS:
    """Router TLS; its mere presence (``tls: {}``) makes the router HTTPS-only."""

    options: str = key("options", "default",
                       doc="Name of the TLS options (tls.options.<name>); `default` when "
                           "empty.")
    cert_resolver: str = key("certResolver", "", doc="Certificate resolver (ACME).")
    domains: tuple[Domain, ...] = key("domains", (), doc="Domains to get certificates for.")


@dataclass(frozen=True)
class RouterObservability:
    """Per-router switches; unset (null) means the entryPoint's or global setting."""

    access_logs: bool | None = key("accessLogs", None)
    metrics: bool | None = key("metrics", None)
    tracing: bool | None = key("tracing", None)
    trace_verbosity: Literal["minimal", "detailed"] = key("traceVerbosity", "minimal")


@dataclass(frozen=True)
class RouterExtension:
    """wsgate's WebSocket session policy for connections upgraded through this router.

    Every limit defaults to 0, meaning "none", which is Traefik's behaviour.
    """

    idle_timeout: Duration = key(
        "idleTimeout", Duration(0.0), wsgate=True,
        doc="Close a WebSocket session with 1001 after this long without a frame in either "
            "direction (the proxy's own pings and their pongs do not count). Detected within "
            "a quarter of the value. 0: never.")
    ping_interval: Duration = key(
        "pingInterval", Duration(0.0), wsgate=True,
        doc="Send a ping to the client this often (one at a time, between two frames); the "
            "pong that answers it is not passed to the backend. 0: never.")
    ping_timeout: Duration = key(
        "pingTimeout", Duration(0.0), wsgate=True,
        doc="Close the session with 1011 when the pong has not arrived this long after its "
            "ping was written; 0 means the same as pingInterval. Needs pingInterval.")
    max_lifetime: Duration = key(
        "maxLifetime", Duration(0.0), wsgate=True,
        doc="Close a session with 1001 once it is this old, give or take 10% (random per "
            "session, so that sessions opened together do not end together). 0: never.")
    max_message_size: int = key(
        "maxMessageSize", 0, wsgate=True,
        doc="Largest message, in payload bytes over all its fragments (compressed size under "
            "permessage-deflate), in either direction; a larger one is not relayed and both "
            "sides get 1009. 0: unlimited.")
    max_connections: int = key(
        "maxConnections", 0, wsgate=True,
        doc="Most WebSocket sessions open (or being opened) at once through this router; the "
            "next upgrade request is answered 429 without contacting a backend. 0: unlimited.")
    max_messages_per_second: float = key(
        "maxMessagesPerSecond", 0.0, wsgate=True,
        doc="Most data messages per second a client may send on one session: a token bucket "
            "of one second's worth (at least 1), refilled continuously. The message over it "
            "is not relayed and both sides get 1008. 0: unlimited.")
    forwarded_proto_for_upgrade: Literal["ws", "http"] = key(
        "forwardedProtoForUpgrade", "ws", wsgate=True,
        doc="X-Forwarded-Proto sent on upgrade requests: `ws` gives ws/wss (Traefik), "
            "`http` gives http/https for backends that reject ws/wss.")

    def validate(self) -> Problems:
        yield from _check_not_negative(
            idleTimeout=self.idle_timeout, pingInterval=self.ping_interval,
            pingTimeout=self.ping_timeout, maxLifetime=self.max_lifetime,
            maxMessageSize=self.max_message_size, maxConnections=self.max_connections,
            maxMessagesPerSecond=self.max_messages_per_second)
        if self.ping_timeout > 0 and self.ping_interval <= 0:
            yield "pingTimeout", "pingTimeout needs pingInterval"


@dataclass(frozen=True)
class Router:
    rule: str = key("rule", "", doc="Matching rule, e.g. Host(`ws.example.com`). Required.")
    rule_syntax: Literal["", "v3", "v2", "default"] = key(
        "ruleSyntax", "", deprecated="ruleSyntax is deprecated: rewrite the rule in the v3 "
                                     "syntax and remove ruleSyntax",
        doc="Rule syntax; empty means the static core.defaultRuleSyntax, `default` means v3. "
            "Deprecated.")
    priority: int = key("priority", 0, doc="0 means the length of the rule.")
    entry_points: tuple[str, ...] = key(
        "entryPoints", (), doc="EntryPoints this router listens on; empty means the default "
                               "ones.")
    middlewares: tuple[str, ...] = key("middlewares", (), doc="Middlewares, applied in order.")
    service: str = key("service", "", doc="The service that handles matched requests.")
    tls: RouterTLS | None = key("tls", None,
                                doc="Present (even empty) makes the router HTTPS-only.")
    observability: RouterObservability | None = key("observability", None)
    parent_refs: tuple[str, ...] = key(
        "parentRefs", (), doc="Parent routers (multi-layer routing): this router then "
                              "matches only within its parents.")
    wsgate: RouterExtension = key("wsgate", factory=RouterExtension, wsgate=True,
                                  doc="wsgate's WebSocket session policy (extension).")

    def validate(self) -> Problems:
        if not self.rule.strip():
            yield "rule", "a router needs a rule"


# =========================================================================== services

@dataclass(frozen=True)
class Cookie:
    name: str = key("name", "", doc="Cookie name; empty means `_` + a hash of the service "
                                    "name.")
    secure: bool = key("secure", False)
    http_only: bool = key("httpOnly", False)
    same_site: Literal["", "none", "lax", "strict"] = key("sameSite", "")
    max_age: int = key("maxAge", 0, doc="Seconds; 0: session cookie, negative: expire now.")
    path: str = key("path", "/")
    domain: str = key("domain", "")


@dataclass(frozen=True)
class Sticky:
    cookie: Cookie | None = key("cookie", None, doc="`cookie: {}` enables sticky sessions.")


@dataclass(frozen=True)
class Server:
    url: str = key("url", "", doc="http://, https:// or h2c:// URL of the server.")
    weight: int | None = key("weight", None, doc="Unset means 1; 0 or less skips the server.")
    preserve_path: bool = key("preservePath", False,
                              doc="Keep the path of the URL as a prefix of forwarded paths.")

    @property
    def effective_weight(self) -> int:
        return 1 if self.weight is None else self.weight

    def validate(self) -> Problems:
        problem = server_url_problem(self.url)
        if problem:
            yield "url", problem


@dataclass(frozen=True)
class ServerHealthCheck:
    scheme: str = key("scheme", "", doc="Scheme of the probe; empty: the server's.")
    mode: Literal["http", "grpc", "websocket"] = key(
        "mode", "http", doc="`http`, `grpc`, or wsgate's `websocket` (a real upgrade "
                            "handshake that must answer 101).")
    path: str = key("path", "")
    method: str = key("method", "GET")
    status: int = key("status", 0, doc="Expected status; 0 means any 2xx or 3xx.")
    port: int = key("port", 0, doc="Port of the probe; 0: the server's.")
    interval: Duration = key("interval", Duration(30.0))
    unhealthy_interval: Duration | None = key(
        "unhealthyInterval", None, doc="Interval while unhealthy; unset: interval.")
    timeout: Duration = key("timeout", Duration(5.0))
    hostname: str = key("hostname", "", doc="Host header of the probe.")
    follow_redirects: bool = key("followRedirects", True)
    headers: Mapping[str, str] = key("headers", factory=frozen_map)

    @property
    def effective_unhealthy_interval(self) -> float:
        return self.interval if self.unhealthy_interval is None else self.unhealthy_interval

    def validate(self) -> Problems:
        if self.interval <= 0:
            yield "interval", "must be positive"
        if self.unhealthy_interval is not None and self.unhealthy_interval <= 0:
            yield "unhealthyInterval", "must be positive"
        if self.timeout <= 0:
            yield "timeout", "must be positive"


@dataclass(frozen=True)
class PassiveHealthCheck:
    failure_window: Duration = key("failureWindow", Duration(10.0))
    max_failed_attempts: int = key("maxFailedAttempts", 1)


@dataclass(frozen=True)
class ResponseForwarding:
    flush_interval: Duration = key("flushInterval", Duration(0.1),
                                   doc="Negative: flush after every write.")


@dataclass(frozen=True)
class LoadBalancerExtension:
    """wsgate's WebSocket policy for the servers of a load balancer."""

    close_on_server_removal: bool = key(
        "closeOnServerRemoval", False, wsgate=True,
        doc="Close (1001) the WebSocket sessions of a server that a new configuration "
            "removes. Traefik keeps them open.")
    close_on_unhealthy: bool = key(
        "closeOnUnhealthy", False, wsgate=True,
        doc="Close (1001) the WebSocket sessions of a server that its health check marks "
            "down. Traefik keeps them open.")
    max_connections_per_server: int = key(
        "maxConnectionsPerServer", 0, wsgate=True,
        doc="Most WebSocket sessions open at once to one server; a full server is skipped. "
            "0: unlimited.")

    def validate(self) -> Problems:
        yield from _check_not_negative(maxConnectionsPerServer=self.max_connections_per_server)


@dataclass(frozen=True)
class LoadBalancer:
    servers: tuple[Server, ...] = key("servers", ())
    strategy: Literal["wrr", "p2c", "hrw", "leasttime"] = key("strategy", "wrr")
    pass_host_header: bool = key("passHostHeader", True,
                                 doc="false: Host becomes the server's host:port.")
    servers_transport: str = key("serversTransport", "",
                                 doc="Name of a serversTransport; empty: default@internal.")
    response_forwarding: ResponseForwarding = key("responseForwarding",
                                                  factory=ResponseForwarding)
    sticky: Sticky | None = key("sticky", None)
    health_check: ServerHealthCheck | None = key("healthCheck", None)
    passive_health_check: PassiveHealthCheck | None = key("passiveHealthCheck", None)
    wsgate: LoadBalancerExtension = key("wsgate", factory=LoadBalancerExtension, wsgate=True,
                                        doc="wsgate's WebSocket policy (extension).")


@dataclass(frozen=True)
class HealthCheck:
    """Service-level health check: present means "follow the children's health"."""


@dataclass(frozen=True)
class WeightedService:
    name: str = key("name", "")
    weight: int = key("weight", 1)

    def validate(self) -> Problems:
        if not self.name:
            yield "name", "a service reference needs a name"


@dataclass(frozen=True)
class Weighted:
    services: tuple[WeightedService, ...] = key("services", ())
    sticky: Sticky | None = key("sticky", None)
    health_check: HealthCheck | None = key("healthCheck", None)


@dataclass(frozen=True)
class MirrorService:
    name: str = key("name", "")
    percent: int = key("percent", 0, doc="Share of requests copied, 0 to 100.")

    def validate(self) -> Problems:
        if not self.name:
            yield "name", "a mirror needs a name"
        if not 0 <= self.percent <= 100:
            yield "percent", f"must be between 0 and 100 (got {self.percent})"


@dataclass(frozen=True)
class Mirroring:
    service: str = key("service", "")
    mirror_body: bool = key("mirrorBody", True)
    max_body_size: int = key("maxBodySize", -1, doc="-1: no limit.")
    mirrors: tuple[MirrorService, ...] = key("mirrors", ())
    health_check: HealthCheck | None = key("healthCheck", None)

    def validate(self) -> Problems:
        if not self.service:
            yield "service", "mirroring needs a service"


@dataclass(frozen=True)
class FailoverErrors:
    status: tuple[str, ...] = key("status", (), doc="Status codes or ranges (`500-599`).")
    max_request_body_bytes: int = key("maxRequestBodyBytes", -1, doc="-1: no limit.")

    def validate(self) -> Problems:
        for i, block in enumerate(self.status):
            for part in block.split(","):
                codes = [code.strip() for code in part.split("-")]
                if len(codes) > 2 or not all(c.isascii() and c.isdigit() for c in codes):
                    yield f"status[{i}]", f"invalid status code or range {part!r}"
                    break


@dataclass(frozen=True)
class Failover:
    service: str = key("service", "")
    fallback: str = key("fallback", "")
    health_check: HealthCheck | None = key("healthCheck", None)
    errors: FailoverErrors | None = key("errors", None)

    def validate(self) -> Problems:
        if not self.service:
            yield "service", "failover needs a service"
        if not self.fallback:
            yield "fallback", "failover needs a fallback"


@dataclass(frozen=True)
class HighestRandomWeight:
    services: tuple[WeightedService, ...] = key("services", ())
    health_check: HealthCheck | None = key("healthCheck", None)


SERVICE_KINDS = ("loadBalancer", "weighted", "mirroring", "failover", "highestRandomWeight")


@dataclass(frozen=True)
class Service:
    load_balancer: LoadBalancer | None = key("loadBalancer", None)
    weighted: Weighted | None = key("weighted", None)
    mirroring: Mirroring | None = key("mirroring", None)
    failover: Failover | None = key("failover", None)
    highest_random_weight: HighestRandomWeight | None = key("highestRandomWeight", None)
    middlewares: tuple[str, ...] = key("middlewares", (),
                                       doc="Middlewares applied before this service.")

    def kinds(self) -> list[str]:
        values = (self.load_balancer, self.weighted, self.mirroring, self.failover,
                  self.highest_random_weight)
        return [k for k, v in zip(SERVICE_KINDS, values) if v is not None]

    @property
    def kind(self) -> str:
        """The one kind of this service (a validated service has exactly one)."""
        found = self.kinds()
        return found[0] if len(found) == 1 else ""

    def references(self) -> list[tuple[str, str]]:
        """The services this one forwards to, with the key path (relative) naming each."""
        refs: list[tuple[str, str]] = []
        if self.weighted is not None:
            refs += [(f"weighted.services[{i}].name", s.name)
                     for i, s in enumerate(self.weighted.services)]
        if self.highest_random_weight is not None:
            refs += [(f"highestRandomWeight.services[{i}].name", s.name)
                     for i, s in enumerate(self.highest_random_weight.services)]
        if self.mirroring is not None:
            refs.append(("mirroring.service", self.mirroring.service))
            refs += [(f"mirroring.mirrors[{i}].name", m.name)
                     for i, m in enumerate(self.mirroring.mirrors)]
        if self.failover is not None:
            refs.append(("failover.service", self.failover.service))
            refs.append(("failover.fallback", self.failover.fallback))
        return refs

    def validate(self) -> Problems:
        found = self.kinds()
        if len(found) != 1:
            detail = "found none" if not found else "found " + " and ".join(found)
            yield "", ("a service needs exactly one of " + ", ".join(SERVICE_KINDS)
                       + f" ({detail})")


# =========================================================================== transports

@dataclass(frozen=True)
class ForwardingTimeouts:
    dial_timeout: Duration = key("dialTimeout", Duration(30.0), doc="0: no timeout.")
    response_header_timeout: Duration = key("responseHeaderTimeout", Duration(0.0),
                                            doc="0: no timeout.")
    idle_conn_timeout: Duration = key("idleConnTimeout", Duration(90.0))
    read_idle_timeout: Duration = key("readIdleTimeout", Duration(0.0),
                                      doc="HTTP/2 ping after this long without a frame.")
    ping_timeout: Duration = key("pingTimeout", Duration(15.0), doc="HTTP/2 ping timeout.")


@dataclass(frozen=True)
class SAN:
    type: Literal["DNSName", "URI"] = key("type", "DNSName")
    value: str = key("value", "")


@dataclass(frozen=True)
class Spiffe:
    ids: tuple[str, ...] = key("ids", (), doc="Allowed SPIFFE IDs (win over trustDomain).")
    trust_domain: str = key("trustDomain", "")


@dataclass(frozen=True)
class ServersTransport:
    server_name: str = key("serverName", "", doc="SNI and name verified; empty: the URL "
                                                 "host.")
    insecure_skip_verify: bool = key("insecureSkipVerify", False)
    root_cas: tuple[str, ...] = key("rootCAs", (), doc="CA certificates: paths or PEM.")
    certificates: tuple[Certificate, ...] = key("certificates", (),
                                                doc="Client certificates for mTLS.")
    cipher_suites: tuple[str, ...] = key("cipherSuites", ())
    min_version: OptionalTLSVersion = key("minVersion", "")
    max_version: OptionalTLSVersion = key("maxVersion", "")
    max_idle_conns_per_host: int = key(
        "maxIdleConnsPerHost", 0, doc="0 means 2; negative disables connection reuse.")
    forwarding_timeouts: ForwardingTimeouts = key("forwardingTimeouts",
                                                  factory=ForwardingTimeouts)
    disable_http2: bool = key("disableHTTP2", False)
    peer_cert_uri: str = key("peerCertURI", "",
                             deprecated="peerCertURI is deprecated, use peerCertSANs",
                             doc="Deprecated: use peerCertSANs.")
    peer_cert_sans: tuple[SAN, ...] = key("peerCertSANs", (),
                                          doc="SANs the server certificate must carry.")
    spiffe: Spiffe | None = key("spiffe", None)

    @property
    def effective_max_idle_conns_per_host(self) -> int:
        return 2 if self.max_idle_conns_per_host == 0 else self.max_idle_conns_per_host

    def validate(self) -> Problems:
        yield from _check_ciphers(self.cipher_suites)
        yield from _check_versions(self.min_version, self.max_version)
        uses_tls_settings = (self.insecure_skip_verify or self.root_cas or self.server_name
                             or self.certificates or self.peer_cert_uri or self.peer_cert_sans
                             or self.cipher_suites or self.min_version or self.max_version)
        if self.spiffe is not None and uses_tls_settings:
            yield "spiffe", "TLS and SPIFFE settings cannot be defined at the same time"


# =========================================================================== middlewares

@dataclass(frozen=True)
class AddPrefix:
    prefix: str = key("prefix", "")


@dataclass(frozen=True)
class StripPrefix:
    prefixes: tuple[str, ...] = key("prefixes", ())
    force_slash: bool | None = key("forceSlash", None,
                                   deprecated="forceSlash is deprecated, remove it",
                                   doc="Deprecated; unset means false.")


@dataclass(frozen=True)
class StripPrefixRegex:
    regex: tuple[str, ...] = key("regex", ())


@dataclass(frozen=True)
class ReplacePath:
    path: str = key("path", "")


@dataclass(frozen=True)
class ReplacePathRegex:
    regex: str = key("regex", "")
    replacement: str = key("replacement", "")


@dataclass(frozen=True)
class Chain:
    middlewares: tuple[str, ...] = key("middlewares", ())


@dataclass(frozen=True)
class IPStrategy:
    depth: int = key("depth", 0, doc="Use the depth-th X-Forwarded-For entry from the right.")
    excluded_ips: tuple[str, ...] = key("excludedIPs", ())
    ipv6_subnet: int | None = key("ipv6Subnet", None, doc="Group IPv6 clients by prefix.")

    def validate(self) -> Problems:
        if self.depth < 0:
            yield "depth", f"must not be negative (got {self.depth})"
        if self.ipv6_subnet is not None and not 0 < self.ipv6_subnet <= 128:
            yield "ipv6Subnet", f"must be between 1 and 128 (got {self.ipv6_subnet})"
        for i, entry in enumerate(self.excluded_ips):
            if not _is_ip_or_cidr(entry):
                yield f"excludedIPs[{i}]", f"not an IP address or CIDR range: {entry!r}"


def _is_ip_or_cidr(text: str) -> bool:
    try:
        ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class IPAllowList:
    source_range: tuple[str, ...] = key("sourceRange", (), doc="Allowed IPs or CIDR ranges.")
    ip_strategy: IPStrategy | None = key("ipStrategy", None)
    reject_status_code: int = key("rejectStatusCode", 403, doc="0 also means 403.")

    def validate(self) -> Problems:
        for i, entry in enumerate(self.source_range):
            if not _is_ip_or_cidr(entry):
                yield f"sourceRange[{i}]", f"not an IP address or CIDR range: {entry!r}"


@dataclass(frozen=True)
class IPWhiteList:
    source_range: tuple[str, ...] = key("sourceRange", ())
    ip_strategy: IPStrategy | None = key("ipStrategy", None)

    def validate(self) -> Problems:
        for i, entry in enumerate(self.source_range):
            if not _is_ip_or_cidr(entry):
                yield f"sourceRange[{i}]", f"not an IP address or CIDR range: {entry!r}"


@dataclass(frozen=True)
class Headers:
    custom_request_headers: Mapping[str, str] = key(
        "customRequestHeaders", factory=frozen_map, doc="An empty value removes the header.")
    custom_response_headers: Mapping[str, str] = key(
        "customResponseHeaders", factory=frozen_map, doc="An empty value removes the header.")
    access_control_allow_credentials: bool = key("accessControlAllowCredentials", False)
    access_control_allow_headers: tuple[str, ...] = key("accessControlAllowHeaders", ())
    access_control_allow_methods: tuple[str, ...] = key("accessControlAllowMethods", ())
    access_control_allow_origin_list: tuple[str, ...] = key("accessControlAllowOriginList", ())
    access_control_allow_origin_list_regex: tuple[str, ...] = key(
        "accessControlAllowOriginListRegex", ())
    access_control_expose_headers: tuple[str, ...] = key("accessControlExposeHeaders", ())
    access_control_max_age: int | None = key("accessControlMaxAge", None,
                                             doc="Seconds; unset: no header.")
    add_vary_header: bool = key("addVaryHeader", False)
    allowed_hosts: tuple[str, ...] = key("allowedHosts", ())
    hosts_proxy_headers: tuple[str, ...] = key("hostsProxyHeaders", ())
    ssl_proxy_headers: Mapping[str, str] = key("sslProxyHeaders", factory=frozen_map)
    sts_seconds: int | None = key("stsSeconds", None, doc="Unset: no HSTS header.")
    sts_include_subdomains: bool = key("stsIncludeSubdomains", False)
    sts_preload: bool = key("stsPreload", False)
    force_sts_header: bool = key("forceSTSHeader", False)
    frame_deny: bool = key("frameDeny", False)
    custom_frame_options_value: str = key("customFrameOptionsValue", "")
    content_type_nosniff: bool = key("contentTypeNosniff", False)
    browser_xss_filter: bool = key("browserXssFilter", False)
    custom_browser_xss_value: str = key("customBrowserXSSValue", "")
    content_security_policy: str = key("contentSecurityPolicy", "")
    content_security_policy_report_only: str = key("contentSecurityPolicyReportOnly", "")
    public_key: str = key("publicKey", "")
    referrer_policy: str = key("referrerPolicy", "")
    permissions_policy: str = key("permissionsPolicy", "")
    is_development: bool = key("isDevelopment", False)
    feature_policy: str | None = key(
        "featurePolicy", None, deprecated="featurePolicy is deprecated, use permissionsPolicy",
        doc="Deprecated: use permissionsPolicy.")
    ssl_redirect: bool | None = key(
        "sslRedirect", None,
        deprecated="sslRedirect is deprecated, use an entryPoint redirection or redirectScheme",
        doc="Deprecated: use entryPoint redirections or redirectScheme.")
    ssl_temporary_redirect: bool | None = key(
        "sslTemporaryRedirect", None,
        deprecated="sslTemporaryRedirect is deprecated, use an entryPoint redirection or "
                   "redirectScheme",
        doc="Deprecated: use entryPoint redirections or redirectScheme.")
    ssl_host: str | None = key("sslHost", None,
                               deprecated="sslHost is deprecated, use redirectRegex",
                               doc="Deprecated: use redirectRegex.")
    ssl_force_host: bool | None = key("sslForceHost", None,
                                      deprecated="sslForceHost is deprecated, use "
                                                 "redirectRegex",
                                      doc="Deprecated: use redirectRegex.")


@dataclass(frozen=True)
class EncodedCharacters:
    allow_encoded_slash: bool = key("allowEncodedSlash", False)
    allow_encoded_back_slash: bool = key("allowEncodedBackSlash", False)
    allow_encoded_null_character: bool = key("allowEncodedNullCharacter", False)
    allow_encoded_semicolon: bool = key("allowEncodedSemicolon", False)
    allow_encoded_percent: bool = key("allowEncodedPercent", False)
    allow_encoded_question_mark: bool = key("allowEncodedQuestionMark", False)
    allow_encoded_hash: bool = key("allowEncodedHash", False)


@dataclass(frozen=True)
class ErrorPage:
    status: tuple[str, ...] = key("status", (), doc="Status codes or ranges (`500-599`).")
    status_rewrites: Mapping[str, int] = key("statusRewrites", factory=frozen_map,
                                             doc="Status (or range) to the status to send.")
    service: str = key("service", "", doc="Service that serves the error pages.")
    query: str = key("query", "", doc="Path of the error page; {status}, {originalStatus} "
                                      "and {url} are replaced.")
    error_request_headers: tuple[str, ...] = key("errorRequestHeaders", ())

    def validate(self) -> Problems:
        if not self.service:
            yield "service", "errors needs a service"


@dataclass(frozen=True)
class SourceCriterion:
    ip_strategy: IPStrategy | None = key("ipStrategy", None)
    request_header_name: str = key("requestHeaderName", "")
    request_host: bool = key("requestHost", False)


@dataclass(frozen=True)
class Redis:
    endpoints: tuple[str, ...] = key("endpoints", ("localhost:6379",))
    tls: ClientTLS | None = key("tls", None)
    username: str = key("username", "")
    password: str = key("password", "")
    db: int = key("db", 0)
    pool_size: int = key("poolSize", 0)
    min_idle_conns: int = key("minIdleConns", 0)
    max_active_conns: int = key("maxActiveConns", 0)
    read_timeout: Duration = key("readTimeout", Duration(3.0))
    write_timeout: Duration = key("writeTimeout", Duration(3.0))
    dial_timeout: Duration = key("dialTimeout", Duration(5.0))


@dataclass(frozen=True)
class RateLimit:
    average: int = key("average", 0, doc="Requests per period; 0: no limit.")
    period: Duration = key("period", Duration(1.0))
    burst: int = key("burst", 1)
    source_criterion: SourceCriterion | None = key(
        "sourceCriterion", None, doc="Unset: the client IP (RemoteAddr).")
    redis: Redis | None = key("redis", None, doc="Share the limit through Redis.")

    def validate(self) -> Problems:
        yield from _check_not_negative(period=self.period)


@dataclass(frozen=True)
class RedirectRegex:
    regex: str = key("regex", "")
    replacement: str = key("replacement", "")
    permanent: bool = key("permanent", False)


@dataclass(frozen=True)
class RedirectScheme:
    scheme: str = key("scheme", "")
    port: str = key("port", "")
    permanent: bool = key("permanent", False)


@dataclass(frozen=True)
class BasicAuth:
    users: tuple[str, ...] = key("users", (), doc="`name:hash` entries (htpasswd).")
    users_file: str = key("usersFile", "")
    realm: str = key("realm", "traefik")
    remove_header: bool = key("removeHeader", False)
    header_field: str = key("headerField", "", doc="Header that receives the user name.")


@dataclass(frozen=True)
class DigestAuth:
    users: tuple[str, ...] = key("users", (), doc="`name:realm:hash` entries (htdigest).")
    users_file: str = key("usersFile", "")
    remove_header: bool = key("removeHeader", False)
    realm: str = key("realm", "traefik")
    header_field: str = key("headerField", "")


@dataclass(frozen=True)
class ForwardAuthTLS:
    ca: str = key("ca", "")
    cert: str = key("cert", "")
    key_: str = key("key", "")
    insecure_skip_verify: bool = key("insecureSkipVerify", False)
    ca_optional: bool | None = key("caOptional", None,
                                   deprecated="caOptional is deprecated and has no effect",
                                   doc="Deprecated, no effect.")


@dataclass(frozen=True)
class ForwardAuth:
    address: str = key("address", "", doc="URL of the authentication server.")
    tls: ForwardAuthTLS | None = key("tls", None)
    trust_forward_header: bool | None = key("trustForwardHeader", None,
                                            doc="Trust X-Forwarded-* headers.")
    auth_response_headers: tuple[str, ...] = key("authResponseHeaders", ())
    auth_response_headers_regex: str = key("authResponseHeadersRegex", "")
    auth_request_headers: tuple[str, ...] = key("authRequestHeaders", ())
    add_auth_cookies_to_response: tuple[str, ...] = key("addAuthCookiesToResponse", ())
    header_field: str = key("headerField", "")
    forward_body: bool = key("forwardBody", False)
    max_body_size: int = key("maxBodySize", -1, doc="-1: no limit.")
    max_response_body_size: int | None = key("maxResponseBodySize", None,
                                             doc="Unset: no limit.")
    preserve_location_header: bool = key("preserveLocationHeader", False)
    preserve_request_method: bool = key("preserveRequestMethod", False)
    auth_signin_url: str = key("authSigninURL", "")


@dataclass(frozen=True)
class InFlightReq:
    amount: int = key("amount", 0, doc="Most requests (and open WebSockets) at once.")
    source_criterion: SourceCriterion | None = key("sourceCriterion", None,
                                                   doc="Unset: requestHost.")


@dataclass(frozen=True)
class Buffering:
    max_request_body_bytes: int = key("maxRequestBodyBytes", 0, doc="0: no limit.")
    mem_request_body_bytes: int = key("memRequestBodyBytes", 1048576)
    max_response_body_bytes: int = key("maxResponseBodyBytes", 0, doc="0: no limit.")
    mem_response_body_bytes: int = key("memResponseBodyBytes", 1048576)
    retry_expression: str = key("retryExpression", "")


@dataclass(frozen=True)
class CircuitBreaker:
    expression: str = key("expression", "")
    check_period: Duration = key("checkPeriod", Duration(0.1))
    fallback_duration: Duration = key("fallbackDuration", Duration(10.0))
    recovery_duration: Duration = key("recoveryDuration", Duration(10.0))
    response_code: int = key("responseCode", 503)


@dataclass(frozen=True)
class Compress:
    excluded_content_types: tuple[str, ...] = key("excludedContentTypes", ())
    included_content_types: tuple[str, ...] = key("includedContentTypes", ())
    min_response_body_bytes: int = key("minResponseBodyBytes", 1024)
    encodings: tuple[str, ...] = key("encodings", ("gzip", "br", "zstd"))
    default_encoding: str = key("defaultEncoding", "")

    def validate(self) -> Problems:
        if self.excluded_content_types and self.included_content_types:
            yield "includedContentTypes", ("excludedContentTypes and includedContentTypes "
                                           "cannot both be set")


@dataclass(frozen=True)
class SubjectInfo:
    country: bool = key("country", False)
    province: bool = key("province", False)
    locality: bool = key("locality", False)
    organization: bool = key("organization", False)
    organizational_unit: bool = key("organizationalUnit", False)
    common_name: bool = key("commonName", False)
    serial_number: bool = key("serialNumber", False)
    domain_component: bool = key("domainComponent", False)


@dataclass(frozen=True)
class IssuerInfo:
    country: bool = key("country", False)
    province: bool = key("province", False)
    locality: bool = key("locality", False)
    organization: bool = key("organization", False)
    common_name: bool = key("commonName", False)
    serial_number: bool = key("serialNumber", False)
    domain_component: bool = key("domainComponent", False)


@dataclass(frozen=True)
class CertificateInfo:
    not_after: bool = key("notAfter", False)
    not_before: bool = key("notBefore", False)
    sans: bool = key("sans", False)
    serial_number: bool = key("serialNumber", False)
    subject: SubjectInfo | None = key("subject", None)
    issuer: IssuerInfo | None = key("issuer", None)


@dataclass(frozen=True)
class PassTLSClientCert:
    pem: bool = key("pem", False)
    info: CertificateInfo | None = key("info", None)


@dataclass(frozen=True)
class Retry:
    attempts: int = key("attempts", 0)
    initial_interval: Duration = key("initialInterval", Duration(0.0))
    timeout: Duration = key("timeout", Duration(0.0), doc="0: no limit.")
    max_request_body_bytes: int = key("maxRequestBodyBytes", 2097152)
    status: tuple[str, ...] = key("status", ())
    disable_retry_on_network_error: bool = key("disableRetryOnNetworkError", False)
    retry_non_idempotent_method: bool = key("retryNonIdempotentMethod", False)


@dataclass(frozen=True)
class ContentType:
    auto_detect: bool | None = key("autoDetect", None,
                                   deprecated="autoDetect is deprecated, remove it",
                                   doc="Deprecated.")


@dataclass(frozen=True)
class GrpcWeb:
    allow_origins: tuple[str, ...] = key("allowOrigins", ())


#: The key of every middleware kind, in declaration order (field name, Traefik key).
MIDDLEWARE_KINDS = (
    ("add_prefix", "addPrefix"), ("strip_prefix", "stripPrefix"),
    ("strip_prefix_regex", "stripPrefixRegex"), ("replace_path", "replacePath"),
    ("replace_path_regex", "replacePathRegex"), ("chain", "chain"),
    ("ip_white_list", "ipWhiteList"), ("ip_allow_list", "ipAllowList"),
    ("headers", "headers"), ("encoded_characters", "encodedCharacters"),
    ("errors", "errors"), ("rate_limit", "rateLimit"), ("redirect_regex", "redirectRegex"),
    ("redirect_scheme", "redirectScheme"), ("basic_auth", "basicAuth"),
    ("digest_auth", "digestAuth"), ("forward_auth", "forwardAuth"),
    ("in_flight_req", "inFlightReq"), ("buffering", "buffering"),
    ("circuit_breaker", "circuitBreaker"), ("compress", "compress"),
    ("pass_tls_client_cert", "passTLSClientCert"), ("retry", "retry"),
    ("content_type", "contentType"), ("grpc_web", "grpcWeb"), ("plugin", "plugin"),
)


@dataclass(frozen=True)
class Middleware:
    add_prefix: AddPrefix | None = key("addPrefix", None)
    strip_prefix: StripPrefix | None = key("stripPrefix", None)
    strip_prefix_regex: StripPrefixRegex | None = key("stripPrefixRegex", None)
    replace_path: ReplacePath | None = key("replacePath", None)
    replace_path_regex: ReplacePathRegex | None = key("replacePathRegex", None)
    chain: Chain | None = key("chain", None)
    ip_white_list: IPWhiteList | None = key(
        "ipWhiteList", None, deprecated="ipWhiteList is deprecated, use ipAllowList",
        doc="Deprecated: use ipAllowList.")
    ip_allow_list: IPAllowList | None = key("ipAllowList", None)
    headers: Headers | None = key("headers", None)
    encoded_characters: EncodedCharacters | None = key("encodedCharacters", None)
    errors: ErrorPage | None = key("errors", None)
    rate_limit: RateLimit | None = key("rateLimit", None)
    redirect_regex: RedirectRegex | None = key("redirectRegex", None)
    redirect_scheme: RedirectScheme | None = key("redirectScheme", None)
    basic_auth: BasicAuth | None = key("basicAuth", None)
    digest_auth: DigestAuth | None = key("digestAuth", None)
    forward_auth: ForwardAuth | None = key("forwardAuth", None)
    in_flight_req: InFlightReq | None = key("inFlightReq", None)
    buffering: Buffering | None = key("buffering", None)
    circuit_breaker: CircuitBreaker | None = key("circuitBreaker", None)
    compress: Compress | None = key("compress", None)
    pass_tls_client_cert: PassTLSClientCert | None = key("passTLSClientCert", None)
    retry: Retry | None = key("retry", None)
    content_type: ContentType | None = key("contentType", None)
    grpc_web: GrpcWeb | None = key("grpcWeb", None)
    plugin: Mapping[str, RawValue] | None = key(
        "plugin", None, deprecated="plugins are not supported by wsgate: a middleware using "
                                   "one is disabled",
        doc="Accepted for compatibility; a plugin middleware is disabled.")

    def kinds(self) -> list[str]:
        return [k for name, k in MIDDLEWARE_KINDS if getattr(self, name) is not None]

    @property
    def kind(self) -> str:
        """The one kind of this middleware (a validated middleware has exactly one)."""
        found = self.kinds()
        return found[0] if len(found) == 1 else ""

    @property
    def section(self) -> object:
        """The settings of the kind, e.g. the :class:`Headers` of a headers middleware."""
        for name, k in MIDDLEWARE_KINDS:
            if k == self.kind:
                return getattr(self, name)
        return None

    def validate(self) -> Problems:
        found = self.kinds()
        if len(found) != 1:
            detail = "found none" if not found else "found " + " and ".join(found)
            yield "", f"a middleware needs exactly one kind, such as headers or chain ({detail})"


# =========================================================================== TLS

@dataclass(frozen=True)
class TLSCertificate:
    """A certificate offered to clients, in the stores named (default: the default store)."""

    cert_file: str = key("certFile", "", doc="Certificate: a file path or inline PEM.")
    key_file: str = key("keyFile", "", doc="Private key: a file path or inline PEM.")
    stores: tuple[str, ...] = key("stores", (), doc="Stores; empty: the default store.")

    def validate(self) -> Problems:
        if not self.cert_file:
            yield "certFile", "a certificate needs certFile"
        if not self.key_file:
            yield "keyFile", "a certificate needs keyFile"


CLIENT_AUTH_TYPES = ("NoClientCert", "RequestClientCert", "RequireAnyClientCert",
                     "VerifyClientCertIfGiven", "RequireAndVerifyClientCert")


@dataclass(frozen=True)
class ClientAuth:
    ca_files: tuple[str, ...] = key("caFiles", (), doc="CA certificates: paths or PEM.")
    client_auth_type: Literal[
        "", "NoClientCert", "RequestClientCert", "RequireAnyClientCert",
        "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"] = key(
        "clientAuthType", "",
        doc="Unset: RequireAndVerifyClientCert when caFiles are given, else NoClientCert.")

    @property
    def effective_type(self) -> str:
        if self.client_auth_type:
            return self.client_auth_type
        return "RequireAndVerifyClientCert" if self.ca_files else "NoClientCert"

    def validate(self) -> Problems:
        if self.client_auth_type in ("VerifyClientCertIfGiven", "RequireAndVerifyClientCert") \
                and not self.ca_files:
            yield "clientAuthType", f"{self.client_auth_type} needs caFiles"


@dataclass(frozen=True)
class TLSOptions:
    min_version: TLSVersion = key("minVersion", "VersionTLS12")
    max_version: OptionalTLSVersion = key("maxVersion", "", doc="Empty: the newest.")
    cipher_suites: tuple[str, ...] = key(
        "cipherSuites", (), doc="TLS 1.0-1.2 ciphers; empty: the TLS library's defaults.")
    curve_preferences: tuple[str, ...] = key("curvePreferences", ())
    client_auth: ClientAuth = key("clientAuth", factory=ClientAuth)
    sni_strict: bool = key("sniStrict", False,
                           doc="Refuse handshakes without SNI or with an unknown name.")
    alpn_protocols: tuple[str, ...] = key("alpnProtocols", ("h2", "http/1.1", "acme-tls/1"))
    disable_session_tickets: bool = key("disableSessionTickets", False)
    prefer_server_cipher_suites: bool | None = key(
        "preferServerCipherSuites", None,
        deprecated="preferServerCipherSuites is deprecated and has no effect",
        doc="Deprecated, no effect.")

    def validate(self) -> Problems:
        yield from _check_ciphers(self.cipher_suites)
        yield from _check_versions(self.min_version, self.max_version)
        for i, curve in enumerate(self.curve_preferences):
            if curve not in CURVES:
                yield f"curvePreferences[{i}]", f"unknown curve {curve!r}"


@dataclass(frozen=True)
class GeneratedCert:
    resolver: str = key("resolver", "")
    domain: Domain | None = key("domain", None)


@dataclass(frozen=True)
class TLSStore:
    default_certificate: Certificate | None = key(
        "defaultCertificate", None, doc="Served when no certificate matches the SNI name.")
    default_generated_cert: GeneratedCert | None = key(
        "defaultGeneratedCert", None, doc="Obtain the default certificate from a resolver.")


def _names_with_at(section: str, names: Mapping[str, object]) -> Problems:
    for name in names:
        if "@" in name:
            yield f"{section}.{name}", (
                "a name cannot contain '@' where it is defined: '@' separates a name from "
                "its provider in references")


@dataclass(frozen=True)
class TLSConfig:
    certificates: tuple[TLSCertificate, ...] = key("certificates", ())
    options: Mapping[str, TLSOptions] = key("options", factory=frozen_map,
                                            doc="`default` applies to routers naming none.")
    stores: Mapping[str, TLSStore] = key("stores", factory=frozen_map)

    def validate(self) -> Problems:
        yield from _names_with_at("options", self.options)
        yield from _names_with_at("stores", self.stores)


# =========================================================================== roots

@dataclass(frozen=True)
class HTTPConfig:
    routers: Mapping[str, Router] = key("routers", factory=frozen_map)
    services: Mapping[str, Service] = key("services", factory=frozen_map)
    middlewares: Mapping[str, Middleware] = key("middlewares", factory=frozen_map)
    servers_transports: Mapping[str, ServersTransport] = key("serversTransports",
                                                             factory=frozen_map)

    __unsupported__ = {
        "models": "http.models is not supported by wsgate (use the entryPoints' http "
                  "settings); ignored",
    }

    def validate(self) -> Problems:
        yield from _names_with_at("routers", self.routers)
        yield from _names_with_at("services", self.services)
        yield from _names_with_at("middlewares", self.middlewares)
        yield from _names_with_at("serversTransports", self.servers_transports)


@dataclass(frozen=True)
class DynamicConfig:
    """One provider's routing configuration."""

    http: HTTPConfig = key("http", factory=HTTPConfig)
    tls: TLSConfig = key("tls", factory=TLSConfig)

    __unsupported__ = {
        "tcp": "TCP routing (tcp) is not supported by wsgate; ignored",
        "udp": "UDP routing (udp) is not supported by wsgate; ignored",
    }
