"""Middlewares that act on the data path, through sockets: retry (a dead and a live server,
for plain requests and a WebSocket upgrade; on a status, with a body sent again), buffering
(413 for declared and chunked bodies, 500 for a response over the limit), compress (gzip
decoded by the client, never on a 101), errors (a page from another service, the status
kept; also for a refused upgrade) and circuitBreaker (trips on failures, recovers).

One wsgate for the module, with backends of its own where a test changes their state.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Peers
from tests.integration.harness import Proc, RawHTTP, Wsgate, request, start_http_backend
from tests.integration.mw_support import http, http_head, lb, ws_echo, ws_refused


@pytest.fixture(scope="module")
def own() -> Iterator[dict[str, tuple[Proc, int]]]:
    """Backends whose /health status the tests set (sick, well, breaker)."""
    procs = {name: start_http_backend(name) for name in ("sick", "well", "breaker")}
    try:
        yield procs
    finally:
        for proc, _ in procs.values():
            proc.stop()


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, peers: Peers,
       own: dict[str, tuple[Proc, int]]) -> Iterator[Wsgate]:
    tmp: Path = tmp_path_factory.mktemp("dataplane")
    static = {"entryPoints": {"web": {"address": "127.0.0.1:0"}}}
    middlewares = {
        "retry3": {"retry": {"attempts": 3, "initialInterval": "10ms"}},
        "retry-status": {"retry": {"attempts": 3, "status": ["500"],
                                   "retryNonIdempotentMethod": True}},
        "buf": {"buffering": {"maxRequestBodyBytes": 1000, "maxResponseBodyBytes": 5000}},
        "buf-retry": {"buffering": {"retryExpression": "IsNetworkError() && Attempts() < 3"}},
        "gz": {"compress": {"minResponseBodyBytes": 10}},
        "gz-default": {"compress": {}},
        "gz-nojson": {"compress": {"minResponseBodyBytes": 10,
                                   "excludedContentTypes": ["application/json"]}},
        "errs": {"errors": {"status": ["400-599"], "service": "pages",
                            "query": "/{status}.html"}},
        "errs-rewrite": {"errors": {"status": ["500-599"], "service": "pages",
                                    "query": "/page?code={status}&was={originalStatus}",
                                    "statusRewrites": {"502-504": 500}}},
        "breaker": {"circuitBreaker": {"expression": "ResponseCodeRatio(500, 600, 0, 600) > 0.5",
                                       "checkPeriod": "10ms", "fallbackDuration": "300ms",
                                       "recoveryDuration": "300ms"}},
    }
    routes = {
        "retry": (["retry3"], "half-dead"),
        "noretry": ([], "half-dead"),
        "retryws": (["retry3"], "half-dead-ws"),
        "noretryws": ([], "half-dead-ws"),
        "retrystatus": (["retry-status"], "sick-well"),
        "bufretry": (["buf-retry"], "half-dead"),
        "buf": (["buf"], "a"),
        "bufws": (["buf"], "ws"),
        "gz": (["gz"], "a"),
        "gzdefault": (["gz-default"], "a"),
        "gznojson": (["gz-nojson"], "a"),
        "gzws": (["gz"], "ws"),
        "gzerrs": (["gz", "errs"], "a"),
        "errs": (["errs"], "a"),
        "errsrw": (["errs-rewrite"], "a"),
        "errsws": (["errs"], "ws"),
        "errsdead": (["errs-rewrite"], "dead"),
        "breaker": (["breaker"], "breaker"),
    }
    dynamic = {"http": {
        "routers": {name: {"rule": f"Host(`{name}.test`)", "service": service,
                           "middlewares": mws} if mws else
                    {"rule": f"Host(`{name}.test`)", "service": service}
                    for name, (mws, service) in routes.items()},
        "middlewares": middlewares,
        "services": {
            "a": lb(peers.http_a_port),
            "pages": lb(peers.http_b_port),
            "ws": lb(peers.ws_ports[0]),
            "dead": lb(peers.refused_port),
            "half-dead": lb(peers.refused_port, peers.http_a_port),
            "half-dead-ws": lb(peers.refused_port, peers.ws_ports[0]),
            "sick-well": lb(own["sick"][1], own["well"][1]),
            "breaker": lb(own["breaker"][1]),
        },
    }}
    with Wsgate(tmp, static, dynamic) as gate:
        yield gate


def backend_get(port: int, target: str) -> int:
    return request(port, http_head("GET", target, "backend.test")).status


def info(body: bytes) -> dict[str, Any]:
    return json.loads(body)  # type: ignore[no-any-return]


# -- retry ---------------------------------------------------------------------------------------


def test_retry_goes_to_another_server_after_a_refused_connection(port: int):
    # Round robin over a refused server and a live one: without retry some requests fail.
    plain = [http(port, "GET", "/", "noretry.test").status for _ in range(4)]
    assert 502 in plain and 200 in plain
    for _ in range(4):
        response = http(port, "GET", "/x?y=1", "retry.test")
        assert response.status == 200
        assert info(response.body)["target"] == "/x?y=1"


def test_retry_sends_a_request_body_again_after_a_refused_connection(port: int):
    for _ in range(2):
        response = http(port, "POST", "/post", "retry.test", body=b"payload" * 100)
        assert response.status == 200
        assert info(response.body)["body_length"] == 700


def test_retry_of_a_websocket_upgrade(port: int):
    """Traefik's TestRetryWebsocket: a failing and a working server; every client gets its
    101 (the dial to the failing one is retried on the other)."""
    failed = 0
    for _ in range(4):
        try:
            ws_echo(port, "noretryws.test", "/echo")
        except Exception:  # the handshake got 502
            failed += 1
    assert failed > 0
    for _ in range(4):
        headers = ws_echo(port, "retryws.test", "/echo")
        assert not any(n.lower() == "content-encoding" for n, _ in headers)


def test_retry_on_a_status_with_the_body_sent_again(port: int, own: dict[str, Any]):
    sick, well = own["sick"][1], own["well"][1]
    assert backend_get(sick, "/set-health/500") == 200
    try:
        for _ in range(4):
            response = http(port, "POST", "/health", "retrystatus.test", body=b"b" * 321)
            assert response.status == 200, response
            assert response.header("X-Backend") == "well"
            assert info(response.body)["body_length"] == 321
    finally:
        backend_get(sick, "/set-health/200")
    del well


def test_buffering_retry_expression_on_network_errors(port: int):
    for _ in range(4):
        assert http(port, "GET", "/", "bufretry.test").status == 200


# -- buffering -----------------------------------------------------------------------------------


def test_buffering_refuses_bodies_over_the_limit(port: int):
    assert http(port, "POST", "/", "buf.test", body=b"x" * 1000).status == 200
    assert http(port, "POST", "/", "buf.test", body=b"x" * 1001).status == 413
    chunked = (b"POST / HTTP/1.1\r\nHost: buf.test\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"".join(b"%x\r\n%s\r\n" % (200, b"y" * 200) for _ in range(6)) + b"0\r\n\r\n")
    refused = request(port, chunked, "POST")
    assert refused.status == 413
    assert refused.body == b"Request Entity Too Large"
    small = (b"POST / HTTP/1.1\r\nHost: buf.test\r\nTransfer-Encoding: chunked\r\n\r\n"
             b"5\r\nhello\r\n0\r\n\r\n")
    with RawHTTP(port) as conn:
        conn.send(small + small)
        for _ in range(2):
            response = conn.response("POST")
            assert response.status == 200
            assert info(response.body)["body_length"] == 5


def test_buffering_answers_500_for_a_response_over_the_limit(port: int):
    assert http(port, "GET", "/big/5000", "buf.test").status == 200
    assert http(port, "GET", "/big/5001", "buf.test").status == 500
    chunked = http(port, "GET", "/chunked", "buf.test")  # under the limit, length now known
    assert chunked.status == 200
    assert chunked.header("Content-Length") == str(len(chunked.body))
    assert info(chunked.body)["target"] == "/chunked"


def test_buffering_leaves_websocket_upgrades_alone(port: int):
    ws_echo(port, "bufws.test", "/echo")


# -- compress ------------------------------------------------------------------------------------


def test_compress_gzip_decoded_by_the_client(port: int):
    response = http(port, "GET", "/big/5000", "gz.test", "Accept-Encoding: gzip")
    assert response.status == 200
    assert response.header("Content-Encoding") == "gzip"
    assert response.header("Vary") == "Accept-Encoding"
    assert response.header("Transfer-Encoding") == "chunked"
    assert response.header("Content-Length") is None
    assert zlib.decompress(response.body, 31) == b"x" * 5000
    # a chunked response from the backend, on a kept-alive connection
    with RawHTTP(port) as conn:
        for _ in range(2):
            conn.send(http_head("GET", "/chunked", "gz.test", "Accept-Encoding: br;q=0.5, gzip"))
            response = conn.response()
            assert response.header("Content-Encoding") == "gzip"
            assert info(zlib.decompress(response.body, 31))["target"] == "/chunked"


def test_compress_only_when_asked_and_allowed(port: int):
    identity = http(port, "GET", "/big/5000", "gz.test")
    assert identity.header("Content-Encoding") is None and identity.body == b"x" * 5000
    head = http(port, "HEAD", "/big/5000", "gz.test", "Accept-Encoding: gzip")
    assert head.header("Content-Encoding") is None
    small = http(port, "GET", "/", "gzdefault.test", "Accept-Encoding: gzip")
    assert small.header("Content-Encoding") is None  # under 1024 bytes
    assert http(port, "GET", "/big/2000", "gzdefault.test",
                "Accept-Encoding: gzip").header("Content-Encoding") == "gzip"
    excluded = http(port, "GET", "/", "gznojson.test", "Accept-Encoding: gzip")
    assert excluded.header("Content-Encoding") is None
    assert info(excluded.body)["target"] == "/"


def test_compress_never_touches_a_101(port: int):
    headers = ws_echo(port, "gzws.test", "/echo", additional_headers={"Accept-Encoding": "gzip"})
    names = {n.lower() for n, _ in headers}
    assert "content-encoding" not in names and "vary" not in names


def test_compress_http10_client_gets_a_close_delimited_body(port: int):
    with RawHTTP(port) as conn:
        conn.send(b"GET /big/3000 HTTP/1.0\r\nHost: gz.test\r\nAccept-Encoding: gzip\r\n\r\n")
        response = conn.response()
        assert response.header("Content-Encoding") == "gzip"
        assert response.header("Transfer-Encoding") is None
        assert zlib.decompress(response.body, 31) == b"x" * 3000


# -- errors --------------------------------------------------------------------------------------


def test_errors_serves_the_page_with_the_original_status(port: int):
    response = http(port, "GET", "/status/503?a=b", "errs.test", "X-Custom: kept")
    assert response.status == 503
    assert response.header("X-Backend") == "b"  # the page service
    page = info(response.body)
    assert page["target"] == "/503.html"
    assert page["method"] == "GET"
    assert ("X-Custom", "kept") in [tuple(h) for h in page["headers"]]
    assert ("Host", "errs.test") in [tuple(h) for h in page["headers"]]
    ok = http(port, "GET", "/status/204", "errs.test")
    assert ok.status == 204
    # keep-alive goes on after a page
    with RawHTTP(port) as conn:
        for code in (404, 500):
            conn.send(http_head("GET", f"/status/{code}", "errs.test"))
            response = conn.response()
            assert response.status == code
            assert info(response.body)["target"] == f"/{code}.html"


def test_errors_status_rewrites_and_original_status(port: int):
    response = http(port, "GET", "/status/502", "errsrw.test")
    assert response.status == 500
    assert info(response.body)["target"] == "/page?code=500&was=502"
    # the proxy's own 502 (the server is down) is replaced too, as in Traefik
    dead = http(port, "GET", "/", "errsdead.test")
    assert dead.status == 500
    assert info(dead.body)["target"] == "/page?code=500&was=502"


def test_errors_page_for_a_refused_websocket_upgrade(port: int):
    refused = ws_refused(port, "errsws.test", "/unauthorized")
    assert refused.status_code == 401
    assert info(refused.body)["target"] == "/401.html"
    ws_echo(port, "errsws.test", "/echo")


def test_errors_page_is_compressed_when_asked(port: int):
    response = http(port, "GET", "/status/500", "gzerrs.test", "Accept-Encoding: gzip")
    assert response.status == 500
    assert response.header("Content-Encoding") == "gzip"
    assert info(zlib.decompress(response.body, 31))["target"] == "/500.html"


# -- circuitBreaker ------------------------------------------------------------------------------


def test_circuit_breaker_trips_and_recovers(port: int, own: dict[str, Any]):
    breaker = own["breaker"][1]
    assert backend_get(breaker, "/set-health/500") == 200
    try:
        tripped = None
        for _ in range(50):
            response = http(port, "GET", "/health", "breaker.test")
            if response.status == 503 and response.header("X-Backend") is None:
                tripped = response
                break
            assert response.status == 500
        assert tripped is not None, "the breaker never tripped"
        assert tripped.body == b"Service Unavailable"
    finally:
        backend_get(breaker, "/set-health/200")
    # Open for fallbackDuration, then a growing share during recoveryDuration, then closed.
    deadline = time.monotonic() + 10
    statuses = []
    while time.monotonic() < deadline:
        status = http(port, "GET", "/health", "breaker.test").status
        statuses.append(status)
        if statuses[-5:] == [200] * 5:
            break
        time.sleep(0.02)  # the breaker's state moves with time only
    assert statuses[-5:] == [200] * 5, statuses
    assert 503 in statuses
