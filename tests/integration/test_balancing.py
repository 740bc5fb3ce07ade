"""Load balancing through the proxy, and the statuses for services that cannot answer:
503 (no server), 502 (refused), 504 (dialTimeout, responseHeaderTimeout)."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest
from websockets.exceptions import InvalidStatus

from tests.integration.conftest import Peers
from tests.integration.harness import RawHTTP, Wsgate, request, ws_connect


def _backend_of(port: int, host: str) -> str:
    response = request(port, b"GET /lb HTTP/1.1\r\nHost: %s\r\n\r\n" % host.encode())
    assert response.status == 200
    return str(json.loads(response.body)["backend"])


@pytest.mark.parametrize("host", ["wrr.test", "weighted.test"])
def test_weights_are_honoured(gw_port: int, host: str) -> None:
    """Weights 3 and 1: the smooth (earliest deadline first) order is periodic, so any 40
    consecutive picks are exactly 30 and 10."""
    counts = Counter(_backend_of(gw_port, host) for _ in range(40))
    assert counts == {"a": 30, "b": 10}


def test_weights_are_honoured_for_websockets(gw_port: int, peers: Peers) -> None:
    """The balancer picks per connection, upgrades included (wrr over the two ws ports is
    not configured; the weighted http service answers upgrades with its JSON)."""
    counts: Counter[str] = Counter()
    for _ in range(8):
        response = request(gw_port, b"GET /lb HTTP/1.1\r\nHost: wrr.test\r\n"
                                    b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
        counts[json.loads(response.body)["backend"]] += 1
    assert counts == {"a": 6, "b": 2}


def _ws_id(ws: object) -> int:
    message = ws.recv(timeout=10)  # type: ignore[attr-defined]
    assert message.startswith("id ")
    return int(message.split()[1])


def _http_id(port: int) -> int:
    response = request(port, b"GET /id HTTP/1.1\r\nHost: p2c.test\r\n\r\n")
    assert response.status == 200
    return int(response.body)


def test_p2c_prefers_the_idle_server(gateway: Wsgate, peers: Peers) -> None:
    """With two servers, p2c compares both: a server holding an open WebSocket loses every
    pick to the idle one until the WebSocket closes."""
    # An entryPoint no other test opens WebSockets on: its close lines are this test's.
    gw_port = gateway.ports["insecure"]
    closed_before = gateway.proc.count(r"WebSocket on insecure closed")
    with ws_connect(gw_port, "p2c.test", "/id") as held:
        busy = _ws_id(held)
        idle = ({*peers.ws_ports} - {busy}).pop()
        assert [_http_id(gw_port) for _ in range(10)] == [idle] * 10
        # A second held WebSocket goes to the idle server; now both have one.
        with ws_connect(gw_port, "p2c.test", "/id") as second:
            assert _ws_id(second) == idle
            with ws_connect(gw_port, "p2c.test", "/id") as third:
                third_id = _ws_id(third)
                # 2 against 1: the next picks go to the server with one.
                fewer = idle if third_id == busy else busy
                assert [_http_id(gw_port) for _ in range(5)] == [fewer] * 5
    # Once the proxy has seen all three close, the servers are even again: both get picks.
    gateway.proc.wait_for_count(r"WebSocket on insecure closed", closed_before + 3)
    seen = {_http_id(gw_port) for _ in range(20)}
    assert seen == set(peers.ws_ports)


# -- services that cannot answer ------------------------------------------------------------------


@pytest.mark.parametrize("host", ["empty.test", "allzero.test", "wzero.test"])
def test_service_without_servers_answers_503(gw_port: int, host: str) -> None:
    with RawHTTP(gw_port) as conn:
        conn.send(b"GET /x HTTP/1.1\r\nHost: %s\r\n\r\n" % host.encode())
        assert conn.response().status == 503
        # The request was read whole: the connection goes on.
        conn.send(b"GET /after HTTP/1.1\r\nHost: http.test\r\n\r\n")
        assert json.loads(conn.response().body)["target"] == "/after"


def test_503_with_pipelined_requests_behind_it(gw_port: int) -> None:
    with RawHTTP(gw_port) as conn:
        conn.send(b"POST /x HTTP/1.1\r\nHost: empty.test\r\nContent-Length: 3\r\n\r\nabc"
                  b"GET /second HTTP/1.1\r\nHost: http.test\r\n\r\n"
                  b"GET /third HTTP/1.1\r\nHost: empty.test\r\n\r\n"
                  b"GET /fourth HTTP/1.1\r\nHost: http.test\r\n\r\n")
        assert conn.response().status == 503
        assert json.loads(conn.response().body)["target"] == "/second"
        assert conn.response().status == 503
        assert json.loads(conn.response().body)["target"] == "/fourth"


def test_websocket_to_a_service_without_servers_gets_503(gw_port: int) -> None:
    with pytest.raises(InvalidStatus) as info:
        ws_connect(gw_port, "empty.test", "/echo")
    assert info.value.response.status_code == 503


def test_refused_connection_answers_502(gw_port: int) -> None:
    with RawHTTP(gw_port) as conn:
        conn.send(b"GET /x HTTP/1.1\r\nHost: refused.test\r\n\r\n")
        assert conn.response().status == 502
        conn.send(b"GET /after HTTP/1.1\r\nHost: http.test\r\n\r\n")
        assert json.loads(conn.response().body)["target"] == "/after"


def test_refused_websocket_answers_502(gw_port: int) -> None:
    with pytest.raises(InvalidStatus) as info:
        ws_connect(gw_port, "refused.test", "/echo")
    assert info.value.response.status_code == 502


def test_dial_timeout_answers_504(gw_port: int) -> None:
    """The server's accept queue is full, so its SYNs are dropped: the dial hangs until the
    transport's dialTimeout (1s)."""
    started = time.monotonic()
    response = request(gw_port, b"GET /x HTTP/1.1\r\nHost: dial.test\r\n\r\n", timeout=15)
    elapsed = time.monotonic() - started
    assert response.status == 504
    assert 0.9 <= elapsed < 10


def test_dial_timeout_for_websocket_answers_504(gw_port: int) -> None:
    with pytest.raises(InvalidStatus) as info:
        ws_connect(gw_port, "dial.test", "/echo", open_timeout=15)
    assert info.value.response.status_code == 504


def test_response_header_timeout_answers_504(gw_port: int) -> None:
    started = time.monotonic()
    response = request(gw_port, b"GET /silent HTTP/1.1\r\nHost: silent.test\r\n\r\n",
                       timeout=15)
    elapsed = time.monotonic() - started
    assert response.status == 504
    assert 0.9 <= elapsed < 10
    # The same transport still serves a backend that answers in time.
    response = request(gw_port, b"GET /fast HTTP/1.1\r\nHost: silent.test\r\n\r\n")
    assert json.loads(response.body)["target"] == "/fast"
