"""Middlewares that rewrite or redirect, through sockets: headers (the seed's Origin rewrite,
removals, response headers on the 101, CORS preflight, security headers), the path
middlewares, redirects, chains and an entryPoint's own middlewares.

One wsgate for the module; each scenario has its router, by Host: ``NAME.test`` goes to the
`websockets` backend (whose /headers page sends back the handshake it got) and
``NAME-http.test`` to the http backend (which answers with the request it got).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.conftest import Peers
from tests.integration.harness import Wsgate
from tests.integration.mw_support import (
    http,
    http_seen,
    lb,
    peer_dynamic,
    scenario_routers,
    show_log,
    ws_echo,
    ws_redirected,
    ws_refused,
    ws_seen,
)

ALLOWED_ORIGIN = "https://allowed-origin.com"

#: Middlewares of each scenario; every one gets a WebSocket and a plain HTTP router.
SCENARIOS: dict[str, list[str]] = {
    "hdr": ["my-headers", "hdr-custom"],
    "hdrhost": ["hdr-host"],
    "cors": ["cors"],
    "sts": ["sts-forced"],
    "sts-plain": ["sts-unforced"],
    "strip": ["strip-chat"],
    "stripre": ["strip-tenant"],
    "addprefix": ["add-headers"],
    "replace": ["to-headers"],
    "replacere": ["versioned"],
    "rscheme": ["to-https"],
    "rregex": ["old-domain"],
    "chained": ["secured"],
}

MIDDLEWARES: dict[str, Any] = {
    # The seed's example, as written there.
    "my-headers": {"headers": {"customRequestHeaders": {"Origin": ALLOWED_ORIGIN}}},
    "hdr-custom": {"headers": {
        "customRequestHeaders": {"X-Remove-Me": "", "X-Added": "added"},
        "customResponseHeaders": {"X-Served-By": "wsgate", "X-Backend": ""}}},
    "hdr-host": {"headers": {"customRequestHeaders": {"Host": "rewritten.example",
                                                      "X-Forwarded-For": ""}}},
    "cors": {"headers": {
        "accessControlAllowOriginList": ["https://app.example"],
        "accessControlAllowMethods": ["GET", "OPTIONS", "PUT"],
        "accessControlAllowHeaders": ["Content-Type"],
        "accessControlMaxAge": 100,
        "addVaryHeader": True}},
    "sts-forced": {"headers": {"stsSeconds": 31536000, "stsIncludeSubdomains": True,
                               "forceSTSHeader": True, "frameDeny": True}},
    "sts-unforced": {"headers": {"stsSeconds": 31536000, "contentTypeNosniff": True}},
    "strip-chat": {"stripPrefix": {"prefixes": ["/chat"]}},
    "strip-tenant": {"stripPrefixRegex": {"regex": ["/tenants/[a-z0-9]+"]}},
    "add-headers": {"addPrefix": {"prefix": "/headers"}},
    "to-headers": {"replacePath": {"path": "/headers"}},
    "versioned": {"replacePathRegex": {"regex": "^/v1/(.*)", "replacement": "/headers/$1"}},
    "to-https": {"redirectScheme": {"scheme": "https", "port": "8443"}},
    "old-domain": {"redirectRegex": {"regex": r"^http://rregex(-http)?\.test(:\d+)?/old/(.*)",
                                     "replacement": "https://new.example/${3}",
                                     "permanent": True}},
    # A chain of two path middlewares: their order shows in the result.
    "secured": {"chain": {"middlewares": ["strip-api", "add-headers", "chain-mark"]}},
    "strip-api": {"stripPrefix": {"prefixes": ["/api"]}},
    "chain-mark": {"headers": {"customRequestHeaders": {"X-Chain": "yes"}}},
    # entryPoint epmw runs ep-headers before the router's own middlewares.
    "ep-headers": {"headers": {
        "customRequestHeaders": {"X-Order": "entrypoint", "X-EP": "yes"},
        "customResponseHeaders": {"X-Order": "entrypoint", "X-EP": "yes"}}},
    "router-headers": {"headers": {
        "customRequestHeaders": {"X-Order": "router"},
        "customResponseHeaders": {"X-Order": "router"}}},
}


def _config(peers: Peers) -> tuple[dict[str, Any], dict[str, Any]]:
    static = {
        "log": {"level": "DEBUG"},
        "entryPoints": {
            "web": {"address": "127.0.0.1:0"},
            "epmw": {"address": "127.0.0.1:0",
                     "http": {"middlewares": ["ep-headers@file"]}},
        },
    }
    routers: dict[str, Any] = {
        # The seed's router, on the seed's host name.
        "my-websocket": {"rule": "Host(`ws.example.com`)", "service": "ws",
                         "middlewares": ["my-headers"], "entryPoints": ["web"]},
        "ep-ws": {"rule": "Host(`ep.test`)", "service": "ws",
                  "middlewares": ["router-headers"], "entryPoints": ["epmw"]},
        "ep-http": {"rule": "Host(`ep-http.test`)", "service": "http",
                    "middlewares": ["router-headers"], "entryPoints": ["epmw"]},
        "ep-bare": {"rule": "Host(`ep-bare.test`)", "service": "http",
                    "entryPoints": ["epmw"]},
        # A service that refuses connections: the proxy's 502 goes through the middlewares.
        "down": {"rule": "Host(`down.test`)", "service": "down",
                 "middlewares": ["hdr-custom"], "entryPoints": ["web"]},
    }
    routers.update(scenario_routers(SCENARIOS, entryPoints=["web"]))
    return static, peer_dynamic(peers, routers, MIDDLEWARES, down=lb(peers.refused_port))


@pytest.fixture(scope="module")
def gw(peers: Peers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wsgate]:
    static, dynamic = _config(peers)
    with Wsgate(tmp_path_factory.mktemp("mw-rewrite"), static, dynamic) as gate:
        yield gate


# -- headers ----------------------------------------------------------------------------------


def test_seed_headers_middleware_sets_origin_for_the_backend(port: int) -> None:
    seen = ws_seen(port, "ws.example.com", "/headers", origin="https://evil.example")
    assert seen.get_all("Origin") == [ALLOWED_ORIGIN]
    # The backend that checks origins accepts the handshake of a foreign page.
    ws_echo(port, "ws.example.com", "/reject-origin", origin="https://evil.example")


def test_seed_router_without_the_middleware_would_be_refused(port: int) -> None:
    """The control case: the same origin check refuses the foreign Origin itself."""
    response = ws_refused(port, "strip.test", "/chat/reject-origin",
                          origin="https://evil.example")
    assert response.status_code == 403


def test_custom_request_headers_set_and_delete(port: int) -> None:
    seen = ws_seen(port, "hdr.test", "/headers",
                   additional_headers={"X-Remove-Me": "secret", "X-Added": "client"})
    assert seen.get_all("X-Added") == ["added"]
    assert seen.get("X-Remove-Me") is None
    assert seen.get_all("Origin") == [ALLOWED_ORIGIN]
    plain = http_seen(port, "/any", "hdr-http.test", "X-Remove-Me: secret", "X-Added: c")
    assert plain.get_all("X-Added") == ["added"]
    assert plain.get("X-Remove-Me") is None
    assert plain.get_all("Origin") == [ALLOWED_ORIGIN]


def test_custom_response_headers_on_the_101_and_plain_responses(port: int) -> None:
    seen = ws_seen(port, "hdr.test", "/headers")
    assert seen.reply_all("X-Served-By") == ["wsgate"]
    # The upgrade headers are the proxy's and still right.
    assert (seen.reply("Upgrade") or "").lower() == "websocket"
    assert seen.reply("Sec-WebSocket-Accept")
    plain = http_seen(port, "/any", "hdr-http.test")
    assert plain.reply_all("X-Served-By") == ["wsgate"]
    # customResponseHeaders "" removes what the backend sent.
    assert plain.reply("X-Backend") is None


def test_custom_request_headers_host_and_no_forwarded_for(port: int) -> None:
    for seen in (ws_seen(port, "hdrhost.test", "/headers"),
                 http_seen(port, "/x", "hdrhost-http.test")):
        assert seen.get_all("Host") == ["rewritten.example"]
        assert seen.get("X-Forwarded-For") is None
        # The forwarded headers describe the client's request, set before the middleware.
        assert (seen.get("X-Forwarded-Host") or "").startswith("hdrhost")


def test_cors_preflight_is_answered_by_the_proxy(port: int) -> None:
    response = http(port, "OPTIONS", "/any", "cors-http.test", "Origin: https://app.example",
                    "Access-Control-Request-Method: PUT",
                    "Access-Control-Request-Headers: Content-Type")
    assert response.status == 200
    assert response.header("Content-Length") == "0"
    assert response.body == b""
    assert response.header("Access-Control-Allow-Origin") == "https://app.example"
    assert response.header("Access-Control-Allow-Methods") == "GET,OPTIONS,PUT"
    assert response.header("Access-Control-Allow-Headers") == "Content-Type"
    assert response.header("Access-Control-Max-Age") == "100"
    assert response.header("X-Backend") is None  # the backend never saw it


def test_cors_headers_on_simple_responses_and_the_101(port: int) -> None:
    plain = http_seen(port, "/any", "cors-http.test", "Origin: https://app.example")
    assert plain.reply("Access-Control-Allow-Origin") == "https://app.example"
    assert plain.reply("Vary") == "Origin"
    other = http_seen(port, "/any", "cors-http.test", "Origin: https://other.example")
    assert other.reply("Access-Control-Allow-Origin") is None
    seen = ws_seen(port, "cors.test", "/headers", origin="https://app.example")
    assert seen.reply("Access-Control-Allow-Origin") == "https://app.example"
    # A WebSocket handshake is a GET, not a preflight: it reached the backend.
    assert seen.get("Origin") == "https://app.example"


def test_forced_sts_and_frame_deny_on_plain_http(port: int) -> None:
    value = "max-age=31536000; includeSubDomains"
    seen = ws_seen(port, "sts.test", "/headers")
    assert seen.reply("Strict-Transport-Security") == value
    assert seen.reply("X-Frame-Options") == "DENY"
    plain = http_seen(port, "/any", "sts-http.test")
    assert plain.reply("Strict-Transport-Security") == value
    assert plain.reply("X-Frame-Options") == "DENY"


def test_sts_is_not_sent_on_plain_http_unless_forced(port: int) -> None:
    plain = http_seen(port, "/any", "sts-plain-http.test")
    assert plain.reply("Strict-Transport-Security") is None
    assert plain.reply("X-Content-Type-Options") == "nosniff"
    seen = ws_seen(port, "sts-plain.test", "/headers")
    assert seen.reply("Strict-Transport-Security") is None
    assert seen.reply("X-Content-Type-Options") == "nosniff"


def test_response_headers_on_the_proxys_own_errors(port: int) -> None:
    plain = http(port, "GET", "/x", "down.test")
    assert plain.status == 502
    assert plain.header("X-Served-By") == "wsgate"
    upgrade = ws_refused(port, "down.test", "/echo")
    assert upgrade.status_code == 502
    assert upgrade.headers["X-Served-By"] == "wsgate"


# -- paths ------------------------------------------------------------------------------------


def test_strip_prefix(port: int) -> None:
    seen = ws_seen(port, "strip.test", "/chat/headers?room=1")
    assert seen.path == "/headers?room=1"
    assert seen.get_all("X-Forwarded-Prefix") == ["/chat"]
    plain = http_seen(port, "/chat/x%2Fy?q=1", "strip-http.test")
    assert plain.path == "/x%2Fy?q=1"
    assert plain.get_all("X-Forwarded-Prefix") == ["/chat"]
    assert http_seen(port, "/chat", "strip-http.test").path == "/"


def test_strip_prefix_regex(port: int) -> None:
    seen = ws_seen(port, "stripre.test", "/tenants/acme/headers")
    assert seen.path == "/headers"
    assert seen.get_all("X-Forwarded-Prefix") == ["/tenants/acme"]
    plain = http_seen(port, "/tenants/b2/x?y=z", "stripre-http.test")
    assert plain.path == "/x?y=z"
    assert plain.get_all("X-Forwarded-Prefix") == ["/tenants/b2"]
    untouched = http_seen(port, "/other/x", "stripre-http.test")
    assert untouched.path == "/other/x"
    assert untouched.get("X-Forwarded-Prefix") is None


def test_add_prefix(port: int) -> None:
    seen = ws_seen(port, "addprefix.test", "/room?id=3")
    assert seen.path == "/headers/room?id=3"
    assert http_seen(port, "/x", "addprefix-http.test").path == "/headers/x"


def test_replace_path(port: int) -> None:
    seen = ws_seen(port, "replace.test", "/anything/here?keep=1")
    assert seen.path == "/headers?keep=1"
    assert seen.get_all("X-Replaced-Path") == ["/anything/here"]
    plain = http_seen(port, "/old/path", "replace-http.test")
    assert plain.path == "/headers"
    assert plain.get_all("X-Replaced-Path") == ["/old/path"]


def test_replace_path_regex(port: int) -> None:
    seen = ws_seen(port, "replacere.test", "/v1/rooms/7?x=1")
    assert seen.path == "/headers/rooms/7?x=1"
    assert seen.get_all("X-Replaced-Path") == ["/v1/rooms/7"]
    plain = http_seen(port, "/v1/a", "replacere-http.test")
    assert plain.path == "/headers/a"
    assert plain.get_all("X-Replaced-Path") == ["/v1/a"]
    untouched = http_seen(port, "/v2/a", "replacere-http.test")
    assert untouched.path == "/v2/a"
    assert untouched.get("X-Replaced-Path") is None


# -- redirects --------------------------------------------------------------------------------


def test_redirect_scheme_websocket_client_sees_the_redirect(port: int) -> None:
    error, response = ws_redirected(port, "rscheme.test", "/headers?x=1")
    assert "isn't ws or wss" in str(error)
    assert response.status_code == 302
    assert response.headers["Location"] == "https://rscheme.test:8443/headers?x=1"
    assert response.body == b"Found"


def test_redirect_scheme_plain_http(port: int) -> None:
    response = http(port, "GET", "/a?b=c", f"rscheme-http.test:{port}")
    assert response.status == 302
    assert response.header("Location") == "https://rscheme-http.test:8443/a?b=c"
    response = http(port, "POST", "/form", "rscheme-http.test", body=b"data")
    assert response.status == 307
    assert response.header("Location") == "https://rscheme-http.test:8443/form"


def test_redirect_regex_websocket_client_sees_the_redirect(port: int) -> None:
    error, response = ws_redirected(port, "rregex.test", "/old/chat?room=1")
    assert "isn't ws or wss" in str(error)
    assert response.status_code == 301
    assert response.headers["Location"] == "https://new.example/chat?room=1"
    # A URL the expression does not match goes to the backend.
    assert ws_seen(port, "rregex.test", "/headers").path == "/headers"


def test_redirect_regex_plain_http(port: int) -> None:
    response = http(port, "GET", "/old/page", "rregex-http.test")
    assert response.status == 301
    assert response.header("Location") == "https://new.example/page"
    response = http(port, "PUT", "/old/page", "rregex-http.test", body=b"x")
    assert response.status == 308
    assert http_seen(port, "/new/page", "rregex-http.test").path == "/new/page"


# -- chain and entryPoint middlewares ---------------------------------------------------------


def test_chain_applies_its_middlewares_in_order(port: int) -> None:
    # strip-api then add-headers: /api/x → /x → /headers/x (the other order would keep /api).
    seen = ws_seen(port, "chained.test", "/api/room")
    assert seen.path == "/headers/room"
    assert seen.get_all("X-Forwarded-Prefix") == ["/api"]
    assert seen.get_all("X-Chain") == ["yes"]
    plain = http_seen(port, "/api/x", "chained-http.test")
    assert plain.path == "/headers/x"
    assert plain.get_all("X-Chain") == ["yes"]


def test_entrypoint_middlewares_come_first(gw: Wsgate) -> None:
    with show_log(gw):
        port = gw.ports["epmw"]
        seen = ws_seen(port, "ep.test", "/headers")
        # Requests: the entryPoint's middleware runs first, the router's overrides it.
        assert seen.get_all("X-EP") == ["yes"]
        assert seen.get_all("X-Order") == ["router"]
        # Responses go back through them in reverse: the entryPoint's is applied last.
        assert seen.reply_all("X-EP") == ["yes"]
        assert seen.reply_all("X-Order") == ["entrypoint"]
        plain = http_seen(port, "/x", "ep-http.test")
        assert plain.get_all("X-Order") == ["router"]
        assert plain.reply_all("X-Order") == ["entrypoint"]
        # A router without middlewares of its own gets the entryPoint's.
        bare = http_seen(port, "/x", "ep-bare.test")
        assert bare.get_all("X-EP") == ["yes"]
        assert bare.reply_all("X-Order") == ["entrypoint"]
        # Routers of other entryPoints do not.
        other = http_seen(gw.ports["web"], "/x", "hdr-http.test")
        assert other.get("X-EP") is None
