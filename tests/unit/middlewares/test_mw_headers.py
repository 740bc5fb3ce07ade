"""headers: custom headers, CORS, security headers, on plain requests and WebSocket
handshakes (the seed's Origin example) and on the 101."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from mw_support import build, header, headers_named, make_ctx, runtime_of

from wsgate.middlewares import PASS, Answer, MiddlewareError, build_chain

try:
    from tests import seed
except ImportError:  # pragma: no cover - pytest started without the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from tests import seed

SWITCHING = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
             ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")]


# -- the seed's example ------------------------------------------------------------------------


def test_seed_origin_example_rewrites_the_handshake_origin():
    rt = runtime_of({"my-headers": {"headers": {"customRequestHeaders": {
        "Origin": "https://allowed-origin.com"}}}}, ["my-headers"])
    [route] = rt.routes_for("web", tls=False)
    chain = build_chain(route.middlewares, rt, router=route.router)
    ctx = make_ctx("/ws", websocket=True, headers=[("Origin", "https://evil.example")])
    assert chain.on_request(ctx) is PASS
    head = ctx.to_head()
    assert head.get_all("Origin") == ["https://allowed-origin.com"]
    assert head.is_upgrade and head.get("Sec-WebSocket-Key") == "dGhlIHNhbXBsZSBub25jZQ=="
    # Headers that were not configured pass untouched, in order.
    assert [n for n, _ in head.headers][:5] == ["Host", "Connection", "Upgrade",
                                                "Sec-WebSocket-Key", "Sec-WebSocket-Version"]


def test_seed_origin_example_from_the_docker_labels():
    blocks = seed.seed_blocks_or_skip()
    by_section = seed.seed_by_section(blocks)
    block = by_section["Headers and Origin Checks"][seed.DOCKER]
    labels = [line.strip().strip('-').strip().strip('"') for line in block.code.splitlines()
              if "customrequestheaders" in line]
    assert labels
    name, _, value = labels[0].partition("=")
    assert name.endswith("customrequestheaders.Origin")
    mw = build({"headers": {"customRequestHeaders": {"Origin": value}}})
    ctx = make_ctx("/", websocket=True)
    mw.on_request(ctx)
    assert ctx.get("Origin") == "https://allowed-origin.com"


def test_handshake_without_origin_gets_one():
    mw = build({"headers": {"customRequestHeaders": {"Origin": "https://allowed-origin.com"}}})
    ctx = make_ctx("/ws", websocket=True)
    assert mw.on_request(ctx) is PASS
    assert ctx.get_all("Origin") == ["https://allowed-origin.com"]
    assert ctx.modified


# -- custom headers ------------------------------------------------------------------------------


def test_custom_request_headers_set_delete_and_host():
    mw = build({"headers": {"customRequestHeaders": {
        "X-Script-Name": "test", "X-Custom-Request-Header": "", "Host": "backend.internal"}}})
    ctx = make_ctx("/", headers=[("X-Custom-Request-Header", "a"),
                                 ("x-custom-request-header", "b"), ("X-Script-Name", "old")])
    mw.on_request(ctx)
    assert ctx.get_all("X-Script-Name") == ["test"]
    assert not ctx.has("X-Custom-Request-Header")
    assert ctx.host == "backend.internal" and ctx.get("Host") == "backend.internal"
    assert not ctx.suppress_xff


def test_empty_x_forwarded_for_means_send_none():
    mw = build({"headers": {"customRequestHeaders": {"X-Forwarded-For": ""}}})
    ctx = make_ctx("/", headers=[("X-Forwarded-For", "10.0.0.1")])
    mw.on_request(ctx)
    assert not ctx.has("X-Forwarded-For") and ctx.suppress_xff


def test_non_ascii_values_go_out_as_utf8_bytes():
    mw = build({"headers": {"customRequestHeaders": {"X-Name": "café"}}})
    ctx = make_ctx("/")
    mw.on_request(ctx)
    assert ctx.get("X-Name").encode("latin-1") == "café".encode()


def test_custom_response_headers_on_a_plain_response():
    mw = build({"headers": {"customResponseHeaders": {
        "X-Custom-Response-Header": "value", "Server": "", "X-Powered-By": ""}}})
    ctx = make_ctx("/")
    assert mw.on_request(ctx) is PASS
    out = mw.on_response(ctx, 200, [("Server", "nginx"), ("X-Powered-By", "php"),
                                    ("X-Custom-Response-Header", "old"),
                                    ("x-custom-response-header", "older")])
    assert out == [("X-Custom-Response-Header", "value")]


def test_custom_response_headers_reach_the_101():
    rt = runtime_of({"h": {"headers": {"customResponseHeaders": {
        "X-Gateway": "wsgate", "Sec-WebSocket-Accept": "forged", "Upgrade": ""}}}}, ["h"])
    chain = build_chain(("h@file",), rt)
    ctx = make_ctx("/ws", websocket=True)
    assert chain.on_request(ctx) is PASS
    out = chain.on_response(ctx, 101, list(SWITCHING))
    assert header(out, "X-Gateway") == "wsgate"
    # The upgrade itself is the proxy's: a header middleware cannot break the handshake.
    assert header(out, "Sec-WebSocket-Accept") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert header(out, "Upgrade") == "websocket"


def test_header_configuration_errors():
    with pytest.raises(MiddlewareError, match="sets nothing"):
        build({"headers": {}})
    with pytest.raises(MiddlewareError) as info:
        build({"headers": {"customRequestHeaders": {"X-Bad": "a\r\nInjected: 1"}}})
    assert info.value.field == "headers.customRequestHeaders.X-Bad"
    with pytest.raises(MiddlewareError) as info:
        build({"headers": {"accessControlAllowOriginListRegex": ["ok", "(?<!x)y"]}})
    assert info.value.field == "headers.accessControlAllowOriginListRegex[1]"


# -- CORS ----------------------------------------------------------------------------------------

CORS = {"accessControlAllowMethods": ["GET", "OPTIONS", "PUT"],
        "accessControlAllowHeaders": ["Content-Type", "X-Token"],
        "accessControlAllowOriginList": ["https://foo.bar.org", "https://example.org"],
        "accessControlMaxAge": 100, "accessControlExposeHeaders": ["X-Total"],
        "addVaryHeader": True}


def preflight(origin="https://foo.bar.org", **extra):
    headers = [("Origin", origin), ("Access-Control-Request-Method", "PUT")]
    headers += list(extra.items())
    return make_ctx("/api", method="OPTIONS", headers=headers)


def test_preflight_is_answered_by_the_proxy():
    mw = build({"headers": CORS})
    answer = mw.on_request(preflight())
    assert isinstance(answer, Answer)
    assert answer.status == 200 and answer.body == b""  # Traefik: 200, not 204
    h = answer.headers
    assert header(h, "Access-Control-Allow-Methods") == "GET,OPTIONS,PUT"
    assert header(h, "Access-Control-Allow-Headers") == "Content-Type,X-Token"
    assert header(h, "Access-Control-Allow-Origin") == "https://foo.bar.org"
    assert header(h, "Access-Control-Max-Age") == "100"
    assert header(h, "Access-Control-Expose-Headers") == "X-Total"
    assert header(h, "Access-Control-Allow-Credentials") is None
    assert b"Content-Length: 0" in answer.serialize()


def test_preflight_from_an_unlisted_origin_gets_no_allow_origin():
    answer = build({"headers": CORS}).on_request(preflight("https://evil.example"))
    assert isinstance(answer, Answer)
    assert header(answer.headers, "Access-Control-Allow-Origin") is None


def test_options_without_cors_request_method_is_not_a_preflight():
    mw = build({"headers": CORS})
    ctx = make_ctx("/", method="OPTIONS", headers=[("Origin", "https://foo.bar.org")])
    assert mw.on_request(ctx) is PASS


def test_wildcards_with_credentials_echo_the_request():
    mw = build({"headers": {"accessControlAllowCredentials": True,
                            "accessControlAllowOriginList": ["*"],
                            "accessControlAllowHeaders": ["*"],
                            "accessControlAllowMethods": ["*"],
                            "accessControlExposeHeaders": ["*"]}})
    answer = mw.on_request(preflight("https://any.example",
                                     **{"Access-Control-Request-Headers": "X-A,X-B"}))
    h = answer.headers
    assert header(h, "Access-Control-Allow-Origin") == "https://any.example"
    assert header(h, "Access-Control-Allow-Headers") == "X-A,X-B"
    assert header(h, "Access-Control-Allow-Methods") == "PUT"
    assert header(h, "Access-Control-Allow-Credentials") == "true"
    assert header(h, "Access-Control-Expose-Headers") is None


def test_wildcard_origin_without_credentials_is_a_star():
    mw = build({"headers": {"accessControlAllowOriginList": ["*"]}})
    ctx = make_ctx("/", headers=[("Origin", "https://a.example")])
    assert mw.on_request(ctx) is PASS
    out = mw.on_response(ctx, 200, [])
    assert header(out, "Access-Control-Allow-Origin") == "*"


def test_origin_list_regex():
    mw = build({"headers": {"accessControlAllowOriginListRegex": [r"^https://([a-z]+)\.example\.org$"]}})
    for origin, allowed in (("https://api.example.org", True),
                            ("https://api.example.org.evil", False)):
        ctx = make_ctx("/", headers=[("Origin", origin)])
        mw.on_request(ctx)
        out = mw.on_response(ctx, 200, [])
        assert (header(out, "Access-Control-Allow-Origin") == origin) is allowed


def test_cors_headers_on_responses_and_vary():
    mw = build({"headers": CORS})
    ctx = make_ctx("/", headers=[("Origin", "https://example.org")])
    assert mw.on_request(ctx) is PASS
    out = mw.on_response(ctx, 200, [("Vary", "Accept-Encoding")])
    assert header(out, "Access-Control-Allow-Origin") == "https://example.org"
    assert header(out, "Access-Control-Expose-Headers") == "X-Total"
    assert headers_named(out, "Vary") == ["Accept-Encoding,Origin"]
    assert headers_named(mw.on_response(ctx, 200, [("Vary", "Origin")]), "Vary") == ["Origin"]
    assert headers_named(mw.on_response(ctx, 200, []), "Vary") == ["Origin"]


def test_cors_headers_on_the_101_of_a_handshake():
    mw = build({"headers": {"accessControlAllowOriginList": ["https://app.example"]}})
    ctx = make_ctx("/ws", websocket=True, headers=[("Origin", "https://app.example")])
    assert mw.on_request(ctx) is PASS
    out = mw.on_response(ctx, 101, list(SWITCHING))
    assert header(out, "Access-Control-Allow-Origin") == "https://app.example"


# -- security headers --------------------------------------------------------------------------

SECURE = {"frameDeny": True, "contentTypeNosniff": True, "browserXssFilter": True,
          "contentSecurityPolicy": "default-src 'self'", "referrerPolicy": "no-referrer",
          "permissionsPolicy": "camera=()", "contentSecurityPolicyReportOnly": "img-src *",
          "stsSeconds": 31536000, "stsIncludeSubdomains": True, "stsPreload": True}


def test_security_headers_on_tls():
    mw = build({"headers": SECURE})
    ctx = make_ctx("/", tls=True)
    assert mw.on_request(ctx) is PASS
    out = mw.on_response(ctx, 200, [("X-Frame-Options", "SAMEORIGIN")])
    assert headers_named(out, "X-Frame-Options") == ["DENY"]
    assert header(out, "X-Content-Type-Options") == "nosniff"
    assert header(out, "X-XSS-Protection") == "1; mode=block"
    assert header(out, "Content-Security-Policy") == "default-src 'self'"
    assert header(out, "Content-Security-Policy-Report-Only") == "img-src *"
    assert header(out, "Referrer-Policy") == "no-referrer"
    assert header(out, "Permissions-Policy") == "camera=()"
    assert header(out, "Strict-Transport-Security") == \
        "max-age=31536000; includeSubDomains; preload"


def test_sts_only_on_tls_unless_forced_and_never_in_development():
    plain = make_ctx("/")
    mw = build({"headers": {"stsSeconds": 60}})
    mw.on_request(plain)
    assert header(mw.on_response(plain, 200, []), "Strict-Transport-Security") is None
    forced = build({"headers": {"stsSeconds": 60, "forceSTSHeader": True}})
    forced.on_request(plain)
    assert header(forced.on_response(plain, 200, []), "Strict-Transport-Security") == \
        "max-age=60"
    dev = build({"headers": {"stsSeconds": 60, "forceSTSHeader": True, "isDevelopment": True}})
    ctx = make_ctx("/", tls=True)
    dev.on_request(ctx)
    assert header(dev.on_response(ctx, 200, []), "Strict-Transport-Security") is None


def test_ssl_proxy_headers_count_as_tls():
    mw = build({"headers": {"stsSeconds": 60,
                            "sslProxyHeaders": {"X-Forwarded-Proto": "https"}}})
    ctx = make_ctx("/", headers=[("X-Forwarded-Proto", "https")])
    mw.on_request(ctx)
    assert header(mw.on_response(ctx, 200, []), "Strict-Transport-Security") == "max-age=60"


def test_custom_frame_and_xss_values_win():
    mw = build({"headers": {"frameDeny": True, "customFrameOptionsValue": "SAMEORIGIN",
                            "browserXssFilter": True, "customBrowserXSSValue": "0"}})
    ctx = make_ctx("/")
    mw.on_request(ctx)
    out = mw.on_response(ctx, 200, [])
    assert header(out, "X-Frame-Options") == "SAMEORIGIN"
    assert header(out, "X-XSS-Protection") == "0"


def test_custom_response_headers_override_security_headers():
    mw = build({"headers": {"frameDeny": True,
                            "customResponseHeaders": {"X-Frame-Options": "ALLOWALL"}}})
    ctx = make_ctx("/")
    mw.on_request(ctx)
    assert headers_named(mw.on_response(ctx, 200, []), "X-Frame-Options") == ["ALLOWALL"]


def test_allowed_hosts():
    mw = build({"headers": {"allowedHosts": ["example.com"],
                            "hostsProxyHeaders": ["X-Forwarded-Host"],
                            "customResponseHeaders": {"X-Gw": "1"}}})
    assert mw.on_request(make_ctx("/", host="EXAMPLE.com")) is PASS
    bad = mw.on_request(make_ctx("/", host="other.example"))
    assert isinstance(bad, Answer) and bad.status == 500 and bad.body == b"Bad Host\n"
    assert header(bad.headers, "X-Gw") == "1"  # the custom part still wraps it
    via_proxy = make_ctx("/", host="internal:8080", headers=[("X-Forwarded-Host", "example.com")])
    assert mw.on_request(via_proxy) is PASS
    dev = build({"headers": {"allowedHosts": ["example.com"], "isDevelopment": True}})
    assert dev.on_request(make_ctx("/", host="other.example")) is PASS


def test_deprecated_ssl_redirect_only_warns():
    mw = build({"headers": {"sslRedirect": True}})
    assert mw.on_request(make_ctx("/")) is PASS
    assert any("sslRedirect" in w for w in mw.warnings)
