"""The static configuration (the install): entryPoints, providers, api, metrics, ping, logs.

Key names and defaults follow Traefik v3 exactly (checked against the Traefik 3.7 binary's
``--help`` and effective configuration). Traefik keys that wsgate accepts without having the
feature are listed in ``__unsupported__`` and produce a warning instead of "unknown key".

Decoding gives the configuration as written; :func:`finalize_static` then adds what Traefik
adds implicitly (the ``http`` entryPoint on ``:80``, the internal ``traefik`` entryPoint on
``:8080``), and :func:`feature_warnings` says what wsgate will ignore.
"""

# ruff: noqa: RUF009  (key() is this package's dataclass field specifier)
from __future__ import annotations

import dataclasses
import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Iterator, Literal, Mapping

from wsgate.config.errors import Diagnostic, Mark
from wsgate.config.schema import Duration, format_duration, frozen_map, key, model_fields

# --------------------------------------------------------------------------- constants

#: The name of the internal entryPoint used by api.insecure, ping and prometheus by default.
INTERNAL_ENTRYPOINT = "traefik"
#: The entryPoint Traefik creates when none is configured.
DEFAULT_ENTRYPOINT = "http"
DEFAULT_ENTRYPOINT_ADDRESS = ":80"
INTERNAL_ENTRYPOINT_ADDRESS = ":8080"
#: Go's http.DefaultMaxHeaderBytes, Traefik's default for entryPoints.<name>.http.maxHeaderBytes.
DEFAULT_MAX_HEADER_BYTES = 1 << 20
#: math.MaxInt - 1 on 64-bit platforms: the redirection router wins over every user router.
REDIRECT_PRIORITY = (1 << 63) - 2
DOCKER_DEFAULT_RULE = "Host(`{{ normalize .Name }}`)"
DOCKER_DEFAULT_ENDPOINT = "unix:///var/run/docker.sock"
#: Traefik's provider names, in its default routing precedence order.
PROVIDER_NAMES: tuple[str, ...] = (
    "kubernetesgateway", "kubernetescrd", "kubernetes", "kubernetesingressnginx", "swarm",
    "docker", "file", "redis", "knative", "consul", "consulcatalog", "nomad", "etcd", "ecs",
    "http", "zookeeper", "rest",
)

LogLevel = Literal["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "PANIC"]
HeadersStrategy = Literal["", "keep", "delete", "reject"]
KeepDrop = Literal["keep", "drop"]
KeepDropRedact = Literal["keep", "drop", "redact"]


def _unsupported(what: str, *, plural: bool = False) -> str:
    return f"{what} {'are' if plural else 'is'} not supported by wsgate; ignored"


# --------------------------------------------------------------------------- addresses

@dataclass(frozen=True, slots=True)
class ListenAddress:
    """A parsed entryPoint address: ``host`` is "" for all interfaces, IPv6 without brackets."""

    host: str
    port: int
    transport: Literal["tcp", "udp"] = "tcp"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        suffix = "/udp" if self.transport == "udp" else ""
        return f"{host}:{self.port}{suffix}"


_HOSTNAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_])?$")


def parse_address(text: str) -> ListenAddress:
    """Parse ``[host]:port[/tcp|/udp]`` as Traefik (Go's net.Listen) accepts it.

    Raises ValueError with a message meant for the user. The port may be a number (0 asks the
    system for a free port) or a service name such as ``http``.
    """
    raw = text.strip()
    if not raw:
        raise ValueError("an address is required, e.g. ':8000' or '127.0.0.1:8000'")
    transport: Literal["tcp", "udp"] = "tcp"
    hostport, slash, proto = raw.partition("/")
    if slash:
        low = proto.lower()
        if low == "udp":
            transport = "udp"
        elif low != "tcp":
            raise ValueError(f"invalid protocol {proto!r} in {text!r} (expected tcp or udp, "
                             f"as in ':53/udp')")
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError(f"missing ']' in {text!r} (IPv6 addresses are written "
                             f"'[::1]:8000')")
        host = hostport[1:end]
        rest = hostport[end + 1:]
        if not rest.startswith(":"):
            raise ValueError(f"missing port in {text!r} (write '[{host}]:8000')")
        port_text = rest[1:]
        try:
            ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            raise ValueError(f"{host!r} in brackets is not an IPv6 address") from None
    else:
        if "]" in hostport:
            raise ValueError(f"unexpected ']' in {text!r}")
        if ":" not in hostport:
            if hostport.isdigit():
                raise ValueError(f"missing port in {text!r} (write ':{hostport}' to listen "
                                 f"on port {hostport} of every interface)")
            raise ValueError(f"missing port in {text!r} (write e.g. '{hostport}:8000')")
        if hostport.count(":") > 1:
            raise ValueError(f"too many colons in {text!r} (IPv6 addresses are written in "
                             f"brackets: '[::1]:8000')")
        host, _, port_text = hostport.partition(":")
        if host and not _HOSTNAME.match(host):
            raise ValueError(f"invalid host {host!r} in {text!r}")
    return ListenAddress(host, _parse_port(port_text, transport, text), transport)


def _parse_port(port_text: str, transport: str, text: str) -> int:
    if not port_text:
        raise ValueError(f"missing port in {text!r}")
    if port_text.isdigit():
        port = int(port_text)
        if port > 65535:
            raise ValueError(f"invalid port {port_text} in {text!r} (0-65535)")
        return port
    try:
        return socket.getservbyname(port_text, transport)
    except OSError:
        raise ValueError(f"invalid port {port_text!r} in {text!r} (a number 0-65535 or a "
                         f"service name)") from None


def check_ip_or_cidr(text: str) -> str | None:
    """None when ``text`` is an IP address or a CIDR range, else why not."""
    value = text.strip()
    try:
        if "/" in value:
            ipaddress.ip_network(value, strict=False)
        else:
            ipaddress.ip_address(value)
    except ValueError:
        return f"{text!r} is not an IP address or a CIDR range (e.g. 10.0.0.0/8)"
    return None


# --------------------------------------------------------------------------- validation helpers

def _not_negative(value: float) -> str | None:
    return f"must not be negative, got {value}" if value < 0 else None


def _duration_not_negative(value: float) -> str | None:
    return f"must not be negative, got {format_duration(value)}" if value < 0 else None


def duration_key(name: str, seconds: float, *, doc: str) -> Duration:
    """A duration key (Go text such as 10s or a number of seconds) that must be >= 0."""
    result: Duration = key(name, Duration(float(seconds)), doc=doc,
                           check=_duration_not_negative)
    return result


def _no_empty_names(names: tuple[str, ...]) -> str | None:
    if any(not n.strip() for n in names):
        return "names must not be empty"
    return None


def _address_problem(text: str) -> str | None:
    try:
        parse_address(text)
    except ValueError as exc:
        return str(exc)
    return None


def _non_negative(**values: int) -> Iterator[tuple[str, str]]:
    for name, value in values.items():
        if value < 0:
            yield name, f"must not be negative, got {value}"


def _ip_list(name: str, values: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    for i, value in enumerate(values):
        problem = check_ip_or_cidr(value)
        if problem:
            yield f"{name}[{i}]", problem


_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


# --------------------------------------------------------------------------- global, transports

@dataclass(frozen=True)
class Global:
    check_new_version: bool = key(
        "checkNewVersion", True,
        doc="Accepted for compatibility; wsgate never checks for new versions.")
    send_anonymous_usage: bool = key(
        "sendAnonymousUsage", False,
        doc="Accepted for compatibility; wsgate never sends usage statistics.")
    not_append_x_forwarded_for: bool = key(
        "notAppendXForwardedFor", False,
        doc="Do not append the client address to X-Forwarded-For, on every entryPoint.")


@dataclass(frozen=True)
class ForwardingTimeouts:
    dial_timeout: Duration = duration_key(
        "dialTimeout", 30.0, doc="Time allowed to connect to a backend; 0 = none.")
    response_header_timeout: Duration = duration_key(
        "responseHeaderTimeout", 0.0,
        doc="Time allowed for a backend's response head after the request; 0 = none.")
    idle_conn_timeout: Duration = duration_key(
        "idleConnTimeout", 90.0, doc="How long an idle pooled backend connection is kept.")


@dataclass(frozen=True)
class Spiffe:
    ids: tuple[str, ...] = key("ids", (), doc="Allowed SPIFFE IDs.")
    trust_domain: str = key("trustDomain", "", doc="Allowed SPIFFE trust domain.")


@dataclass(frozen=True)
class ServersTransport:
    insecure_skip_verify: bool = key(
        "insecureSkipVerify", False, doc="Do not verify backend TLS certificates.")
    root_cas: tuple[str, ...] = key(
        "rootCAs", (), doc="Extra CA certificates (file paths or PEM) to verify backends.")
    max_idle_conns_per_host: int = key(
        "maxIdleConnsPerHost", 200,
        doc="Idle pooled connections kept per backend; negative disables reuse.")
    forwarding_timeouts: ForwardingTimeouts = key(
        "forwardingTimeouts", factory=ForwardingTimeouts, doc="Backend timeouts.")
    spiffe: Spiffe | None = key(
        "spiffe", None, doc="SPIFFE backend authentication (not supported by wsgate).")


# --------------------------------------------------------------------------- entryPoints

@dataclass(frozen=True)
class LifeCycle:
    request_accept_grace_timeout: Duration = duration_key(
        "requestAcceptGraceTimeout", 0.0,
        doc="Keep accepting requests this long after a stop signal.")
    grace_time_out: Duration = duration_key(
        "graceTimeOut", 10.0, doc="Time given to active requests and WebSockets to finish on stop.")


@dataclass(frozen=True)
class RespondingTimeouts:
    read_timeout: Duration = duration_key(
        "readTimeout", 60.0, doc="Maximum time to read a whole request (head and body); 0 = none.")
    write_timeout: Duration = duration_key(
        "writeTimeout", 0.0, doc="Maximum time to write a response; 0 = none.")
    idle_timeout: Duration = duration_key(
        "idleTimeout", 180.0, doc="Maximum idle time of a keep-alive connection; 0 = none.")


@dataclass(frozen=True)
class EntryPointTransport:
    life_cycle: LifeCycle = key("lifeCycle", factory=LifeCycle, doc="Shutdown timing.")
    responding_timeouts: RespondingTimeouts = key(
        "respondingTimeouts", factory=RespondingTimeouts, doc="Client-side timeouts.")
    keep_alive_max_time: Duration = duration_key(
        "keepAliveMaxTime", 0.0, doc="Close a keep-alive connection after this long; 0 = no limit.")
    keep_alive_max_requests: int = key(
        "keepAliveMaxRequests", 0, check=_not_negative,
        doc="Close a keep-alive connection after this many requests; 0 = no limit.")


@dataclass(frozen=True)
class ProxyProtocol:
    insecure: bool = key("insecure", False, doc="Trust PROXY protocol headers from anyone.")
    trusted_ips: tuple[str, ...] = key(
        "trustedIPs", (), doc="Trust PROXY protocol headers only from these IPs/CIDRs.")

    def validate(self) -> Iterator[tuple[str, str]]:
        yield from _ip_list("trustedIPs", self.trusted_ips)


@dataclass(frozen=True)
class ForwardedHeaders:
    insecure: bool = key("insecure", False, doc="Trust X-Forwarded-* headers from anyone.")
    trusted_ips: tuple[str, ...] = key(
        "trustedIPs", (), doc="Trust X-Forwarded-* headers only from these IPs/CIDRs.")
    connection: tuple[str, ...] = key(
        "connection", (),
        doc="Headers named in Connection that are kept through the middleware chain.")
    not_append_x_forwarded_for: bool = key(
        "notAppendXForwardedFor", False,
        doc="Do not append the client address to X-Forwarded-For.")
    add_x_forwarded_scheme_headers: bool = key(
        "addXForwardedSchemeHeaders", False, doc="Also set X-Forwarded-Scheme and X-Scheme.")

    def validate(self) -> Iterator[tuple[str, str]]:
        yield from _ip_list("trustedIPs", self.trusted_ips)
        for i, name in enumerate(self.connection):
            if not _TOKEN.match(name):
                yield f"connection[{i}]", f"{name!r} is not a header name"


@dataclass(frozen=True)
class RedirectEntryPoint:
    to: str = key("to", doc="Target entryPoint name, or a port written ':443'.")
    scheme: str = key("scheme", "https", doc="Scheme of the redirect target.")
    permanent: bool = key(
        "permanent", True, doc="Permanent (301/308) instead of temporary (302/307).")
    priority: int = key(
        "priority", REDIRECT_PRIORITY,
        doc="Priority of the generated redirect router (math.MaxInt - 1).")

    def validate(self) -> Iterator[tuple[str, str]]:
        if not self.to.strip():
            yield "to", "must name an entryPoint or a port such as ':443'"
        if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*$", self.scheme):
            yield "scheme", f"{self.scheme!r} is not a URL scheme (e.g. https)"
        if self.priority < 0:
            yield "priority", f"must not be negative, got {self.priority}"


@dataclass(frozen=True)
class Redirections:
    entry_point: RedirectEntryPoint | None = key(
        "entryPoint", None, doc="Redirect every request of this entryPoint to another one.")


@dataclass(frozen=True)
class Domain:
    main: str = key("main", "", doc="Main domain name.")
    sans: tuple[str, ...] = key("sans", (), doc="Subject alternative names.")

    def validate(self) -> Iterator[tuple[str, str]]:
        if not self.main.strip():
            yield "main", "a domain needs a main name"


@dataclass(frozen=True)
class EntryPointTLS:
    options: str = key("options", "", doc="Default TLS options for the entryPoint's routers.")
    cert_resolver: str = key(
        "certResolver", "", doc="Default certificate resolver (ACME is not supported).")
    domains: tuple[Domain, ...] = key("domains", (), doc="Default TLS domains.")


@dataclass(frozen=True)
class EncodedCharacters:
    allow_encoded_slash: bool = key("allowEncodedSlash", True, doc="Allow %2F in paths.")
    allow_encoded_back_slash: bool = key(
        "allowEncodedBackSlash", True, doc="Allow %5C in paths.")
    allow_encoded_null_character: bool = key(
        "allowEncodedNullCharacter", True, doc="Allow %00 in paths.")
    allow_encoded_semicolon: bool = key(
        "allowEncodedSemicolon", True, doc="Allow %3B in paths.")
    allow_encoded_percent: bool = key("allowEncodedPercent", True, doc="Allow %25 in paths.")
    allow_encoded_question_mark: bool = key(
        "allowEncodedQuestionMark", True, doc="Allow %3F in paths.")
    allow_encoded_hash: bool = key("allowEncodedHash", True, doc="Allow %23 in paths.")


@dataclass(frozen=True)
class EntryPointHTTP:
    redirections: Redirections | None = key(
        "redirections", None, doc="Entry point redirection.")
    middlewares: tuple[str, ...] = key(
        "middlewares", (), check=_no_empty_names,
        doc="Middlewares prepended to every router of the entryPoint.")
    tls: EntryPointTLS | None = key(
        "tls", None, doc="Default TLS for the entryPoint's routers (presence enables TLS).")
    encoded_characters: EncodedCharacters = key(
        "encodedCharacters", factory=EncodedCharacters,
        doc="Encoded characters allowed in request paths.")
    encode_query_semicolons: bool = key(
        "encodeQuerySemicolons", False, doc="Encode ';' in queries as %3B.")
    sanitize_path: bool = key(
        "sanitizePath", True, doc="Clean /./, /../ and repeated slashes in request paths.")
    max_header_bytes: int = key(
        "maxHeaderBytes", DEFAULT_MAX_HEADER_BYTES, check=_not_negative,
        doc="Maximum size of a request head in bytes; 0 means the default.")
    alias_headers_strategy: HeadersStrategy = key(
        "aliasHeadersStrategy", "",
        doc="Headers whose name aliases another (X_A, X.A for X-A): keep, delete or reject; "
            "unset keeps them.")
    underscore_headers_strategy: HeadersStrategy = key(
        "underscoreHeadersStrategy", "",
        doc="Headers with underscores: keep, delete or reject.",
        deprecated="underscoreHeadersStrategy is deprecated by Traefik; use aliasHeadersStrategy")


@dataclass(frozen=True)
class HTTP2Config:
    max_concurrent_streams: int = key(
        "maxConcurrentStreams", 250,
        doc="HTTP/2 streams per connection (wsgate serves HTTP/1.1; no effect).")
    max_decoder_header_table_size: int = key(
        "maxDecoderHeaderTableSize", 4096, doc="HTTP/2 HPACK decoder table size (no effect).")
    max_encoder_header_table_size: int = key(
        "maxEncoderHeaderTableSize", 4096, doc="HTTP/2 HPACK encoder table size (no effect).")

    def validate(self) -> Iterator[tuple[str, str]]:
        yield from _non_negative(
            maxConcurrentStreams=self.max_concurrent_streams,
            maxDecoderHeaderTableSize=self.max_decoder_header_table_size,
            maxEncoderHeaderTableSize=self.max_encoder_header_table_size)


@dataclass(frozen=True)
class HTTP3Config:
    advertised_port: int = key(
        "advertisedPort", 0, doc="UDP port advertised for HTTP/3 (not supported by wsgate).")

    def validate(self) -> Iterator[tuple[str, str]]:
        if not 0 <= self.advertised_port <= 65535:
            yield "advertisedPort", f"invalid port {self.advertised_port} (0-65535)"


@dataclass(frozen=True)
class UDPConfig:
    timeout: Duration = duration_key(
        "timeout", 3.0, doc="Idle UDP session timeout (UDP is not served by wsgate).")


@dataclass(frozen=True)
class Observability:
    access_logs: bool = key("accessLogs", True, doc="Access logs for this entryPoint.")
    metrics: bool = key("metrics", True, doc="Metrics for this entryPoint.")
    tracing: bool = key("tracing", True, doc="Tracing for this entryPoint (no tracing in wsgate).")
    trace_verbosity: Literal["minimal", "detailed"] = key(
        "traceVerbosity", "minimal", doc="Tracing verbosity (no tracing in wsgate).")


@dataclass(frozen=True)
class EntryPoint:
    address: str = key("address", check=_address_problem,
                       doc="Listening address: ':8000', '127.0.0.1:8000', '[::1]:8000', "
                           "':53/udp'.")
    allow_acme_by_pass: bool = key(
        "allowACMEByPass", False,
        doc="Let user routers handle ACME challenge paths (kept out of the redirect router).")
    reuse_port: bool = key(
        "reusePort", False, doc="Set SO_REUSEPORT so several processes share the port.")
    as_default: bool = key(
        "asDefault", False, doc="Routers without entryPoints attach to asDefault entryPoints.")
    transport: EntryPointTransport = key(
        "transport", factory=EntryPointTransport, doc="Client connection settings.")
    proxy_protocol: ProxyProtocol | None = key(
        "proxyProtocol", None, doc="Accept the PROXY protocol (presence enables it).")
    forwarded_headers: ForwardedHeaders = key(
        "forwardedHeaders", factory=ForwardedHeaders, doc="Trust of X-Forwarded-* headers.")
    http: EntryPointHTTP = key("http", factory=EntryPointHTTP, doc="HTTP settings.")
    http2: HTTP2Config = key("http2", factory=HTTP2Config, doc="HTTP/2 settings.")
    http3: HTTP3Config | None = key(
        "http3", None, doc="HTTP/3 (not supported by wsgate; a warning).")
    udp: UDPConfig = key("udp", factory=UDPConfig, doc="UDP settings.")
    observability: Observability = key(
        "observability", factory=Observability, doc="Per-entryPoint observability switches.")

    @property
    def listen(self) -> ListenAddress:
        """The parsed address (valid once the configuration has been decoded)."""
        return parse_address(self.address)

    @property
    def is_udp(self) -> bool:
        return self.listen.transport == "udp"


# --------------------------------------------------------------------------- providers

_DOCKER_SCHEMES = ("unix://", "tcp://", "http://", "https://", "ssh://", "npipe://")


def _docker_endpoint_problem(endpoint: str) -> str | None:
    if endpoint.startswith(_DOCKER_SCHEMES):
        return None
    return f"{endpoint!r} is not a Docker endpoint (expected {', '.join(_DOCKER_SCHEMES)}...)"


@dataclass(frozen=True)
class ClientTLS:
    ca: str = key("ca", "", doc="CA certificate file.")
    cert: str = key("cert", "", doc="Client certificate file.")
    key_: str = key("key", "", doc="Client private key file.")
    insecure_skip_verify: bool = key(
        "insecureSkipVerify", False, doc="Do not verify the server certificate.")


@dataclass(frozen=True)
class DockerProvider:
    exposed_by_default: bool = key(
        "exposedByDefault", True,
        doc="Expose containers without traefik.enable=true.")
    constraints: str = key(
        "constraints", "", doc="Label expression selecting containers, e.g. Label(`a`,`b`).")
    allow_empty_services: bool = key(
        "allowEmptyServices", False, doc="Keep services whose containers are all unhealthy.")
    network: str = key("network", "", doc="Default network to reach containers.")
    use_bind_port_ip: bool = key(
        "useBindPortIP", False, doc="Use the host's bound IP and port of the container.")
    watch: bool = key("watch", True, doc="Watch Docker events.")
    default_rule: str = key(
        "defaultRule", DOCKER_DEFAULT_RULE, doc="Rule template for routers without a rule.")
    endpoint: str = key(
        "endpoint", DOCKER_DEFAULT_ENDPOINT, check=_docker_endpoint_problem,
        doc="Docker API endpoint (unix:// or tcp://).")
    username: str = key("username", "", doc="Basic authentication user for the Docker API.")
    password: str = key("password", "", doc="Basic authentication password.")
    tls: ClientTLS | None = key("tls", None, doc="TLS to the Docker API.")
    http_client_timeout: Duration = duration_key(
        "httpClientTimeout", 0.0, doc="Docker API client timeout; 0 = none.")


@dataclass(frozen=True)
class SwarmProvider(DockerProvider):
    refresh_seconds: Duration = duration_key(
        "refreshSeconds", 15.0, doc="Polling interval of the Swarm API.")


@dataclass(frozen=True)
class FileProvider:
    directory: str = key("directory", "", doc="Load every .yml/.yaml/.toml file of a directory.")
    watch: bool = key("watch", True, doc="Reload on change.")
    filename: str = key("filename", "", doc="Load one file.")
    debug_log_generated_template: bool = key(
        "debugLogGeneratedTemplate", False, doc="Log the configuration after templating.")

    def validate(self) -> Iterator[tuple[str, str]]:
        if not self.directory.strip() and not self.filename.strip():
            yield "", "set filename or directory"


@dataclass(frozen=True)
class KubernetesCRDProvider:
    endpoint: str = key("endpoint", "", doc="API server URL (outside a cluster).")
    token: str = key("token", "", doc="Bearer token, or a path to a file holding it.")
    cert_auth_file_path: str = key(
        "certAuthFilePath", "", doc="CA file of the API server (outside a cluster).")
    namespaces: tuple[str, ...] = key("namespaces", (), doc="Namespaces to watch; all if empty.")
    allow_cross_namespace: bool = key(
        "allowCrossNamespace", False, doc="Allow references across namespaces.")
    allow_external_name_services: bool = key(
        "allowExternalNameServices", False, doc="Allow ExternalName services.")
    cross_provider_namespaces: tuple[str, ...] = key(
        "crossProviderNamespaces", (),
        doc="Namespaces allowed to reference other providers' objects.")
    label_selector: str = key("labelSelector", "", doc="Only objects matching these labels.")
    ingress_class: str = key("ingressClass", "", doc="Only objects of this ingress class.")
    throttle_duration: Duration = duration_key(
        "throttleDuration", 0.0, doc="Minimum time between two updates.")
    allow_empty_services: bool = key(
        "allowEmptyServices", False, doc="Keep services without endpoints.")
    native_lb_by_default: bool = key(
        "nativeLBByDefault", False, doc="Use the Service's cluster IP instead of endpoints.")
    disable_cluster_scope_resources: bool = key(
        "disableClusterScopeResources", False, doc="Do not look up cluster-scoped resources.")
    default_tls_resources_namespace: str = key(
        "defaultTLSResourcesNamespace", "", doc="Namespace of the default TLS store/options.")
    safe_naming: bool = key("safeNaming", False, doc="Use collision-free generated names.")


def _precedence_problem(names: tuple[str, ...]) -> str | None:
    bad = [n for n in names if n.lower() not in PROVIDER_NAMES]
    if bad:
        return (f"not a provider name: {', '.join(repr(b) for b in bad)} (known: "
                f"{', '.join(PROVIDER_NAMES)})")
    return None


_UNSUPPORTED_PROVIDERS = {
    name: f"the {name} provider is not supported by wsgate (supported: file, docker, swarm, "
          f"kubernetesCRD); ignored"
    for name in ("kubernetesIngress", "kubernetesIngressNGINX", "kubernetesGateway", "knative",
                 "rest", "consulCatalog", "nomad", "ecs", "consul", "etcd", "zooKeeper",
                 "redis", "http")
}
_UNSUPPORTED_PROVIDERS["plugin"] = _unsupported("provider plugins", plural=True)


@dataclass(frozen=True)
class Providers:
    __unsupported__ = _UNSUPPORTED_PROVIDERS

    providers_throttle_duration: Duration = duration_key(
        "providersThrottleDuration", 2.0, doc="Minimum time between two applied configurations.")
    precedence: tuple[str, ...] = key(
        "precedence", PROVIDER_NAMES, check=_precedence_problem,
        doc="Which provider wins routers' priority ties.")
    docker: DockerProvider | None = key("docker", None, doc="Docker labels provider.")
    swarm: SwarmProvider | None = key("swarm", None, doc="Docker Swarm labels provider.")
    file: FileProvider | None = key("file", None, doc="File provider (YAML/TOML).")
    kubernetes_crd: KubernetesCRDProvider | None = key(
        "kubernetesCRD", None, doc="Kubernetes IngressRoute CRD provider.")


# --------------------------------------------------------------------------- api, ping, metrics

_BASE_PATH = re.compile(r"^/[a-zA-Z0-9/_.:~-]*$")


@dataclass(frozen=True)
class API:
    insecure: bool = key(
        "insecure", False, doc="Serve the API and dashboard on the 'traefik' entryPoint.")
    dashboard: bool = key("dashboard", True, doc="Serve the dashboard.")
    debug: bool = key("debug", False, doc="Serve debugging endpoints.")
    base_path: str = key("basePath", "/", doc="Path prefix of the API and dashboard.")
    disable_dashboard_ad: bool = key(
        "disableDashboardAd", False, doc="Accepted for compatibility; no ads in wsgate.")
    dashboard_name: str = key("dashboardName", "", doc="Name shown by the dashboard.")

    def validate(self) -> Iterator[tuple[str, str]]:
        if not _BASE_PATH.match(self.base_path):
            yield "basePath", (f"{self.base_path!r} is not an absolute URL path "
                               f"(letters, digits and / _ . : ~ -)")


@dataclass(frozen=True)
class Ping:
    entry_point: str = key("entryPoint", INTERNAL_ENTRYPOINT, doc="EntryPoint serving /ping.")
    manual_routing: bool = key(
        "manualRouting", False, doc="Do not route /ping; use ping@internal in a router.")
    terminating_status_code: int = key(
        "terminatingStatusCode", 503, doc="Status of /ping while shutting down.")

    def validate(self) -> Iterator[tuple[str, str]]:
        if not 100 <= self.terminating_status_code <= 599:
            yield "terminatingStatusCode", (f"{self.terminating_status_code} is not an HTTP "
                                            f"status code (100-599)")


_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


@dataclass(frozen=True)
class Prometheus:
    buckets: tuple[float, ...] = key(
        "buckets", (0.1, 0.3, 1.2, 5.0), doc="Latency histogram buckets, in seconds.")
    add_entry_points_labels: bool = key(
        "addEntryPointsLabels", True, doc="Per-entryPoint metrics.")
    add_routers_labels: bool = key("addRoutersLabels", False, doc="Per-router metrics.")
    add_services_labels: bool = key("addServicesLabels", True, doc="Per-service metrics.")
    entry_point: str = key(
        "entryPoint", INTERNAL_ENTRYPOINT, doc="EntryPoint serving /metrics.")
    manual_routing: bool = key(
        "manualRouting", False, doc="Do not route /metrics; use prometheus@internal.")
    header_labels: Mapping[str, str] = key(
        "headerLabels", factory=frozen_map,
        doc="Extra requests_total labels, each taken from a request header.")

    def validate(self) -> Iterator[tuple[str, str]]:
        for i in range(1, len(self.buckets)):
            if self.buckets[i] <= self.buckets[i - 1]:
                yield f"buckets[{i}]", "buckets must be in increasing order"
                break
        for label in self.header_labels:
            if not _LABEL_NAME.match(label):
                yield f"headerLabels.{label}", f"{label!r} is not a Prometheus label name"


@dataclass(frozen=True)
class Metrics:
    __unsupported__ = {
        "datadog": _unsupported("Datadog metrics", plural=True),
        "statsD": _unsupported("StatsD metrics", plural=True),
        "influxDB2": _unsupported("InfluxDB metrics", plural=True),
        "otlp": _unsupported("OpenTelemetry metrics", plural=True),
    }

    add_internals: bool = key(
        "addInternals", False, doc="Also count internal services (ping, api, ...).")
    prometheus: Prometheus | None = key(
        "prometheus", None, doc="Prometheus exporter (presence enables it).")


# --------------------------------------------------------------------------- logs

@dataclass(frozen=True)
class Log:
    __unsupported__ = {"otlp": _unsupported("OpenTelemetry logging")}

    level: LogLevel = key(
        "level", "ERROR", doc="TRACE, DEBUG, INFO, WARN, ERROR, FATAL or PANIC.")
    format: Literal["common", "json"] = key("format", "common", doc="common or json.")
    no_color: bool = key("noColor", False, doc="No colours in the common format.")
    file_path: str = key("filePath", "", doc="Log file; standard output when empty.")
    max_size: int = key("maxSize", 0, doc="Rotate the log file at this many megabytes.")
    max_age: int = key("maxAge", 0, doc="Days to keep rotated files; 0 = forever.")
    max_backups: int = key("maxBackups", 0, doc="Rotated files to keep; 0 = all.")
    compress: bool = key("compress", False, doc="Gzip rotated files.")

    def validate(self) -> Iterator[tuple[str, str]]:
        yield from _non_negative(maxSize=self.max_size, maxAge=self.max_age,
                                 maxBackups=self.max_backups)


_STATUS_RANGE = re.compile(r"^\s*(\d{3})\s*(?:-\s*(\d{3})\s*)?$")


@dataclass(frozen=True)
class AccessLogFilters:
    status_codes: tuple[str, ...] = key(
        "statusCodes", (), doc="Keep only these statuses or ranges, e.g. 200, 300-302.")
    retry_attempts: bool = key("retryAttempts", False, doc="Keep requests that were retried.")
    min_duration: Duration = duration_key(
        "minDuration", 0.0, doc="Keep requests that took longer than this.")

    def validate(self) -> Iterator[tuple[str, str]]:
        for i, code in enumerate(self.status_codes):
            m = _STATUS_RANGE.match(code)
            if not m or (m.group(2) and int(m.group(2)) < int(m.group(1))):
                yield f"statusCodes[{i}]", (f"{code!r} is not a status code or a range "
                                            f"such as 500-599")


@dataclass(frozen=True)
class FieldHeaders:
    default_mode: KeepDropRedact = key(
        "defaultMode", "drop", doc="keep, drop or redact request/response headers.")
    names: Mapping[str, KeepDropRedact] = key(
        "names", factory=frozen_map, doc="Mode per header name.")


@dataclass(frozen=True)
class FieldQueryParameters:
    default_mode: KeepDrop = key("defaultMode", "keep", doc="keep or drop the query string.")


@dataclass(frozen=True)
class AccessLogFields:
    default_mode: KeepDrop = key("defaultMode", "keep", doc="keep or drop fields.")
    names: Mapping[str, KeepDrop] = key("names", factory=frozen_map, doc="Mode per field.")
    headers: FieldHeaders = key("headers", factory=FieldHeaders, doc="Header fields.")
    query_parameters: FieldQueryParameters = key(
        "queryParameters", factory=FieldQueryParameters, doc="Query string in RequestPath.")


@dataclass(frozen=True)
class AccessLog:
    __unsupported__ = {"otlp": _unsupported("OpenTelemetry access logs", plural=True)}

    file_path: str = key("filePath", "", doc="Access log file; standard output when empty.")
    format: Literal["common", "json", "genericCLF"] = key(
        "format", "common", doc="common, json or genericCLF.")
    filters: AccessLogFilters = key("filters", factory=AccessLogFilters, doc="What to log.")
    fields: AccessLogFields = key("fields", factory=AccessLogFields, doc="Fields (json).")
    buffering_size: int = key(
        "bufferingSize", 0, check=_not_negative,
        doc="Lines buffered before writing; 0 writes each line.")
    add_internals: bool = key(
        "addInternals", False, doc="Also log internal services (ping, api, ...).")
    dual_output: bool = key(
        "dualOutput", False, doc="Accepted for compatibility (OTLP is not supported).")


@dataclass(frozen=True)
class Core:
    default_rule_syntax: Literal["v3", "v2"] = key(
        "defaultRuleSyntax", "v3", doc="Rule syntax of routers without ruleSyntax.")
    strict_tls_options: bool = key(
        "strictTLSOptions", False,
        doc="Refuse, instead of falling back to default TLS options, on conflicting options.")


# --------------------------------------------------------------------------- root

@dataclass(frozen=True)
class StaticConfig:
    """The whole static configuration, as written (see :func:`finalize_static`)."""

    __unsupported__ = {
        "tcpServersTransport": _unsupported("TCP routing (tcpServersTransport)"),
        "certificatesResolvers": _unsupported("certificate resolvers (ACME)", plural=True),
        "tracing": _unsupported("tracing"),
        "hostResolver": _unsupported("hostResolver (CNAME flattening)"),
        "experimental": _unsupported("experimental features (plugins, fastProxy, ...)",
                                     plural=True),
        "spiffe": _unsupported("SPIFFE"),
        "ocsp": _unsupported("OCSP settings", plural=True),
    }

    global_: Global = key("global", factory=Global, doc="Global options.")
    servers_transport: ServersTransport = key(
        "serversTransport", factory=ServersTransport,
        doc="Default transport to backends (services without a serversTransport).")
    entry_points: Mapping[str, EntryPoint] = key(
        "entryPoints", factory=frozen_map, doc="Listening ports, by name.")
    providers: Providers = key("providers", factory=Providers, doc="Configuration providers.")
    api: API | None = key("api", None, doc="API and dashboard (presence enables them).")
    metrics: Metrics | None = key("metrics", None, doc="Metrics.")
    ping: Ping | None = key("ping", None, doc="/ping health check (presence enables it).")
    log: Log = key("log", factory=Log, doc="wsgate's own log.")
    access_log: AccessLog | None = key(
        "accessLog", None, doc="Access log (presence enables it).")
    core: Core = key("core", factory=Core, doc="Core behaviour.")

    def validate(self) -> Iterator[tuple[str, str]]:
        names = effective_entrypoint_names(self)
        udp = {n for n, ep in self.entry_points.items() if _transport_of(ep) == "udp"}

        def reference(path: str, target: str, what: str) -> Iterator[tuple[str, str]]:
            if target not in names:
                known = ", ".join(sorted(names)) or "none"
                yield path, f"{what} {target!r} is not a defined entryPoint (defined: {known})"
            elif target in udp:
                yield path, f"{what} {target!r} is a UDP entryPoint"

        for name, ep in self.entry_points.items():
            redirect = ep.http.redirections.entry_point if ep.http.redirections else None
            if redirect is not None and redirect.to.strip() \
                    and not re.match(r"^:\d+$", redirect.to):
                yield from reference(f"entryPoints.{name}.http.redirections.entryPoint.to",
                                     redirect.to, "redirection target")
        if self.ping is not None and not self.ping.manual_routing:
            yield from reference("ping.entryPoint", self.ping.entry_point, "ping entryPoint")
        prom = self.metrics.prometheus if self.metrics is not None else None
        if prom is not None and not prom.manual_routing:
            yield from reference("metrics.prometheus.entryPoint", prom.entry_point,
                                 "prometheus entryPoint")
        yield from _duplicate_addresses(self.entry_points)


def _transport_of(ep: EntryPoint) -> str | None:
    try:
        return ep.listen.transport
    except ValueError:
        return None


def _duplicate_addresses(entry_points: Mapping[str, EntryPoint]) -> Iterator[tuple[str, str]]:
    seen: dict[tuple[str, int, str], tuple[str, bool]] = {}
    for name, ep in entry_points.items():
        try:
            addr = ep.listen
        except ValueError:
            continue  # already reported by the entryPoint itself
        if addr.port == 0:
            continue
        ident = (addr.host, addr.port, addr.transport)
        if ident in seen:
            other, other_reuse = seen[ident]
            if not (ep.reuse_port and other_reuse):
                yield (f"entryPoints.{name}.address",
                       f"{ep.address!r} is also the address of entryPoint {other!r} (set "
                       f"reusePort on both to share a port)")
        else:
            seen[ident] = (name, ep.reuse_port)


# --------------------------------------------------------------------------- after decoding

def _needs_internal_entrypoint(cfg: StaticConfig) -> bool:
    if cfg.api is not None and cfg.api.insecure:
        return True
    if cfg.ping is not None and not cfg.ping.manual_routing \
            and cfg.ping.entry_point == INTERNAL_ENTRYPOINT:
        return True
    prom = cfg.metrics.prometheus if cfg.metrics is not None else None
    return prom is not None and not prom.manual_routing \
        and prom.entry_point == INTERNAL_ENTRYPOINT


def effective_entrypoint_names(cfg: StaticConfig) -> frozenset[str]:
    """The entryPoint names once Traefik's implicit entryPoints are added."""
    names = set(cfg.entry_points) or {DEFAULT_ENTRYPOINT}
    if _needs_internal_entrypoint(cfg):
        names.add(INTERNAL_ENTRYPOINT)
    return frozenset(names)


def finalize_static(cfg: StaticConfig) -> StaticConfig:
    """Apply what Traefik derives after loading (its SetEffectiveConfiguration).

    No entryPoint at all gives ``http`` on ``:80``; ``api.insecure``, or ping or prometheus
    routed on the ``traefik`` entryPoint (their default) without it being defined, gives
    ``traefik`` on ``:8080``. Also: provider precedence in lower case, swarm refreshSeconds
    of 0 back to 15s, maxHeaderBytes of 0 to 1 MiB. Idempotent.
    """
    entry_points = dict(cfg.entry_points)
    if not entry_points:
        entry_points[DEFAULT_ENTRYPOINT] = EntryPoint(address=DEFAULT_ENTRYPOINT_ADDRESS)
    if _needs_internal_entrypoint(cfg) and INTERNAL_ENTRYPOINT not in entry_points:
        entry_points[INTERNAL_ENTRYPOINT] = EntryPoint(address=INTERNAL_ENTRYPOINT_ADDRESS)
    for name, ep in entry_points.items():
        if ep.http.max_header_bytes == 0:
            http = dataclasses.replace(ep.http, max_header_bytes=DEFAULT_MAX_HEADER_BYTES)
            entry_points[name] = dataclasses.replace(ep, http=http)

    providers = cfg.providers
    precedence = tuple(p.lower() for p in providers.precedence)
    if precedence != providers.precedence:
        providers = dataclasses.replace(providers, precedence=precedence)
    if providers.swarm is not None and providers.swarm.refresh_seconds <= 0:
        swarm = dataclasses.replace(providers.swarm, refresh_seconds=Duration(15.0))
        providers = dataclasses.replace(providers, swarm=swarm)

    return dataclasses.replace(cfg, entry_points=frozen_map(entry_points), providers=providers)


def default_entrypoints(cfg: StaticConfig) -> tuple[str, ...]:
    """EntryPoints of routers that name none: every TCP entryPoint except ``traefik``, or only
    the ``asDefault`` ones when any is marked; sorted by name, as Traefik does."""
    eps = cfg.entry_points
    marked = any(ep.as_default for ep in eps.values())
    return tuple(sorted(
        name for name, ep in eps.items()
        if (ep.as_default or not marked) and name != INTERNAL_ENTRYPOINT
        and _transport_of(ep) != "udp"))


def feature_warnings(cfg: StaticConfig, marks: Mapping[str, Mark]) -> list[Diagnostic]:
    """Warnings for configured features that wsgate accepts but does not provide."""
    out: list[Diagnostic] = []

    def warn(path: str, message: str) -> None:
        out.append(Diagnostic(message, path, marks.get(path), "warning"))

    for name, ep in cfg.entry_points.items():
        prefix = f"entryPoints.{name}"
        if _transport_of(ep) == "udp":
            warn(f"{prefix}.address", "UDP entryPoints are not served by wsgate; ignored")
        if ep.http3 is not None:
            warn(f"{prefix}.http3", _unsupported("HTTP/3"))
        if f"{prefix}.http2" in marks:
            warn(f"{prefix}.http2", "wsgate serves HTTP/1.1 to clients; http2 settings have "
                                    "no effect")
        if ep.http.tls is not None and ep.http.tls.cert_resolver:
            warn(f"{prefix}.http.tls.certResolver",
                 "certificate resolvers (ACME) are not supported by wsgate; ignored")
    if cfg.servers_transport.spiffe is not None:
        warn("serversTransport.spiffe", _unsupported("SPIFFE"))
    if cfg.core.default_rule_syntax == "v2":
        warn("core.defaultRuleSyntax", "the v2 rule syntax is deprecated; use v3")
    files = cfg.providers.file
    if files is not None and files.directory.strip() and files.filename.strip():
        warn("providers.file.filename", "ignored: providers.file.directory is also set and "
                                        "takes precedence")
    return out


def root_keys() -> dict[str, str]:
    """Lower-cased root key -> its spelling, for every root key wsgate knows (even ignored)."""
    out = {f.metadata["key"].lower(): f.metadata["key"] for f, _ in model_fields(StaticConfig)}
    out.update({k.lower(): k for k in StaticConfig.__unsupported__})
    return out


__all__ = [
    "API", "AccessLog", "AccessLogFields", "AccessLogFilters", "ClientTLS", "Core",
    "DockerProvider", "Domain", "EncodedCharacters", "EntryPoint", "EntryPointHTTP",
    "EntryPointTLS", "EntryPointTransport", "FieldHeaders", "FieldQueryParameters",
    "FileProvider", "ForwardedHeaders", "ForwardingTimeouts", "Global", "HTTP2Config",
    "HTTP3Config", "KubernetesCRDProvider", "LifeCycle", "ListenAddress", "Log", "Metrics",
    "Observability", "Ping", "Prometheus", "Providers", "ProxyProtocol", "RedirectEntryPoint",
    "Redirections", "RespondingTimeouts", "ServersTransport", "Spiffe", "StaticConfig",
    "SwarmProvider", "UDPConfig", "check_ip_or_cidr", "default_entrypoints",
    "effective_entrypoint_names", "feature_warnings", "finalize_static", "parse_address",
    "root_keys",
]
