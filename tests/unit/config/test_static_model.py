"""The static model: Traefik's defaults, implicit entryPoints, addresses, and every validation
error located by file, key path and line (YAML and TOML)."""

from __future__ import annotations

import dataclasses
import socket

import pytest

from tests.unit.helpers import config_errors, decode_text
from wsgate.config.errors import ConfigError
from wsgate.config.static import (
    REDIRECT_PRIORITY,
    EntryPoint,
    ListenAddress,
    StaticConfig,
    default_entrypoints,
    effective_entrypoint_names,
    feature_warnings,
    finalize_static,
    parse_address,
)


def load(text: str, fmt: str = "yaml", *, strict: bool = False):
    return decode_text(StaticConfig, text, fmt, "traefik", strict=strict)


def errors_of(text: str, fmt: str = "yaml") -> list[str]:
    return config_errors(lambda: load(text, fmt))


# --------------------------------------------------------------------------- defaults

def test_no_configuration_gives_traefik_defaults():
    cfg = finalize_static(StaticConfig())
    assert list(cfg.entry_points) == ["http"]
    ep = cfg.entry_points["http"]
    assert ep.address == ":80"
    assert ep.transport.responding_timeouts.read_timeout == 60
    assert ep.transport.responding_timeouts.write_timeout == 0
    assert ep.transport.responding_timeouts.idle_timeout == 180
    assert ep.transport.life_cycle.grace_time_out == 10
    assert ep.transport.life_cycle.request_accept_grace_timeout == 0
    assert ep.http.max_header_bytes == 1048576
    assert ep.http.sanitize_path is True
    assert ep.http.encoded_characters.allow_encoded_slash is True
    assert ep.http2.max_concurrent_streams == 250
    assert ep.udp.timeout == 3
    assert ep.proxy_protocol is None and ep.http.tls is None
    assert cfg.global_.check_new_version is True
    assert cfg.servers_transport.max_idle_conns_per_host == 200
    ft = cfg.servers_transport.forwarding_timeouts
    assert (ft.dial_timeout, ft.response_header_timeout, ft.idle_conn_timeout) == (30, 0, 90)
    assert cfg.providers.providers_throttle_duration == 2
    assert cfg.providers.docker is None and cfg.providers.file is None
    assert cfg.api is None and cfg.ping is None and cfg.metrics is None
    assert cfg.access_log is None
    assert (cfg.log.level, cfg.log.format) == ("ERROR", "common")
    assert cfg.core.default_rule_syntax == "v3"


def test_enabled_sections_take_traefik_defaults():
    cfg = load("""
        entryPoints:
          web:
            address: ":8000"
            http:
              redirections:
                entryPoint: {to: websecure}
          websecure:
            address: ":8443"
        api: {}
        ping:
        metrics:
          prometheus: {}
        accessLog: {}
        providers:
          docker: {}
          swarm: {}
          file: {filename: dyn.yml}
    """).value
    assert cfg.api is not None
    assert (cfg.api.dashboard, cfg.api.base_path, cfg.api.insecure) == (True, "/", False)
    assert cfg.ping is not None
    assert (cfg.ping.entry_point, cfg.ping.terminating_status_code) == ("traefik", 503)
    assert cfg.metrics is not None and cfg.metrics.prometheus is not None
    prom = cfg.metrics.prometheus
    assert prom.buckets == (0.1, 0.3, 1.2, 5.0)
    assert (prom.add_entry_points_labels, prom.add_routers_labels,
            prom.add_services_labels, prom.entry_point) == (True, False, True, "traefik")
    assert cfg.access_log is not None
    assert cfg.access_log.format == "common"
    assert cfg.access_log.fields.default_mode == "keep"
    assert cfg.access_log.fields.headers.default_mode == "drop"
    docker = cfg.providers.docker
    assert docker is not None
    assert docker.endpoint == "unix:///var/run/docker.sock"
    assert docker.exposed_by_default is True and docker.watch is True
    assert docker.default_rule == "Host(`{{ normalize .Name }}`)"
    assert cfg.providers.swarm is not None and cfg.providers.swarm.refresh_seconds == 15
    assert cfg.providers.file is not None and cfg.providers.file.watch is True
    redirect = cfg.entry_points["web"].http.redirections.entry_point
    assert (redirect.scheme, redirect.permanent) == ("https", True)
    assert redirect.priority == REDIRECT_PRIORITY == 2**63 - 2


def test_non_optional_section_named_without_keys_takes_defaults():
    cfg = load("log:\nentryPoints:\n  web:\n    address: ':1'\n    transport:\n").value
    assert cfg.log.level == "ERROR"
    assert cfg.entry_points["web"].transport.responding_timeouts.read_timeout == 60


def test_values_are_decoded_with_traefik_spellings_and_case_insensitive_choices():
    cfg = load("""
        entryPoints:
          web:
            address: "[::1]:8000"
            transport:
              respondingTimeouts: {readTimeout: 42, idleTimeout: 1m30s}
            forwardedHeaders:
              trustedIPs: ["10.0.0.0/8", "::1", "192.168.1.7"]
        log: {level: debug, format: JSON}
        accessLog: {format: genericclf, filters: {statusCodes: ["200", "500-599"]}}
    """).value
    rt = cfg.entry_points["web"].transport.responding_timeouts
    assert (rt.read_timeout, rt.idle_timeout) == (42, 90)
    assert cfg.entry_points["web"].forwarded_headers.trusted_ips[1] == "::1"
    assert (cfg.log.level, cfg.log.format) == ("DEBUG", "json")
    assert cfg.access_log is not None and cfg.access_log.format == "genericCLF"


# --------------------------------------------------------------------------- implicit entryPoints

@pytest.mark.parametrize("text", [
    "api: {insecure: true}",
    "ping: {}",
    "metrics: {prometheus: {}}",
])
def test_internal_entrypoint_is_created_when_needed(text):
    cfg = finalize_static(load("entryPoints: {web: {address: ':8000'}}\n" + text).value)
    assert sorted(cfg.entry_points) == ["traefik", "web"]
    assert cfg.entry_points["traefik"].address == ":8080"


@pytest.mark.parametrize("text", [
    "api: {}",
    "ping: {manualRouting: true}",
    "ping: {entryPoint: web}",
    "metrics: {prometheus: {entryPoint: web}}",
    "metrics: {prometheus: {manualRouting: true}}",
])
def test_internal_entrypoint_is_not_created_otherwise(text):
    cfg = finalize_static(load("entryPoints: {web: {address: ':8000'}}\n" + text).value)
    assert list(cfg.entry_points) == ["web"]


def test_defined_traefik_entrypoint_is_kept_and_implicit_ones_combine():
    cfg = finalize_static(load("""
        entryPoints: {traefik: {address: "127.0.0.1:9000"}}
        api: {insecure: true}
    """).value)
    assert cfg.entry_points["traefik"].address == "127.0.0.1:9000"
    cfg = finalize_static(load("ping: {}").value)
    assert {n: ep.address for n, ep in cfg.entry_points.items()} == \
        {"http": ":80", "traefik": ":8080"}
    assert effective_entrypoint_names(load("ping: {}").value) == {"http", "traefik"}


def test_finalize_is_idempotent_and_returns_new_objects():
    raw = load("""
        entryPoints: {web: {address: ':8000', http: {maxHeaderBytes: 0}}}
        providers: {precedence: [File, Docker], swarm: {refreshSeconds: 0}}
    """).value
    cfg = finalize_static(raw)
    assert cfg is not raw and raw.entry_points["web"].http.max_header_bytes == 0
    assert cfg.entry_points["web"].http.max_header_bytes == 1048576
    assert cfg.providers.precedence == ("file", "docker")
    assert cfg.providers.swarm is not None and cfg.providers.swarm.refresh_seconds == 15
    assert finalize_static(cfg) == cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.log = None  # type: ignore[misc, assignment]


def test_default_entrypoints():
    cfg = finalize_static(load("""
        entryPoints:
          websecure: {address: ":443"}
          web: {address: ":80"}
          dns: {address: ":53/udp"}
        api: {insecure: true}
    """).value)
    assert default_entrypoints(cfg) == ("web", "websecure")
    marked = load("""
        entryPoints:
          web: {address: ":80"}
          websecure: {address: ":443", asDefault: true}
          other: {address: ":81", asDefault: true}
    """).value
    assert default_entrypoints(marked) == ("other", "websecure")


# --------------------------------------------------------------------------- addresses

@pytest.mark.parametrize("text, expected", [
    (":8000", ListenAddress("", 8000, "tcp")),
    ("127.0.0.1:8000", ListenAddress("127.0.0.1", 8000, "tcp")),
    ("[::1]:8000", ListenAddress("::1", 8000, "tcp")),
    ("[::]:8443", ListenAddress("::", 8443, "tcp")),
    ("[fe80::1%eth0]:80", ListenAddress("fe80::1%eth0", 80, "tcp")),
    ("localhost:8000", ListenAddress("localhost", 8000, "tcp")),
    (":53/udp", ListenAddress("", 53, "udp")),
    (":53/UDP", ListenAddress("", 53, "udp")),
    (":443/tcp", ListenAddress("", 443, "tcp")),
    (":0", ListenAddress("", 0, "tcp")),
])
def test_parse_address(text, expected):
    assert parse_address(text) == expected


def test_port_may_be_a_service_name():
    try:
        socket.getservbyname("http", "tcp")
    except OSError:
        pytest.skip("no services database (/etc/services) on this machine")
    assert parse_address(":http") == ListenAddress("", 80, "tcp")


def test_listen_address_formats_back():
    assert str(parse_address("[::1]:8000")) == "[::1]:8000"
    assert str(parse_address(":53/udp")) == ":53/udp"


@pytest.mark.parametrize("text, fragment", [
    ("8000", "missing port in '8000' (write ':8000'"),
    ("localhost", "missing port"),
    ("127.0.0.1:", "missing port"),
    (":99999", "invalid port 99999"),
    (":nosuchservice", "invalid port 'nosuchservice'"),
    ("::1:8000", "IPv6 addresses are written in brackets"),
    ("[::1:8000", "missing ']'"),
    ("[::1]", "missing port"),
    ("[nothost]:80", "is not an IPv6 address"),
    (":8443/sctp", "invalid protocol 'sctp'"),
    ("bad host:80", "invalid host"),
    ("", "an address is required"),
])
def test_bad_addresses(text, fragment):
    with pytest.raises(ValueError) as info:
        parse_address(text)
    assert fragment in str(info.value)


# --------------------------------------------------------------------------- located errors

def test_address_error_names_file_key_and_line_yaml():
    errors = errors_of("""
        entryPoints:
          web:
            address: "8000"
    """)
    assert errors == ["traefik.yml:4:14: entryPoints.web.address: missing port in '8000' "
                      "(write ':8000' to listen on port 8000 of every interface)"]


def test_address_error_names_file_key_and_line_toml():
    errors = errors_of("""
        [entryPoints]
          [entryPoints.web]
            address = ":99999"
    """, "toml")
    assert errors == ["traefik.toml:4:5: entryPoints.web.address: invalid port 99999 in "
                      "':99999' (0-65535)"]


def test_every_error_is_reported_at_once():
    errors = errors_of("""
        entryPoints:
          web:
            address: ":99999"
            transport:
              respondingTimeouts:
                readTimeout: -1s
                idleTimeout: soon
            forwardedHeaders:
              trustedIPs: ["10.0.0.0/8", "1.2.3.400"]
        log:
          level: verbose
    """)
    assert errors == [
        "traefik.yml:4:14: entryPoints.web.address: invalid port 99999 in ':99999' (0-65535)",
        "traefik.yml:7:22: entryPoints.web.transport.respondingTimeouts.readTimeout: "
        "must not be negative, got -1s",
        "traefik.yml:8:22: entryPoints.web.transport.respondingTimeouts.idleTimeout: "
        "invalid duration 'soon' (expected e.g. 10s, 1m30s, 250ms)",
        "traefik.yml:10:34: entryPoints.web.forwardedHeaders.trustedIPs[1]: '1.2.3.400' is "
        "not an IP address or a CIDR range (e.g. 10.0.0.0/8)",
        "traefik.yml:12:10: log.level: expected one of 'TRACE', 'DEBUG', 'INFO', 'WARN', "
        "'ERROR', 'FATAL', 'PANIC', got the text 'verbose'",
    ]


def test_errors_in_toml_are_located():
    errors = errors_of("""
        [entryPoints.web]
          address = ":8000"
          [entryPoints.web.transport.lifeCycle]
            graceTimeOut = "ten"
          [entryPoints.web.proxyProtocol]
            trustedIPs = ["nope"]
        [log]
          level = "LOUD"
    """, "toml")
    assert errors == [
        "traefik.toml:5:5: entryPoints.web.transport.lifeCycle.graceTimeOut: invalid duration "
        "'ten' (expected e.g. 10s, 1m30s, 250ms)",
        "traefik.toml:7:5: entryPoints.web.proxyProtocol.trustedIPs[0]: 'nope' is not an IP "
        "address or a CIDR range (e.g. 10.0.0.0/8)",
        "traefik.toml:9:3: log.level: expected one of 'TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', "
        "'FATAL', 'PANIC', got the text 'LOUD'",
    ]


def test_missing_address_is_required():
    assert errors_of("entryPoints:\n  web:\n    reusePort: true\n") == \
        ["traefik.yml:3:5: entryPoints.web.address: required key is missing"]


@pytest.mark.parametrize("text, expected", [
    ("entryPoints:\n  web:\n    address: ':80'\n    http:\n      redirections:\n"
     "        entryPoint:\n          to: websecure\n",
     "traefik.yml:7:11: entryPoints.web.http.redirections.entryPoint.to: redirection target "
     "'websecure' is not a defined entryPoint (defined: web)"),
    ("entryPoints:\n  web:\n    address: ':80'\nping:\n  entryPoint: nope\n",
     "traefik.yml:5:3: ping.entryPoint: ping entryPoint 'nope' is not a defined entryPoint "
     "(defined: web)"),
    ("entryPoints:\n  web:\n    address: ':80'\n  dns:\n    address: ':53/udp'\n"
     "metrics:\n  prometheus:\n    entryPoint: dns\n",
     "traefik.yml:8:5: metrics.prometheus.entryPoint: prometheus entryPoint 'dns' is a UDP "
     "entryPoint"),
    ("entryPoints:\n  a:\n    address: ':80'\n  b:\n    address: ':80'\n",
     "traefik.yml:5:5: entryPoints.b.address: ':80' is also the address of entryPoint 'a' "
     "(set reusePort on both to share a port)"),
    ("api:\n  basePath: 'no slash'\n",
     "traefik.yml:2:3: api.basePath: 'no slash' is not an absolute URL path (letters, digits "
     "and / _ . : ~ -)"),
    ("ping:\n  terminatingStatusCode: 42\n",
     "traefik.yml:2:3: ping.terminatingStatusCode: 42 is not an HTTP status code (100-599)"),
    ("accessLog:\n  filters:\n    statusCodes: ['200', '5xx']\n",
     "traefik.yml:3:26: accessLog.filters.statusCodes[1]: '5xx' is not a status code or a range "
     "such as 500-599"),
    ("providers:\n  file: {}\n",
     "traefik.yml:2:3: providers.file: set filename or directory"),
    ("providers:\n  precedence: [file, nope]\n",
     "traefik.yml:2:15: providers.precedence: not a provider name: 'nope' (known: "
     "kubernetesgateway, kubernetescrd, kubernetes, kubernetesingressnginx, swarm, docker, "
     "file, redis, knative, consul, consulcatalog, nomad, etcd, ecs, http, zookeeper, rest)"),
    ("providers:\n  docker:\n    endpoint: /var/run/docker.sock\n",
     "traefik.yml:3:15: providers.docker.endpoint: '/var/run/docker.sock' is not a Docker "
     "endpoint (expected unix://, tcp://, http://, https://, ssh://, npipe://...)"),
    ("entryPoints:\n  web:\n    address: ':80'\n    http:\n      maxHeaderBytes: -1\n",
     "traefik.yml:5:23: entryPoints.web.http.maxHeaderBytes: must not be negative, got -1"),
    ("entryPoints:\n  web:\n    address: ':80'\n    http:\n      tls:\n        domains:\n"
     "          - sans: [a.example.com]\n",
     "traefik.yml:7:13: entryPoints.web.http.tls.domains[0].main: a domain needs a main name"),
])
def test_validation_errors_are_located(text, expected):
    assert errors_of(text) == [expected]


def test_redirection_to_a_port_or_to_an_implicit_entrypoint_is_valid():
    load("entryPoints:\n  web:\n    address: ':80'\n    http:\n      redirections:\n"
         "        entryPoint: {to: ':443'}\n")
    load("entryPoints:\n  web:\n    address: ':80'\n    http:\n      redirections:\n"
         "        entryPoint: {to: traefik}\napi: {insecure: true}\n")


def test_reuse_port_allows_sharing_an_address():
    load("entryPoints:\n  a: {address: ':80', reusePort: true}\n"
         "  b: {address: ':80', reusePort: true}\n")


# --------------------------------------------------------------------------- warnings

def test_unknown_keys_warn_and_strict_makes_them_errors():
    text = "entryPoints:\n  web:\n    address: ':80'\n    adress: ':81'\n"
    decoded = load(text)
    assert [str(w) for w in decoded.warnings] == [
        "traefik.yml:4:5: entryPoints.web.adress: unknown key (known keys here: address, "
        "allowACMEByPass, asDefault, forwardedHeaders, http, http2, http3, observability, "
        "proxyProtocol, reusePort, transport, udp)"]
    with pytest.raises(ConfigError) as info:
        load(text, strict=True)
    assert str(info.value).startswith("traefik.yml:4:5: entryPoints.web.adress: unknown key")


def test_unsupported_traefik_keys_warn_even_with_strict():
    decoded = load("""
        tracing: {otlp: {}}
        certificatesResolvers:
          le: {acme: {storage: acme.json}}
        providers:
          kubernetesIngress: {}
        metrics:
          datadog: {}
    """, strict=True)
    assert [str(w) for w in decoded.warnings] == [
        "traefik.yml:2:1: tracing: tracing is not supported by wsgate; ignored",
        "traefik.yml:3:1: certificatesResolvers: certificate resolvers (ACME) are not "
        "supported by wsgate; ignored",
        "traefik.yml:6:3: providers.kubernetesIngress: the kubernetesIngress provider is not "
        "supported by wsgate (supported: file, docker, swarm, kubernetesCRD); ignored",
        "traefik.yml:8:3: metrics.datadog: Datadog metrics are not supported by wsgate; ignored",
    ]


def test_feature_warnings():
    decoded = load("""
        entryPoints:
          dns: {address: ":53/udp"}
          web:
            address: ":80"
            http2: {maxConcurrentStreams: 10}
            http3: {}
            http: {tls: {certResolver: le}, underscoreHeadersStrategy: keep}
        core: {defaultRuleSyntax: v2}
        serversTransport: {spiffe: {}}
    """)
    assert [str(w) for w in decoded.warnings] == [
        "traefik.yml:8:37: entryPoints.web.http.underscoreHeadersStrategy: "
        "underscoreHeadersStrategy is deprecated by Traefik; use aliasHeadersStrategy"]
    warnings = [str(w) for w in feature_warnings(decoded.value, decoded.marks)]
    assert warnings == [
        "traefik.yml:3:9: entryPoints.dns.address: UDP entryPoints are not served by wsgate; "
        "ignored",
        "traefik.yml:7:5: entryPoints.web.http3: HTTP/3 is not supported by wsgate; ignored",
        "traefik.yml:6:5: entryPoints.web.http2: wsgate serves HTTP/1.1 to clients; http2 "
        "settings have no effect",
        "traefik.yml:8:18: entryPoints.web.http.tls.certResolver: certificate resolvers (ACME) "
        "are not supported by wsgate; ignored",
        "traefik.yml:10:20: serversTransport.spiffe: SPIFFE is not supported by wsgate; ignored",
        "traefik.yml:9:8: core.defaultRuleSyntax: the v2 rule syntax is deprecated; use v3",
    ]


def test_entrypoint_helpers():
    ep = EntryPoint(address="[::1]:8000")
    assert ep.listen == ListenAddress("::1", 8000)
    assert not ep.is_udp and EntryPoint(address=":53/udp").is_udp
