"""Plain HTTP through the proxy: bodies streamed both ways in every framing, backend
connections reused, Expect: 100-continue, hop-by-hop response headers dropped."""

from __future__ import annotations

import http.client
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.integration.harness import RawHTTP, make_payload, request

HOST = b"Host: http.test\r\n"


def _json(body: bytes) -> Any:
    return json.loads(body)


# -- request bodies -------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 65536,
                                  pytest.param(8 << 20, marks=pytest.mark.slow, id="8388608")])
def test_content_length_request_body(gw_port: int, size: int) -> None:
    body = make_payload("binary", size)
    with RawHTTP(gw_port, timeout=30) as conn:
        conn.send(b"POST /upload HTTP/1.1\r\n" + HOST + b"Content-Length: %d\r\n\r\n" % size
                  + body)
        seen = _json(conn.response().body)
    assert seen["body_length"] == size
    assert ("Content-Length", str(size)) in [tuple(h) for h in seen["headers"]]


def test_chunked_request_body_with_extensions_and_trailers(gw_port: int) -> None:
    chunks = [make_payload("binary", n, seed=n) for n in (1, 10, 65536, 3, 100000)]
    encoded = b"".join(b"%x;name=value\r\n%s\r\n" % (len(c), c) for c in chunks)
    with RawHTTP(gw_port, timeout=30) as conn:
        conn.send(b"POST /upload HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n"
                  + encoded + b"0\r\nX-Trailer: t\r\n\r\n")
        seen = _json(conn.response().body)
    assert seen["body_length"] == sum(map(len, chunks))
    names = [n.lower() for n, _ in seen["headers"]]
    assert "content-length" not in names
    assert ("Transfer-Encoding", "chunked") in [tuple(h) for h in seen["headers"]]


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_both_bodies_stream_without_buffering(gw_port: int, framing: str) -> None:
    """/stream echoes each piece as it arrives: the client sees its first piece come back
    before it has sent the second, so neither body is held whole anywhere."""
    pieces = [b"first piece;", b"second piece;", b"third piece."]
    with RawHTTP(gw_port) as conn:
        if framing == "length":
            conn.send(b"POST /stream HTTP/1.1\r\n" + HOST
                      + b"Content-Length: %d\r\n\r\n" % sum(map(len, pieces)))
        else:
            conn.send(b"POST /stream HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n\r\n")
        for i, piece in enumerate(pieces):
            conn.send(piece if framing == "length" else b"%x\r\n%s\r\n" % (len(piece), piece))
            if i == 0:
                head = conn.read_head()
                assert head.startswith(b"HTTP/1.1 200 ")
                assert b"transfer-encoding: chunked" in head.lower()
            size = int(conn.readline().split(b";")[0], 16)
            assert conn.file.read(size + 2) == piece + b"\r\n"
        if framing == "chunked":
            conn.send(b"0\r\n\r\n")
        assert conn.readline() == b"0\r\n"
        assert conn.readline() == b"\r\n"
        # And the connection is still good for another request.
        conn.send(b"GET /after HTTP/1.1\r\n" + HOST + b"\r\n")
        assert _json(conn.response().body)["target"] == "/after"


# -- response bodies ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 65536,
                                  pytest.param(16 << 20, marks=pytest.mark.slow, id="16777216")])
def test_content_length_response_body(gw_port: int, size: int) -> None:
    response = request(gw_port, b"GET /big/%d HTTP/1.1\r\n" % size + HOST + b"\r\n",
                       timeout=30)
    assert response.header("Content-Length") == str(size)
    assert len(response.body) == size


def test_chunked_response_body_stays_chunked(gw_port: int) -> None:
    with RawHTTP(gw_port) as conn:
        conn.send(b"GET /chunked HTTP/1.1\r\n" + HOST + b"\r\n")
        head = conn.read_head().lower()
        assert b"transfer-encoding: chunked" in head
        assert b"content-length" not in head
        conn.send(b"GET /chunked HTTP/1.1\r\n" + HOST + b"\r\n")  # pipelined behind it
    with RawHTTP(gw_port) as conn:
        conn.send(b"GET /chunked HTTP/1.1\r\n" + HOST + b"\r\n")
        assert _json(conn.response().body)["target"] == "/chunked"
        conn.send(b"GET /again HTTP/1.1\r\n" + HOST + b"\r\n")
        assert _json(conn.response().body)["target"] == "/again"


def test_read_until_close_response_body(gw_port: int) -> None:
    with RawHTTP(gw_port) as conn:
        conn.send(b"GET /close HTTP/1.1\r\n" + HOST + b"\r\n")
        response = conn.response()
        assert response.header("Content-Length") is None
        assert response.header("Transfer-Encoding") is None
        assert response.header("Connection") == "close"
        assert _json(response.body)["target"] == "/close"
        assert conn.at_eof()


def test_head_response_has_no_body_and_keeps_the_connection(gw_port: int) -> None:
    with RawHTTP(gw_port) as conn:
        conn.send(b"HEAD /h HTTP/1.1\r\n" + HOST + b"\r\n")
        response = conn.response("HEAD")
        assert response.status == 200 and response.body == b""
        assert int(response.header("Content-Length") or 0) > 0
        conn.send(b"GET /g HTTP/1.1\r\n" + HOST + b"\r\n")
        assert _json(conn.response().body)["target"] == "/g"


def test_hop_by_hop_response_headers_are_dropped(gw_port: int) -> None:
    response = request(gw_port, b"GET /hop HTTP/1.1\r\n" + HOST + b"\r\n")
    names = response.header_names()
    for hop in ("keep-alive", "proxy-connection", "upgrade", "x-private"):
        assert hop not in names
    assert response.header("Connection") is None
    assert response.header("X-Public") == "kept"


# -- backend connections --------------------------------------------------------------------------


def test_backend_connections_are_reused(gw_port: int) -> None:
    """Sequential requests, on one client connection or several, share one backend
    connection from the keep-alive pool."""
    ids = []
    for _ in range(4):
        client = http.client.HTTPConnection("127.0.0.1", gw_port, timeout=10)
        for _ in range(5):
            client.request("GET", "/reuse", headers={"Host": "http.test"})
            ids.append(_json(client.getresponse().read())["connection"])
        client.close()
    assert len(set(ids)) == 1, ids


def test_backend_connection_closed_by_backend_is_not_reused(gw_port: int) -> None:
    client = http.client.HTTPConnection("127.0.0.1", gw_port, timeout=10)
    client.request("GET", "/before", headers={"Host": "http.test"})
    before = _json(client.getresponse().read())["connection"]
    client.close()
    closing = request(gw_port, b"GET /close HTTP/1.1\r\n" + HOST + b"\r\n")
    closed_id = _json(closing.body)["connection"]
    assert closed_id == before  # the pooled connection served it, then the backend closed it
    after = request(gw_port, b"GET /after HTTP/1.1\r\n" + HOST + b"\r\n")
    assert _json(after.body)["connection"] != closed_id


# -- Expect: 100-continue -------------------------------------------------------------------------


def test_expect_100_continue_relayed(gw_port: int) -> None:
    body = b"hello world"
    with RawHTTP(gw_port) as conn:
        conn.send(b"POST /upload HTTP/1.1\r\n" + HOST + b"Expect: 100-continue\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body))
        interim = conn.read_head()
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n")
        conn.send(body)
        response = conn.response()
        assert response.status == 200
        seen = _json(response.body)
        assert seen["body_length"] == len(body)
        assert ("Expect", "100-continue") in [tuple(h) for h in seen["headers"]]


def test_expect_100_continue_refused_by_the_proxy_does_not_wait_for_the_body(
        gw_port: int) -> None:
    with RawHTTP(gw_port) as conn:
        conn.send(b"POST /upload HTTP/1.1\r\nHost: unknown.test\r\nExpect: 100-continue\r\n"
                  b"Content-Length: 1000000\r\n\r\n")
        response = conn.response()
        assert response.status == 404
        assert response.header("Connection") == "close"
        assert conn.at_eof()


def test_unsupported_expectation_answered_417(gw_port: int) -> None:
    with RawHTTP(gw_port) as conn:
        conn.send(b"GET / HTTP/1.1\r\n" + HOST + b"Expect: teapot\r\n\r\n")
        assert conn.response().status == 417
        assert conn.at_eof()


@pytest.mark.parametrize("size", [65000, 65536, 100000, 4 << 20])
def test_pooled_connection_reads_again_after_a_large_response(gw_port: int, size: int) -> None:
    """A response that fills the client's write buffer pauses reading from the backend; the
    connection must read again once it is back in the pool (regression: the next request on
    it hung)."""
    for i in range(3):
        big = request(gw_port, b"GET /big/%d HTTP/1.1\r\n" % size + HOST + b"\r\n", timeout=5)
        assert len(big.body) == size
        response = request(gw_port, b"GET /next%d HTTP/1.1\r\n" % i + HOST + b"\r\n",
                           timeout=5)
        assert _json(response.body)["target"] == f"/next{i}"


def test_reused_connection_closed_by_the_server_is_retried(gw_port: int, peers: Any) -> None:
    """The backend drops a kept-alive connection when the next request arrives on it (the
    race of a server closing an idle connection): a bodiless GET is sent again on a new
    connection, as Go's Transport does, and the client never sees the failure."""
    connections_before, _ = peers.flaky.snapshot()
    for i in range(4):
        response = request(gw_port, b"GET /r%d HTTP/1.1\r\nHost: flaky.test\r\n\r\n" % i)
        assert response.status == 200 and response.body == b"ok"
    connections, heads = peers.flaky.snapshot()
    # Requests 2-4 each met the dropped pooled connection first, then a fresh one.
    assert connections - connections_before == 4
    with peers.flaky.lock:
        received = [bytes(c) for c in peers.flaky.connections[-4:]]
    assert [c.count(b"GET /") for c in received] == [2, 2, 2, 1]
    assert [h.split(b" ")[1] for h in heads[-4:]] == [b"/r0", b"/r1", b"/r2", b"/r3"]


def test_request_with_a_body_is_not_replayed(gw_port: int, peers: Any) -> None:
    request(gw_port, b"GET /prime HTTP/1.1\r\nHost: flaky.test\r\n\r\n")  # pools a connection
    response = request(gw_port, b"POST /once HTTP/1.1\r\nHost: flaky.test\r\n"
                                b"Content-Length: 3\r\n\r\nabc")
    assert response.status == 502


def test_many_concurrent_http_clients(gw_port: int) -> None:
    """Concurrent keep-alive clients sharing pooled backend connections: each response
    reaches the client that asked."""

    def one(i: int) -> list[str]:
        client = http.client.HTTPConnection("127.0.0.1", gw_port, timeout=20)
        targets = []
        for j in range(10):
            body = b"b" * (i * 13 + j)
            client.request("POST", f"/c{i}/r{j}", body=body, headers={"Host": "http.test"})
            seen = json.loads(client.getresponse().read())
            assert seen["body_length"] == len(body)
            targets.append(seen["target"])
        client.close()
        return targets

    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(one, range(64)))
    assert results == [[f"/c{i}/r{j}" for j in range(10)] for i in range(64)]
