"""Strict request parsing at the entryPoint, pipelining, HTTP/1.0 rules, absolute-form targets.

Every ambiguous or malformed head is answered 400 and the connection is closed; nothing of it
reaches the backend (a raw recording backend sees only the valid request sent afterwards).
"""

from __future__ import annotations

import json
import uuid

import pytest

from tests.integration.conftest import Peers
from tests.integration.harness import RawHTTP, request

HOST = b"Host: recorder.test\r\n"

REJECTED = {
    # Body framing that two parsers could read differently (request smuggling).
    "cl-and-te": b"POST / HTTP/1.1\r\n" + HOST
                 + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te-and-cl": b"POST / HTTP/1.1\r\n" + HOST
                 + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
    "two-content-lengths": b"POST / HTTP/1.1\r\n" + HOST
                           + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "content-length-list": b"POST / HTTP/1.1\r\n" + HOST
                           + b"Content-Length: 5, 6\r\n\r\nhello!",
    "content-length-sign": b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: +5\r\n\r\nhello",
    "content-length-junk": b"POST / HTTP/1.1\r\n" + HOST + b"Content-Length: 5x\r\n\r\nhello",
    "te-gzip": b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: gzip\r\n\r\n",
    "te-chunked-then-gzip": b"POST / HTTP/1.1\r\n" + HOST
                            + b"Transfer-Encoding: chunked, gzip\r\n\r\n",
    "te-identity": b"POST / HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: identity\r\n\r\n",
    "te-in-http10": b"POST / HTTP/1.0\r\n" + HOST
                    + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    # Field syntax.
    "obs-fold-space": b"GET / HTTP/1.1\r\n" + HOST + b"X-Folded: a\r\n b\r\n\r\n",
    "obs-fold-tab": b"GET / HTTP/1.1\r\n" + HOST + b"X-Folded: a\r\n\tb\r\n\r\n",
    "space-before-colon": b"GET / HTTP/1.1\r\n" + HOST + b"X-Foo : bar\r\n\r\n",
    "tab-before-colon": b"GET / HTTP/1.1\r\n" + HOST + b"X-Foo\t: bar\r\n\r\n",
    "host-space-before-colon": b"GET / HTTP/1.1\r\nHost : recorder.test\r\n\r\n",
    "name-parenthesis": b"GET / HTTP/1.1\r\n" + HOST + b"X(Foo): bar\r\n\r\n",
    "name-space": b"GET / HTTP/1.1\r\n" + HOST + b"X Foo: bar\r\n\r\n",
    "name-nul": b"GET / HTTP/1.1\r\n" + HOST + b"X\x00Foo: bar\r\n\r\n",
    "name-non-ascii": b"GET / HTTP/1.1\r\n" + HOST + b"X-F\xc3\xb6o: bar\r\n\r\n",
    "name-empty": b"GET / HTTP/1.1\r\n" + HOST + b": bar\r\n\r\n",
    "no-colon": b"GET / HTTP/1.1\r\n" + HOST + b"X-Foo bar\r\n\r\n",
    "value-nul": b"GET / HTTP/1.1\r\n" + HOST + b"X-Foo: a\x00b\r\n\r\n",
    "value-ctl": b"GET / HTTP/1.1\r\n" + HOST + b"X-Foo: a\x01b\r\n\r\n",
    "value-del": b"GET / HTTP/1.1\r\n" + HOST + b"X-Foo: a\x7fb\r\n\r\n",
    "value-bare-cr": b"GET / HTTP/1.1\r\n" + HOST + b"X-Foo: a\rb\r\n\r\n",
    "bare-lf": b"GET / HTTP/1.1\n" + HOST + b"\r\n",
    "bare-lf-everywhere": b"GET / HTTP/1.1\nHost: recorder.test\n\n",
    # Host.
    "no-host-http11": b"GET / HTTP/1.1\r\n\r\n",
    "two-hosts": b"GET / HTTP/1.1\r\n" + HOST + HOST + b"\r\n",
    "host-invalid": b"GET / HTTP/1.1\r\nHost: recorder.test/x\r\n\r\n",
    # Request line.
    "double-space": b"GET  / HTTP/1.1\r\n" + HOST + b"\r\n",
    "extra-token": b"GET / HTTP/1.1 x\r\n" + HOST + b"\r\n",
    "http09": b"GET /\r\n" + HOST + b"\r\n",
    "bad-version": b"GET / HTTP/1.x\r\n" + HOST + b"\r\n",
    "lowercase-version": b"GET / http/1.1\r\n" + HOST + b"\r\n",
    "bad-protocol": b"GET / FOO/1.1\r\n" + HOST + b"\r\n",
    "bad-method": b"G(T / HTTP/1.1\r\n" + HOST + b"\r\n",
    "space-in-target": b"GET /a b HTTP/1.1\r\n" + HOST + b"\r\n",
    "ctl-in-target": b"GET /a\x01b HTTP/1.1\r\n" + HOST + b"\r\n",
    "fragment-in-target": b"GET /a#b HTTP/1.1\r\n" + HOST + b"\r\n",
    "relative-target": b"GET a/b HTTP/1.1\r\n" + HOST + b"\r\n",
    "bad-percent": b"GET /a%zz HTTP/1.1\r\n" + HOST + b"\r\n",
    "leading-space": b" GET / HTTP/1.1\r\n" + HOST + b"\r\n",
    "tls-on-plain-port": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40,
}


def _valid_request_reaches_backend_alone(peers: Peers, gw_port: int,
                                         heads_before: list[bytes]) -> None:
    """A valid request sent afterwards is the only thing the backend got since
    ``heads_before``: the rejected ones never reached it."""
    tag = uuid.uuid4().hex[:12].encode()
    response = request(gw_port, b"GET /valid-" + tag + b" HTTP/1.1\r\n" + HOST
                       + b"Connection: close\r\n\r\n")
    assert response.status == 200 and response.body == b"ok"
    _, heads = peers.recorder.snapshot()
    new = heads[len(heads_before):]
    assert len(new) == 1, new
    assert new[0].startswith(b"GET /valid-" + tag + b" HTTP/1.1\r\n")


@pytest.mark.parametrize("raw", list(REJECTED.values()), ids=list(REJECTED))
def test_rejected_with_400_and_closed_backend_untouched(peers: Peers, gw_port: int,
                                                        raw: bytes) -> None:
    _, heads_before = peers.recorder.snapshot()
    with RawHTTP(gw_port) as conn:
        conn.send(raw)
        response = conn.response()
        assert response.status == 400
        assert response.header("Connection") == "close"
        assert conn.at_eof()
    _valid_request_reaches_backend_alone(peers, gw_port, heads_before)


@pytest.mark.parametrize("raw", [
    b"GET / HTTP/2.0\r\n" + HOST + b"\r\n",
    b"GET / HTTP/3.1\r\n" + HOST + b"\r\n",
], ids=["http2", "http3"])
def test_unsupported_major_version_answered_505(peers: Peers, gw_port: int,
                                                raw: bytes) -> None:
    _, heads_before = peers.recorder.snapshot()
    with RawHTTP(gw_port) as conn:
        conn.send(raw)
        assert conn.response().status == 505
        assert conn.at_eof()
    _valid_request_reaches_backend_alone(peers, gw_port, heads_before)


def test_rejection_after_a_good_request_on_the_same_connection(peers: Peers,
                                                               gw_port: int) -> None:
    """Pipelined: a good request is answered, then the bad one gets 400 and the close."""
    _, heads_before = peers.recorder.snapshot()
    with RawHTTP(gw_port) as conn:
        conn.send(b"GET /first HTTP/1.1\r\n" + HOST + b"\r\n"
                  + b"GET / HTTP/1.1\r\n" + HOST + b"X-Foo : bar\r\n\r\n")
        assert conn.response().body == b"ok"
        assert conn.response().status == 400
        assert conn.at_eof()
    _, heads = peers.recorder.snapshot()
    assert [h.split(b"\r\n", 1)[0] for h in heads[len(heads_before):]] == [
        b"GET /first HTTP/1.1"]


# -- pipelining -----------------------------------------------------------------------------------


def _json(body: bytes) -> dict:  # type: ignore[type-arg]
    return json.loads(body)  # type: ignore[no-any-return]


def test_pipelined_requests_answered_in_order(gw_port: int) -> None:
    with RawHTTP(gw_port) as conn:
        conn.send(b"GET /one HTTP/1.1\r\nHost: http.test\r\n\r\n"
                  b"POST /two HTTP/1.1\r\nHost: http.test\r\nContent-Length: 5\r\n\r\nhello"
                  b"GET /nowhere HTTP/1.1\r\nHost: unknown.test\r\n\r\n"
                  b"HEAD /three HTTP/1.1\r\nHost: http.test\r\n\r\n"
                  b"POST /four HTTP/1.1\r\nHost: http.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"3\r\nabc\r\n0\r\n\r\n"
                  b"GET /five HTTP/1.1\r\nHost: http.test\r\n\r\n")
        one = conn.response()
        two = conn.response()
        nowhere = conn.response()
        three = conn.response("HEAD")
        four = conn.response()
        five = conn.response()
    assert _json(one.body)["target"] == "/one"
    assert _json(two.body)["target"] == "/two" and _json(two.body)["body_length"] == 5
    assert nowhere.status == 404 and nowhere.body == b"404 page not found\n"
    assert three.status == 200 and three.body == b"" and int(three.header("Content-Length")
                                                             or 0) > 0
    assert _json(four.body)["target"] == "/four" and _json(four.body)["body_length"] == 3
    assert _json(five.body)["target"] == "/five"


def test_many_pipelined_requests_in_one_segment(gw_port: int) -> None:
    """Thousands of small requests arriving in one read are all answered, in order."""
    count = 3000
    with RawHTTP(gw_port, timeout=30) as conn:
        conn.send(b"".join(b"GET /%d HTTP/1.1\r\nHost: unknown.test\r\n\r\n" % i
                           for i in range(count)))
        for _ in range(count):
            assert conn.response().status == 404
        conn.send(b"GET /last HTTP/1.1\r\nHost: http.test\r\n\r\n")
        assert _json(conn.response().body)["target"] == "/last"


def test_pipelined_requests_to_a_backend_answered_in_order(gw_port: int) -> None:
    count = 50
    with RawHTTP(gw_port, timeout=30) as conn:
        conn.send(b"".join(b"GET /n%d HTTP/1.1\r\nHost: http.test\r\n\r\n" % i
                           for i in range(count)))
        targets = [_json(conn.response().body)["target"] for _ in range(count)]
    assert targets == [f"/n{i}" for i in range(count)]


# -- HTTP/1.0 and Connection ----------------------------------------------------------------------


def test_http10_closes_by_default(gw_port: int) -> None:
    with RawHTTP(gw_port) as conn:
        conn.send(b"GET /ten HTTP/1.0\r\nHost: http.test\r\n\r\n")
        response = conn.response()
        assert response.status == 200
        assert _json(response.body)["target"] == "/ten"
        assert (response.header("Connection") or "").lower() != "keep-alive"
        assert conn.at_eof()


def test_http10_keep_alive_is_honoured(gw_port: int) -> None:
    with RawHTTP(gw_port) as conn:
        for i in range(3):
            conn.send(b"GET /ka%d HTTP/1.0\r\nHost: http.test\r\nConnection: keep-alive\r\n\r\n"
                      % i)
            response = conn.response()
            assert _json(response.body)["target"] == f"/ka{i}"
            assert (response.header("Connection") or "").lower() == "keep-alive"
            assert response.header("Content-Length") is not None
        # The request reached the backend as HTTP/1.1 without the hop-by-hop header.
        seen = _json(response.body)
        assert seen["version"] == "HTTP/1.1"
        assert "connection" not in [n.lower() for n, _ in seen["headers"]]


def test_http10_client_never_gets_chunked(gw_port: int) -> None:
    """A chunked backend response cannot go to an HTTP/1.0 client (RFC 9112 §6.1): it gets
    the decoded body delimited by the connection's close."""
    with RawHTTP(gw_port) as conn:
        conn.send(b"GET /chunked HTTP/1.0\r\nHost: http.test\r\nConnection: keep-alive\r\n\r\n")
        head = conn.read_head()
        assert head.startswith(b"HTTP/1.")
        assert b"transfer-encoding" not in head.lower()
        body = conn.file.read()  # until the proxy closes
    assert _json(body)["target"] == "/chunked"


def test_http11_connection_close_is_honoured(gw_port: int) -> None:
    with RawHTTP(gw_port) as conn:
        conn.send(b"GET /bye HTTP/1.1\r\nHost: http.test\r\nConnection: close\r\n\r\n"
                  b"GET /ignored HTTP/1.1\r\nHost: http.test\r\n\r\n")
        response = conn.response()
        assert _json(response.body)["target"] == "/bye"
        assert response.header("Connection") == "close"
        assert conn.at_eof()


def test_http11_keep_alive_by_default(gw_port: int) -> None:
    with RawHTTP(gw_port) as conn:
        for i in range(3):
            conn.send(b"GET /k%d HTTP/1.1\r\nHost: http.test\r\n\r\n" % i)
            response = conn.response()
            assert _json(response.body)["target"] == f"/k{i}"
            assert response.header("Connection") is None


# -- absolute-form --------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [b"1.1", b"1.0"])
def test_absolute_form_target(gw_port: int, version: bytes) -> None:
    """The authority of an absolute-form target overrides Host (RFC 9112 §3.2.2): it routes
    the request, becomes the backend's Host, and the backend gets an origin-form target."""
    response = request(gw_port, b"GET http://http.test/abs/%2F?x=1 HTTP/" + version
                       + b"\r\nHost: unknown.test\r\n\r\n")
    assert response.status == 200
    seen = _json(response.body)
    assert seen["target"] == "/abs/%2F?x=1"
    hosts = [v for n, v in seen["headers"] if n.lower() == "host"]
    assert hosts == ["http.test"]


def test_absolute_form_without_path(gw_port: int) -> None:
    response = request(gw_port, b"GET http://http.test?q=1 HTTP/1.1\r\nHost: http.test\r\n\r\n")
    assert _json(response.body)["target"] == "/?q=1"


# -- a client that half-closes after its requests -------------------------------------------------


@pytest.mark.parametrize("hosts", [[b"http.test"], [b"http.test", b"unknown.test", b"http.test"],
                                   [b"unknown.test"]], ids=["one", "pipelined", "local"])
def test_requests_then_fin_are_all_answered_then_closed(gw_port: int,
                                                        hosts: list[bytes]) -> None:
    """``printf ... | nc -N``: the client sends FIN right after its requests; every answer
    still comes, then the proxy closes at once instead of waiting for an idle timeout."""
    import socket

    with RawHTTP(gw_port) as conn:
        conn.send(b"".join(b"GET /fin%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (i, host)
                           for i, host in enumerate(hosts)))
        conn.sock.shutdown(socket.SHUT_WR)
        statuses = [conn.response().status for _ in hosts]
        assert conn.at_eof()
    assert statuses == [200 if h == b"http.test" else 404 for h in hosts]
