"""The dynamic model: Traefik's defaults, every validation error located (YAML and TOML),
exactly-one-of checks, unknown and deprecated keys, and wsgate's extension namespace."""

from __future__ import annotations

import dataclasses

import pytest

from tests.unit.helpers import config_errors, decode_text
from wsgate.config.dynamic import (
    DynamicConfig,
    LoadBalancer,
    Middleware,
    Router,
    RouterExtension,
    ServersTransport,
    Service,
    TLSOptions,
)
from wsgate.config.errors import Mark
from wsgate.config.schema import decode, iter_keys
from wsgate.config.sources import flat_to_tree, split_flat_key


def load(text: str, fmt: str = "yaml", *, strict: bool = False):
    return decode_text(DynamicConfig, text, fmt, "dyn", strict=strict)


def config(text: str, fmt: str = "yaml") -> DynamicConfig:
    return load(text, fmt).value


def errors(text: str, fmt: str = "yaml", *, strict: bool = False) -> list[str]:
    return config_errors(lambda: load(text, fmt, strict=strict))


def labels(pairs: dict[str, str]) -> DynamicConfig:
    """Decode Docker-style labels (``traefik.`` stripped) the way a label provider will."""
    tree = flat_to_tree(
        [(split_flat_key(k.removeprefix("traefik.")), v, Mark(f"label {k}"))
         for k, v in pairs.items()], Mark("labels"))
    return decode(DynamicConfig, tree).value


# =========================================================================== defaults

def test_empty_document_gives_empty_configuration():
    cfg = config("")
    assert cfg == DynamicConfig()
    assert dict(cfg.http.routers) == {} and dict(cfg.tls.options) == {}


def test_router_defaults():
    r = config("""
        http:
          routers:
            r:
              rule: Path(`/`)
    """).http.routers["r"]
    assert r.rule == "Path(`/`)"
    assert r.rule_syntax == "" and r.priority == 0
    assert r.entry_points == () and r.middlewares == () and r.service == ""
    assert r.tls is None and r.observability is None and r.parent_refs == ()
    assert r.wsgate == RouterExtension()


@pytest.mark.parametrize("fmt,text", [
    ("yaml", "http: {routers: {r: {rule: x, tls: {}}}}"),
    ("yaml", "http:\n  routers:\n    r:\n      rule: x\n      tls:\n"),
    ("toml", '[http.routers.r]\nrule = "x"\n[http.routers.r.tls]\n'),
])
def test_empty_router_tls_enables_tls_with_default_options(fmt, text):
    tls = config(text, fmt).http.routers["r"].tls
    assert tls is not None
    assert tls.options == "default" and tls.cert_resolver == "" and tls.domains == ()


def test_router_observability_defaults():
    obs = config("http: {routers: {r: {rule: x, observability: {}}}}").http.routers["r"]
    assert obs.observability is not None
    assert obs.observability.access_logs is None
    assert obs.observability.trace_verbosity == "minimal"


def test_load_balancer_defaults():
    lb = config("""
        http:
          services:
            s:
              loadBalancer:
                servers:
                  - url: http://10.0.0.1:8000
    """).http.services["s"].load_balancer
    assert lb is not None
    assert lb.strategy == "wrr"
    assert lb.pass_host_header is True
    assert lb.servers_transport == ""
    assert lb.response_forwarding.flush_interval == pytest.approx(0.1)
    assert lb.sticky is None and lb.health_check is None and lb.passive_health_check is None
    server = lb.servers[0]
    assert server.weight is None and server.effective_weight == 1
    assert server.preserve_path is False


def test_pass_host_header_false_is_kept():
    lb = config("http: {services: {s: {loadBalancer: {passHostHeader: false}}}}")\
        .http.services["s"].load_balancer
    assert lb is not None and lb.pass_host_header is False


def test_health_check_defaults():
    hc = config("http: {services: {s: {loadBalancer: {healthCheck: {}}}}}")\
        .http.services["s"].load_balancer.health_check
    assert hc is not None
    assert (hc.interval, hc.timeout) == (30.0, 5.0)
    assert hc.unhealthy_interval is None and hc.effective_unhealthy_interval == 30.0
    assert hc.mode == "http" and hc.method == "GET" and hc.status == 0
    assert hc.follow_redirects is True and hc.port == 0 and dict(hc.headers) == {}


def test_health_check_durations_parse_go_syntax():
    hc = config("""
        http:
          services:
            s:
              loadBalancer:
                healthCheck: {interval: 1m30s, unhealthyInterval: 500ms, timeout: 2}
    """).http.services["s"].load_balancer.health_check
    assert (hc.interval, hc.unhealthy_interval, hc.timeout) == (90.0, 0.5, 2.0)
    assert hc.effective_unhealthy_interval == 0.5


def test_passive_health_check_and_sticky_defaults():
    lb = config("""
        http:
          services:
            s:
              loadBalancer:
                passiveHealthCheck: {}
                sticky: {cookie: {}}
    """).http.services["s"].load_balancer
    assert lb.passive_health_check.failure_window == 10.0
    assert lb.passive_health_check.max_failed_attempts == 1
    cookie = lb.sticky.cookie
    assert (cookie.name, cookie.path, cookie.secure, cookie.http_only, cookie.same_site,
            cookie.max_age, cookie.domain) == ("", "/", False, False, "", 0, "")


def test_sticky_without_cookie_is_not_enabled():
    lb = config("http: {services: {s: {loadBalancer: {sticky: {}}}}}")\
        .http.services["s"].load_balancer
    assert lb.sticky is not None and lb.sticky.cookie is None


def test_same_site_is_case_insensitive():
    lb = config("http: {services: {s: {loadBalancer: {sticky: {cookie: {sameSite: Lax}}}}}}")\
        .http.services["s"].load_balancer
    assert lb.sticky.cookie.same_site == "lax"


def test_weighted_mirroring_failover_hrw_defaults():
    services = config("""
        http:
          services:
            w: {weighted: {services: [{name: a}]}}
            m: {mirroring: {service: a, mirrors: [{name: b}]}}
            f: {failover: {service: a, fallback: b, errors: {}}}
            h: {highestRandomWeight: {services: [{name: a}]}}
    """).http.services
    assert services["w"].weighted.services[0].weight == 1
    assert services["w"].weighted.sticky is None
    assert services["m"].mirroring.mirror_body is True
    assert services["m"].mirroring.max_body_size == -1
    assert services["m"].mirroring.mirrors[0].percent == 0
    assert services["f"].failover.errors.max_request_body_bytes == -1
    assert services["f"].failover.errors.status == ()
    assert services["h"].highest_random_weight.services[0].weight == 1
    assert [services[n].kind for n in "wmfh"] == [
        "weighted", "mirroring", "failover", "highestRandomWeight"]


def test_service_level_health_check_is_a_presence_flag():
    w = config("http: {services: {w: {weighted: {services: [{name: a}], healthCheck: {}}}}}")\
        .http.services["w"].weighted
    assert w.health_check is not None


def test_servers_transport_defaults():
    st = config("http: {serversTransports: {t: {}}}").http.servers_transports["t"]
    assert st == ServersTransport()
    ft = st.forwarding_timeouts
    assert (ft.dial_timeout, ft.response_header_timeout, ft.idle_conn_timeout,
            ft.read_idle_timeout, ft.ping_timeout) == (30.0, 0.0, 90.0, 0.0, 15.0)
    assert st.max_idle_conns_per_host == 0 and st.effective_max_idle_conns_per_host == 2
    assert st.insecure_skip_verify is False and st.spiffe is None
    assert st.min_version == "" and st.peer_cert_sans == ()


def test_servers_transport_fields():
    st = config("""
        http:
          serversTransports:
            t:
              serverName: backend.internal
              insecureSkipVerify: true
              rootCAs: [/ca.pem, "-----BEGIN CERTIFICATE-----\\nMII\\n"]
              certificates: [{certFile: /c.pem, keyFile: /k.pem}]
              cipherSuites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]
              minVersion: VersionTLS12
              maxVersion: VersionTLS13
              maxIdleConnsPerHost: -1
              disableHTTP2: true
              peerCertSANs: [{type: URI, value: "spiffe://x/y"}]
              forwardingTimeouts: {dialTimeout: 5s, responseHeaderTimeout: 1m}
    """).http.servers_transports["t"]
    assert st.server_name == "backend.internal" and st.insecure_skip_verify
    assert st.root_cas[0] == "/ca.pem" and st.root_cas[1].startswith("-----BEGIN")
    assert st.certificates[0].cert_file == "/c.pem"
    assert st.effective_max_idle_conns_per_host == -1
    assert st.forwarding_timeouts.dial_timeout == 5.0
    assert st.forwarding_timeouts.response_header_timeout == 60.0
    assert st.forwarding_timeouts.idle_conn_timeout == 90.0
    assert st.peer_cert_sans[0].type == "URI"


def test_tls_defaults():
    tls = config("""
        tls:
          options:
            default: {}
            mtls:
              clientAuth:
                caFiles: [/ca.pem]
          stores:
            default: {}
          certificates:
            - certFile: /c.pem
              keyFile: /k.pem
    """).tls
    default = tls.options["default"]
    assert default == TLSOptions()
    assert default.min_version == "VersionTLS12" and default.max_version == ""
    assert default.alpn_protocols == ("h2", "http/1.1", "acme-tls/1")
    assert default.sni_strict is False and default.cipher_suites == ()
    assert default.client_auth.client_auth_type == ""
    assert default.client_auth.effective_type == "NoClientCert"
    assert tls.options["mtls"].client_auth.effective_type == "RequireAndVerifyClientCert"
    assert tls.stores["default"].default_certificate is None
    assert tls.certificates[0].stores == ()


def test_tls_certificate_may_be_inline_pem():
    cert = config("""
        tls:
          certificates:
            - certFile: |
                -----BEGIN CERTIFICATE-----
                MIIB
                -----END CERTIFICATE-----
              keyFile: /k.pem
              stores: [default]
    """).tls.certificates[0]
    assert cert.cert_file.startswith("-----BEGIN CERTIFICATE-----\n")
    assert cert.stores == ("default",)


def test_tls_store_default_generated_cert():
    store = config("""
        tls:
          stores:
            default:
              defaultCertificate: {certFile: /c.pem, keyFile: /k.pem}
              defaultGeneratedCert:
                resolver: le
                domain: {main: example.com, sans: [www.example.com]}
    """).tls.stores["default"]
    assert store.default_certificate.key_file == "/k.pem"
    assert store.default_generated_cert.domain.sans == ("www.example.com",)


def test_middleware_defaults():
    mw = config("""
        http:
          middlewares:
            basic: {basicAuth: {users: ["u:$apr1$x"]}}
            digest: {digestAuth: {}}
            rate: {rateLimit: {average: 10}}
            redis: {rateLimit: {redis: {}}}
            inflight: {inFlightReq: {amount: 5}}
            cb: {circuitBreaker: {expression: "NetworkErrorRatio() > 0.5"}}
            gz: {compress: {}}
            retry: {retry: {attempts: 3}}
            allow: {ipAllowList: {sourceRange: [10.0.0.0/8]}}
            fwd: {forwardAuth: {address: "http://auth"}}
            buf: {buffering: {}}
            strip: {stripPrefix: {prefixes: [/ws]}}
            ct: {contentType: {}}
            pass: {passTLSClientCert: {pem: true}}
    """).http.middlewares
    assert mw["basic"].basic_auth.realm == "traefik"
    assert mw["basic"].basic_auth.users == ("u:$apr1$x",)
    assert mw["digest"].digest_auth.realm == "traefik"
    assert (mw["rate"].rate_limit.period, mw["rate"].rate_limit.burst) == (1.0, 1)
    assert mw["rate"].rate_limit.source_criterion is None
    redis = mw["redis"].rate_limit.redis
    assert redis.endpoints == ("localhost:6379",)
    assert (redis.read_timeout, redis.write_timeout, redis.dial_timeout) == (3.0, 3.0, 5.0)
    assert mw["inflight"].in_flight_req.source_criterion is None
    cb = mw["cb"].circuit_breaker
    assert (cb.check_period, cb.fallback_duration, cb.recovery_duration, cb.response_code) \
        == (0.1, 10.0, 10.0, 503)
    gz = mw["gz"].compress
    assert gz.min_response_body_bytes == 1024 and gz.encodings == ("gzip", "br", "zstd")
    assert mw["retry"].retry.max_request_body_bytes == 2 * 1024 * 1024
    assert mw["retry"].retry.initial_interval == 0.0
    assert mw["allow"].ip_allow_list.reject_status_code == 403
    assert mw["fwd"].forward_auth.max_body_size == -1
    assert mw["fwd"].forward_auth.trust_forward_header is None
    assert mw["buf"].buffering.mem_request_body_bytes == 1048576
    assert mw["strip"].strip_prefix.force_slash is None
    assert mw["ct"].content_type.auto_detect is None
    assert mw["pass"].pass_tls_client_cert.info is None
    assert {name: m.kind for name, m in mw.items()}["gz"] == "compress"


def test_compress_and_content_type_accept_empty_toml_tables():
    mw = config("""
        [http.middlewares.gz.compress]
        [http.middlewares.ct.contentType]
    """, "toml").http.middlewares
    assert mw["gz"].kind == "compress" and mw["ct"].kind == "contentType"


def test_headers_middleware_every_field():
    h = config("""
        http:
          middlewares:
            h:
              headers:
                customRequestHeaders: {X-Script-Name: test, X-Drop: ""}
                customResponseHeaders: {X-Custom: value}
                accessControlAllowCredentials: true
                accessControlAllowHeaders: [Content-Type]
                accessControlAllowMethods: [GET, OPTIONS]
                accessControlAllowOriginList: ["https://a.example"]
                accessControlAllowOriginListRegex: ["https://.*\\\\.example"]
                accessControlExposeHeaders: [X-Exposed]
                accessControlMaxAge: 100
                addVaryHeader: true
                allowedHosts: [a.example]
                hostsProxyHeaders: [X-Forwarded-Host]
                sslProxyHeaders: {X-Forwarded-Proto: https}
                stsSeconds: 31536000
                stsIncludeSubdomains: true
                stsPreload: true
                forceSTSHeader: true
                frameDeny: true
                customFrameOptionsValue: SAMEORIGIN
                contentTypeNosniff: true
                browserXssFilter: true
                customBrowserXSSValue: "1; mode=block"
                contentSecurityPolicy: "default-src 'self'"
                contentSecurityPolicyReportOnly: "default-src 'none'"
                publicKey: pin
                referrerPolicy: same-origin
                permissionsPolicy: "camera=()"
                isDevelopment: true
    """).http.middlewares["h"].headers
    assert dict(h.custom_request_headers) == {"X-Script-Name": "test", "X-Drop": ""}
    assert h.access_control_max_age == 100 and h.sts_seconds == 31536000
    assert h.browser_xss_filter and h.is_development
    assert h.custom_browser_xss_value == "1; mode=block"
    assert dict(h.ssl_proxy_headers) == {"X-Forwarded-Proto": "https"}
    assert h.feature_policy is None and h.ssl_redirect is None


def test_plugin_middleware_decodes_with_a_warning():
    decoded = load("""
        http:
          middlewares:
            p:
              plugin:
                demo: {headers: {X-Demo: "1"}}
    """)
    assert decoded.value.http.middlewares["p"].kind == "plugin"
    assert dict(decoded.value.http.middlewares["p"].plugin) == {
        "demo": {"headers": {"X-Demo": "1"}}}
    assert any("plugins are not supported" in str(w) for w in decoded.warnings)


def test_model_defaults_match_declarations():
    # constructing models directly gives the same values as decoding an empty section
    assert config("http: {services: {s: {loadBalancer: {}}}}").http.services["s"] \
        == Service(load_balancer=LoadBalancer())
    assert config("http: {routers: {r: {rule: x}}}").http.routers["r"] == Router(rule="x")
    assert config("http: {middlewares: {m: {chain: {}}}}").http.middlewares["m"].chain \
        is not None
    assert Middleware().kinds() == []


# =========================================================================== validation

# Each case: YAML text, TOML text, the key path, the expected YAML and TOML line, and a piece
# of the message. Lines are 1-based lines of the (dedented) texts.
CASES = {
    "server url scheme": (
        """
        http:
          services:
            s:
              loadBalancer:
                servers:
                  - url: ftp://example.com
        """,
        """
        [[http.services.s.loadBalancer.servers]]
        url = "ftp://example.com"
        """,
        "http.services.s.loadBalancer.servers[0].url", 7, 3, "scheme must be http, https or h2c",
    ),
    "server url host": (
        """
        http:
          services:
            s:
              loadBalancer:
                servers:
                  - url: http://a:8000
                  - url: "http://:8000"
        """,
        """
        [[http.services.s.loadBalancer.servers]]
        url = "http://a:8000"
        [[http.services.s.loadBalancer.servers]]
        url = "http://:8000"
        """,
        "http.services.s.loadBalancer.servers[1].url", 8, 5, "no host",
    ),
    "server url port": (
        """
        http:
          services:
            s:
              loadBalancer:
                servers:
                  - url: http://a:99999
        """,
        """
        [[http.services.s.loadBalancer.servers]]
        url = "http://a:99999"
        """,
        "http.services.s.loadBalancer.servers[0].url", 7, 3, "invalid server URL",
    ),
    "server url missing": (
        """
        http:
          services:
            s:
              loadBalancer:
                servers:
                  - weight: 2
        """,
        """
        [[http.services.s.loadBalancer.servers]]
        weight = 2
        """,
        "http.services.s.loadBalancer.servers[0].url", 7, 2, "a server needs a url",
    ),
    "service without kind": (
        """
        http:
          services:
            lonely: {}
        """,
        """
        [http.services.lonely]
        """,
        "http.services.lonely", 4, 2, "exactly one of loadBalancer, weighted, mirroring",
    ),
    "service with two kinds": (
        """
        http:
          services:
            both:
              loadBalancer: {}
              weighted: {}
        """,
        """
        [http.services.both.loadBalancer]
        [http.services.both.weighted]
        """,
        "http.services.both", 4, 2, "found loadBalancer and weighted",
    ),
    "middleware without kind": (
        """
        http:
          middlewares:
            nothing: {}
        """,
        """
        [http.middlewares.nothing]
        """,
        "http.middlewares.nothing", 4, 2, "a middleware needs exactly one kind",
    ),
    "middleware with two kinds": (
        """
        http:
          middlewares:
            two:
              headers: {}
              stripPrefix: {prefixes: [/a]}
        """,
        """
        [http.middlewares.two.headers]
        [http.middlewares.two.stripPrefix]
        prefixes = ["/a"]
        """,
        "http.middlewares.two", 4, 2, "found stripPrefix and headers",
    ),
    "router without rule": (
        """
        http:
          routers:
            r:
              rule: ""
              service: s
        """,
        """
        [http.routers.r]
        rule = ""
        service = "s"
        """,
        "http.routers.r.rule", 5, 3, "a router needs a rule",
    ),
    "priority not an integer": (
        """
        http:
          routers:
            r:
              rule: x
              priority: high
        """,
        """
        [http.routers.r]
        rule = "x"
        priority = "high"
        """,
        "http.routers.r.priority", 6, 4, "expected an integer",
    ),
    "unknown rule syntax": (
        """
        http:
          routers:
            r:
              rule: x
              ruleSyntax: v4
        """,
        """
        [http.routers.r]
        rule = "x"
        ruleSyntax = "v4"
        """,
        "http.routers.r.ruleSyntax", 6, 4, "expected one of",
    ),
    "unknown strategy": (
        """
        http:
          services:
            s:
              loadBalancer:
                strategy: random
        """,
        """
        [http.services.s.loadBalancer]
        strategy = "random"
        """,
        "http.services.s.loadBalancer.strategy", 6, 3, "'wrr', 'p2c', 'hrw', 'leasttime'",
    ),
    "unknown health check mode": (
        """
        http:
          services:
            s:
              loadBalancer:
                healthCheck:
                  mode: tcp
        """,
        """
        [http.services.s.loadBalancer.healthCheck]
        mode = "tcp"
        """,
        "http.services.s.loadBalancer.healthCheck.mode", 7, 3, "'websocket'",
    ),
    "bad duration": (
        """
        http:
          services:
            s:
              loadBalancer:
                healthCheck:
                  interval: 10 parsecs
        """,
        """
        [http.services.s.loadBalancer.healthCheck]
        interval = "10 parsecs"
        """,
        "http.services.s.loadBalancer.healthCheck.interval", 7, 3, "invalid duration",
    ),
    "zero health check interval": (
        """
        http:
          services:
            s:
              loadBalancer:
                healthCheck:
                  interval: 0s
        """,
        """
        [http.services.s.loadBalancer.healthCheck]
        interval = "0s"
        """,
        "http.services.s.loadBalancer.healthCheck.interval", 7, 3, "must be positive",
    ),
    "mirror percent": (
        """
        http:
          services:
            m:
              mirroring:
                service: a
                mirrors:
                  - name: b
                    percent: 150
        """,
        """
        [http.services.m.mirroring]
        service = "a"
        [[http.services.m.mirroring.mirrors]]
        name = "b"
        percent = 150
        """,
        "http.services.m.mirroring.mirrors[0].percent", 9, 6, "between 0 and 100",
    ),
    "failover without fallback": (
        """
        http:
          services:
            f:
              failover:
                service: a
        """,
        """
        [http.services.f.failover]
        service = "a"
        """,
        "http.services.f.failover.fallback", 6, 2, "failover needs a fallback",
    ),
    "client auth type": (
        """
        tls:
          options:
            o:
              clientAuth:
                clientAuthType: RequireCert
        """,
        """
        [tls.options.o.clientAuth]
        clientAuthType = "RequireCert"
        """,
        "tls.options.o.clientAuth.clientAuthType", 6, 3, "'RequireAndVerifyClientCert'",
    ),
    "client auth without CA": (
        """
        tls:
          options:
            o:
              clientAuth:
                clientAuthType: RequireAndVerifyClientCert
        """,
        """
        [tls.options.o.clientAuth]
        clientAuthType = "RequireAndVerifyClientCert"
        """,
        "tls.options.o.clientAuth.clientAuthType", 6, 3, "needs caFiles",
    ),
    "tls version": (
        """
        tls:
          options:
            o:
              minVersion: TLS1.2
        """,
        """
        [tls.options.o]
        minVersion = "TLS1.2"
        """,
        "tls.options.o.minVersion", 5, 3, "'VersionTLS13'",
    ),
    "tls min above max": (
        """
        tls:
          options:
            o:
              minVersion: VersionTLS13
              maxVersion: VersionTLS12
        """,
        """
        [tls.options.o]
        minVersion = "VersionTLS13"
        maxVersion = "VersionTLS12"
        """,
        "tls.options.o.minVersion", 5, 3, "above the maximum",
    ),
    "cipher suite": (
        """
        tls:
          options:
            o:
              cipherSuites:
                - TLS_AES_128_GCM_SHA256
                - TLS_NOT_A_CIPHER
        """,
        """
        [tls.options.o]
        cipherSuites = ["TLS_AES_128_GCM_SHA256", "TLS_NOT_A_CIPHER"]
        """,
        "tls.options.o.cipherSuites[1]", 7, 3, "unknown cipher suite",
    ),
    "curve": (
        """
        tls:
          options:
            o:
              curvePreferences: [P-999]
        """,
        """
        [tls.options.o]
        curvePreferences = ["P-999"]
        """,
        "tls.options.o.curvePreferences[0]", 5, 3, "unknown curve",
    ),
    "certificate without key": (
        """
        tls:
          certificates:
            - certFile: /c.pem
        """,
        """
        [[tls.certificates]]
        certFile = "/c.pem"
        """,
        "tls.certificates[0].keyFile", 4, 2, "needs keyFile",
    ),
    "transport spiffe and tls": (
        """
        http:
          serversTransports:
            t:
              insecureSkipVerify: true
              spiffe: {ids: ["spiffe://x/y"]}
        """,
        """
        [http.serversTransports.t]
        insecureSkipVerify = true
        [http.serversTransports.t.spiffe]
        ids = ["spiffe://x/y"]
        """,
        "http.serversTransports.t.spiffe", 6, 4, "cannot be defined at the same time",
    ),
    "transport version": (
        """
        http:
          serversTransports:
            t:
              maxVersion: VersionTLS14
        """,
        """
        [http.serversTransports.t]
        maxVersion = "VersionTLS14"
        """,
        "http.serversTransports.t.maxVersion", 5, 3, "expected one of",
    ),
    "allow list range": (
        """
        http:
          middlewares:
            a:
              ipAllowList:
                sourceRange: [10.0.0.0/8, not-an-ip]
        """,
        """
        [http.middlewares.a.ipAllowList]
        sourceRange = ["10.0.0.0/8", "not-an-ip"]
        """,
        "http.middlewares.a.ipAllowList.sourceRange[1]", 6, 3, "not an IP address",
    ),
    "ipv6 subnet": (
        """
        http:
          middlewares:
            a:
              rateLimit:
                sourceCriterion:
                  ipStrategy:
                    ipv6Subnet: 129
        """,
        """
        [http.middlewares.a.rateLimit.sourceCriterion.ipStrategy]
        ipv6Subnet = 129
        """,
        "http.middlewares.a.rateLimit.sourceCriterion.ipStrategy.ipv6Subnet", 8, 3,
        "between 1 and 128",
    ),
    "compress include and exclude": (
        """
        http:
          middlewares:
            c:
              compress:
                excludedContentTypes: [text/event-stream]
                includedContentTypes: [text/html]
        """,
        """
        [http.middlewares.c.compress]
        excludedContentTypes = ["text/event-stream"]
        includedContentTypes = ["text/html"]
        """,
        "http.middlewares.c.compress.includedContentTypes", 7, 4, "cannot both be set",
    ),
    "errors without service": (
        """
        http:
          middlewares:
            e:
              errors:
                status: ["500-599"]
        """,
        """
        [http.middlewares.e.errors]
        status = ["500-599"]
        """,
        "http.middlewares.e.errors.service", 6, 2, "errors needs a service",
    ),
    "name with @": (
        """
        http:
          routers:
            r@file:
              rule: x
        """,
        """
        [http.routers."r@file"]
        rule = "x"
        """,
        "http.routers.r@file", 4, 2, "cannot contain '@'",
    ),
    "tls options name with @": (
        """
        tls:
          options:
            o@file: {}
        """,
        """
        [tls.options."o@file"]
        """,
        "tls.options.o@file", 4, 2, "cannot contain '@'",
    ),
    "extension negative": (
        """
        http:
          routers:
            r:
              rule: x
              wsgate:
                idleTimeout: -5s
        """,
        """
        [http.routers.r]
        rule = "x"
        [http.routers.r.wsgate]
        idleTimeout = "-5s"
        """,
        "http.routers.r.wsgate.idleTimeout", 7, 5, "must not be negative",
    ),
    "extension ping timeout alone": (
        """
        http:
          routers:
            r:
              rule: x
              wsgate:
                pingTimeout: 5s
        """,
        """
        [http.routers.r]
        rule = "x"
        [http.routers.r.wsgate]
        pingTimeout = "5s"
        """,
        "http.routers.r.wsgate.pingTimeout", 7, 5, "needs pingInterval",
    ),
    "extension forwarded proto": (
        """
        http:
          routers:
            r:
              rule: x
              wsgate:
                forwardedProtoForUpgrade: https
        """,
        """
        [http.routers.r]
        rule = "x"
        [http.routers.r.wsgate]
        forwardedProtoForUpgrade = "https"
        """,
        "http.routers.r.wsgate.forwardedProtoForUpgrade", 7, 5, "'ws', 'http'",
    ),
    "load balancer extension negative": (
        """
        http:
          services:
            s:
              loadBalancer:
                wsgate:
                  maxConnectionsPerServer: -1
        """,
        """
        [http.services.s.loadBalancer.wsgate]
        maxConnectionsPerServer = -1
        """,
        "http.services.s.loadBalancer.wsgate.maxConnectionsPerServer", 7, 3,
        "must not be negative",
    ),
}


@pytest.mark.parametrize("fmt", ["yaml", "toml"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_validation_error_is_located(case, fmt):
    yaml_text, toml_text, path, yaml_line, toml_line, fragment = CASES[case]
    text = yaml_text if fmt == "yaml" else toml_text
    source, line = ("dyn.yml", yaml_line) if fmt == "yaml" else ("dyn.toml", toml_line)
    found = errors(text, fmt)
    matching = [e for e in found if f": {path}: " in e]
    assert matching, f"no error at {path}: {found}"
    assert any(fragment in e for e in matching), found
    assert any(e.startswith(f"{source}:{line}:") for e in matching), found


def test_every_error_of_a_file_is_reported_at_once():
    found = errors("""
        http:
          routers:
            a: {rule: ""}
          services:
            b: {}
            c: {loadBalancer: {servers: [{url: "nope"}]}}
          middlewares:
            d: {}
    """)
    assert len(found) == 4
    assert [e.split(": ")[1] for e in found] == [
        "http.routers.a.rule", "http.services.b",
        "http.services.c.loadBalancer.servers[0].url", "http.middlewares.d"]


@pytest.mark.parametrize("url", [
    "http://10.0.0.1", "https://backend:8443", "h2c://grpc:50051", "http://[::1]:8080",
    "HTTP://Upper.Example:80/prefix", "http://user@host:1/p?q=1",
])
def test_valid_server_urls(url):
    lb = config(f"http: {{services: {{s: {{loadBalancer: {{servers: [{{url: '{url}'}}]}}}}}}}}")\
        .http.services["s"].load_balancer
    assert lb.servers[0].url == url


# =========================================================================== unknown keys

UNKNOWN = """
http:
  routers:
    r:
      rule: x
      rulez: y
"""


def test_unknown_key_is_a_located_warning():
    decoded = load(UNKNOWN)
    assert decoded.value.http.routers["r"].rule == "x"
    [warning] = decoded.warnings
    assert warning.level == "warning"
    assert str(warning).startswith("dyn.yml:6:7: http.routers.r.rulez: unknown key")


def test_unknown_key_is_an_error_when_strict():
    [error] = errors(UNKNOWN, strict=True)
    assert error.startswith("dyn.yml:6:7: http.routers.r.rulez: unknown key")
    assert "rule" in error  # the known keys are listed


@pytest.mark.parametrize("section", ["tcp", "udp"])
def test_tcp_and_udp_are_accepted_with_a_warning(section):
    decoded = load(f"{section}:\n  routers: {{}}\nhttp: {{}}\n")
    [warning] = decoded.warnings
    assert f"{section}" in warning.message and "not supported" in warning.message
    assert warning.path == section


def test_http_models_are_accepted_with_a_warning():
    decoded = load("http:\n  models:\n    web: {middlewares: [a]}\n")
    assert [w.path for w in decoded.warnings] == ["http.models"]


def test_keys_are_case_insensitive_like_traefik():
    r = config("HTTP: {Routers: {r: {RULE: x, EntryPoints: [web]}}}").http.routers["r"]
    assert (r.rule, r.entry_points) == ("x", ("web",))


@pytest.mark.parametrize("text,path", [
    ("http: {routers: {r: {rule: x, ruleSyntax: v2}}}", "http.routers.r.ruleSyntax"),
    ("http: {middlewares: {m: {ipWhiteList: {sourceRange: [10.0.0.1]}}}}",
     "http.middlewares.m.ipWhiteList"),
    ("http: {serversTransports: {t: {peerCertURI: spiffe://x}}}",
     "http.serversTransports.t.peerCertURI"),
    ("http: {middlewares: {m: {stripPrefix: {forceSlash: true}}}}",
     "http.middlewares.m.stripPrefix.forceSlash"),
    ("http: {middlewares: {m: {headers: {sslRedirect: true}}}}",
     "http.middlewares.m.headers.sslRedirect"),
    ("tls: {options: {o: {preferServerCipherSuites: true}}}",
     "tls.options.o.preferServerCipherSuites"),
])
def test_deprecated_keys_warn(text, path):
    decoded = load(text)
    assert [w.path for w in decoded.warnings] == [path]
    assert "deprecated" in decoded.warnings[0].message


def test_ip_white_list_is_a_separate_kind():
    m = config("http: {middlewares: {m: {ipWhiteList: {sourceRange: [10.0.0.1]}}}}")\
        .http.middlewares["m"]
    assert m.kind == "ipWhiteList" and m.ip_allow_list is None
    assert m.ip_white_list.source_range == ("10.0.0.1",)


# =========================================================================== extensions

def test_router_extension_decodes():
    ext = config("""
        http:
          routers:
            chat:
              rule: Host(`chat.example.com`)
              wsgate:
                idleTimeout: 5m
                pingInterval: 20s
                pingTimeout: 10s
                maxLifetime: 24h
                maxMessageSize: 1048576
                maxConnections: 10000
                maxMessagesPerSecond: 50
                forwardedProtoForUpgrade: http
    """).http.routers["chat"].wsgate
    assert (ext.idle_timeout, ext.ping_interval, ext.ping_timeout, ext.max_lifetime) == (
        300.0, 20.0, 10.0, 86400.0)
    assert (ext.max_message_size, ext.max_connections, ext.max_messages_per_second) == (
        1048576, 10000, 50.0)
    assert ext.forwarded_proto_for_upgrade == "http"


def test_load_balancer_extension_and_websocket_health_check():
    lb = config("""
        [http.services.chat.loadBalancer]
          [http.services.chat.loadBalancer.wsgate]
            closeOnServerRemoval = true
            closeOnUnhealthy = true
            maxConnectionsPerServer = 500
          [http.services.chat.loadBalancer.healthCheck]
            mode = "websocket"
            path = "/ws/health"
    """, "toml").http.services["chat"].load_balancer
    assert lb.wsgate.close_on_server_removal and lb.wsgate.close_on_unhealthy
    assert lb.wsgate.max_connections_per_server == 500
    assert lb.health_check.mode == "websocket"


def test_extension_from_labels_is_case_insensitive():
    cfg = labels({
        "traefik.http.routers.chat.rule": "Host(`chat.example.com`)",
        "traefik.http.routers.chat.wsgate.idletimeout": "90s",
        "traefik.http.routers.chat.wsgate.maxconnections": "20",
        "traefik.http.services.chat.loadbalancer.wsgate.closeonunhealthy": "true",
    })
    assert cfg.http.routers["chat"].wsgate.idle_timeout == 90.0
    assert cfg.http.routers["chat"].wsgate.max_connections == 20
    assert cfg.http.services["chat"].load_balancer.wsgate.close_on_unhealthy is True


def test_extension_keys_live_in_one_wsgate_namespace():
    keys = list(iter_keys(DynamicConfig))
    extension = [path for path, f, _ in keys if f.metadata["wsgate"]]
    assert extension, "no extension key declared"
    for path in extension:
        assert ".wsgate" in path, f"{path} is an extension outside the wsgate section"
    for path, f, _ in keys:
        if ".wsgate." in path or path.endswith(".wsgate"):
            assert f.metadata["wsgate"], f"{path} is inside the wsgate section but not marked"
    sections = {p.split(".wsgate")[0] for p in extension}
    assert sections == {"http.routers.<name>", "http.services.<name>.loadBalancer"}


def test_a_traefik_configuration_gets_extension_defaults():
    r = config("http: {routers: {r: {rule: x}}}").http.routers["r"]
    assert r.wsgate.idle_timeout == 0 and r.wsgate.forwarded_proto_for_upgrade == "ws"


# =========================================================================== model shape

def test_models_are_immutable():
    cfg = config("http: {routers: {r: {rule: x}}}")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.http.routers["r"].rule = "y"  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.http.routers["s"] = Router(rule="y")  # type: ignore[index]


def test_every_traefik_key_of_the_reference_sample_is_known():
    # A sample with every key of Traefik's reference file.yaml, as two routers, services and
    # middlewares of each kind: decoding it must produce no "unknown key" warning.
    decoded = load(REFERENCE_SAMPLE)
    assert [str(w) for w in decoded.warnings if "unknown key" in w.message] == []


REFERENCE_SAMPLE = """
http:
  routers:
    Router0:
      entryPoints: [foobar]
      middlewares: [foobar]
      service: foobar
      rule: foobar
      priority: 42
      parentRefs: [foobar]
      tls:
        options: foobar
        certResolver: foobar
        domains:
          - main: foobar
            sans: [foobar]
      observability:
        accessLogs: true
        metrics: true
        tracing: true
        traceVerbosity: detailed
  services:
    Service01:
      failover:
        service: foobar
        fallback: foobar
        healthCheck: {}
        errors: {status: ["500"], maxRequestBodyBytes: 42}
    Service02:
      highestRandomWeight:
        services: [{name: foobar, weight: 42}]
        healthCheck: {}
    Service03:
      middlewares: [foobar]
      loadBalancer:
        sticky:
          cookie: {name: foobar, secure: true, httpOnly: true, sameSite: none, maxAge: 42,
                   path: foobar, domain: foobar}
        servers: [{url: "http://foobar", weight: 42, preservePath: true}]
        strategy: p2c
        healthCheck:
          scheme: http
          mode: grpc
          path: foobar
          method: foobar
          status: 42
          port: 42
          interval: 42s
          unhealthyInterval: 42s
          timeout: 42s
          hostname: foobar
          followRedirects: true
          headers: {name0: foobar}
        passiveHealthCheck: {failureWindow: 42s, maxFailedAttempts: 42}
        passHostHeader: true
        responseForwarding: {flushInterval: 42s}
        serversTransport: foobar
    Service04:
      mirroring:
        service: foobar
        mirrorBody: true
        maxBodySize: 42
        mirrors: [{name: foobar, percent: 42}]
        healthCheck: {}
    Service05:
      weighted:
        services: [{name: foobar, weight: 42}]
        sticky: {cookie: {name: foobar}}
        healthCheck: {}
  middlewares:
    Middleware01: {addPrefix: {prefix: foobar}}
    Middleware02:
      basicAuth: {users: [foobar], usersFile: foobar, realm: foobar, removeHeader: true,
                  headerField: foobar}
    Middleware03:
      buffering: {maxRequestBodyBytes: 42, memRequestBodyBytes: 42, maxResponseBodyBytes: 42,
                  memResponseBodyBytes: 42, retryExpression: foobar}
    Middleware04: {chain: {middlewares: [foobar]}}
    Middleware05:
      circuitBreaker: {expression: foobar, checkPeriod: 42s, fallbackDuration: 42s,
                       recoveryDuration: 42s, responseCode: 42}
    Middleware06:
      compress: {excludedContentTypes: [foobar], minResponseBodyBytes: 42,
                 encodings: [foobar], defaultEncoding: foobar}
    Middleware07: {contentType: {}}
    Middleware08:
      digestAuth: {users: [foobar], usersFile: foobar, removeHeader: true, realm: foobar,
                   headerField: foobar}
    Middleware09:
      errors: {status: [foobar], statusRewrites: {"418": 42}, service: foobar, query: foobar,
               errorRequestHeaders: [foobar]}
    Middleware10:
      forwardAuth:
        address: foobar
        tls: {ca: foobar, cert: foobar, key: foobar, insecureSkipVerify: true}
        trustForwardHeader: true
        authResponseHeaders: [foobar]
        authResponseHeadersRegex: foobar
        authRequestHeaders: [foobar]
        addAuthCookiesToResponse: [foobar]
        headerField: foobar
        forwardBody: true
        maxBodySize: 42
        maxResponseBodySize: 42
        preserveLocationHeader: true
        preserveRequestMethod: true
        authSigninURL: foobar
    Middleware11: {grpcWeb: {allowOrigins: [foobar]}}
    Middleware13:
      ipAllowList:
        sourceRange: [10.0.0.1]
        ipStrategy: {depth: 42, excludedIPs: [10.0.0.2], ipv6Subnet: 42}
        rejectStatusCode: 42
    Middleware15:
      inFlightReq:
        amount: 42
        sourceCriterion:
          ipStrategy: {depth: 42, excludedIPs: [10.0.0.2], ipv6Subnet: 42}
          requestHeaderName: foobar
          requestHost: true
    Middleware16:
      passTLSClientCert:
        pem: true
        info:
          notAfter: true
          notBefore: true
          sans: true
          serialNumber: true
          subject: {country: true, province: true, locality: true, organization: true,
                    organizationalUnit: true, commonName: true, serialNumber: true,
                    domainComponent: true}
          issuer: {country: true, province: true, locality: true, organization: true,
                   commonName: true, serialNumber: true, domainComponent: true}
    Middleware18:
      rateLimit:
        average: 42
        period: 42s
        burst: 42
        sourceCriterion: {requestHeaderName: foobar}
        redis:
          endpoints: [foobar]
          tls: {ca: foobar, cert: foobar, key: foobar, insecureSkipVerify: true}
          username: foobar
          password: foobar
          db: 42
          poolSize: 42
          minIdleConns: 42
          maxActiveConns: 42
          readTimeout: 42s
          writeTimeout: 42s
          dialTimeout: 42s
    Middleware19: {redirectRegex: {regex: foobar, replacement: foobar, permanent: true}}
    Middleware20: {redirectScheme: {scheme: foobar, port: foobar, permanent: true}}
    Middleware21: {replacePath: {path: foobar}}
    Middleware22: {replacePathRegex: {regex: foobar, replacement: foobar}}
    Middleware23:
      retry: {attempts: 42, initialInterval: 42s, timeout: 42s, maxRequestBodyBytes: 42,
              status: ["500"], disableRetryOnNetworkError: true,
              retryNonIdempotentMethod: true}
    Middleware24: {stripPrefixRegex: {regex: [foobar]}}
    Middleware25:
      encodedCharacters: {allowEncodedSlash: true, allowEncodedBackSlash: true,
                          allowEncodedNullCharacter: true, allowEncodedSemicolon: true,
                          allowEncodedPercent: true, allowEncodedQuestionMark: true,
                          allowEncodedHash: true}
  serversTransports:
    ServersTransport0:
      serverName: foobar
      insecureSkipVerify: true
      rootCAs: [foobar]
      certificates: [{certFile: foobar, keyFile: foobar}]
      cipherSuites: [TLS_AES_256_GCM_SHA384]
      minVersion: VersionTLS12
      maxVersion: VersionTLS13
      maxIdleConnsPerHost: 42
      forwardingTimeouts: {dialTimeout: 42s, responseHeaderTimeout: 42s, idleConnTimeout: 42s,
                           readIdleTimeout: 42s, pingTimeout: 42s}
      disableHTTP2: true
      peerCertSANs: [{type: DNSName, value: foobar}]
    ServersTransport1:
      spiffe: {ids: [foobar], trustDomain: foobar}
tls:
  certificates:
    - {certFile: foobar, keyFile: foobar, stores: [foobar]}
  options:
    Options0:
      minVersion: VersionTLS12
      maxVersion: VersionTLS13
      cipherSuites: [TLS_AES_256_GCM_SHA384]
      curvePreferences: [CurveP521]
      clientAuth: {caFiles: [foobar], clientAuthType: RequireAndVerifyClientCert}
      sniStrict: true
      alpnProtocols: [foobar]
      disableSessionTickets: true
  stores:
    Store0:
      defaultCertificate: {certFile: foobar, keyFile: foobar}
      defaultGeneratedCert: {resolver: foobar, domain: {main: foobar, sans: [foobar]}}
"""
