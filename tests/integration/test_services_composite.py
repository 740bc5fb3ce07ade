"""failover, highestRandomWeight and mirroring services, and wsgate.maxConnectionsPerServer,
end to end on 127.0.0.1: one wsgate, real HTTP and WebSocket backends, and a recording
backend that shows what each mirror received. Health transitions and session ends are
awaited on wsgate's log lines, mirror copies on the recorder's condition."""

from __future__ import annotations

import http.client
import json
import re
import socket
import threading
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest
from websockets.exceptions import InvalidStatus

from tests.integration.harness import (
    RawHTTP,
    Response,
    Wsgate,
    request,
    start_http_backend,
    start_ws_backends,
    ws_connect,
)
from wsgate.proxy.balancer import _rendezvous_score, fnv1a_64

CHECK = {"path": "/health", "interval": "100ms", "timeout": "2s"}


class Copy(NamedTuple):
    head: bytes
    body: bytes

    @property
    def target(self) -> str:
        return self.head.split(b" ", 2)[1].decode()

    def header(self, name: str) -> str | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.decode("latin-1").partition(":")
            if key.strip().lower() == name.lower():
                return value.strip()
        return None


class MirrorBackend:
    """Records each request (head and Content-Length body) and answers 200; with
    ``silent``, records and never answers. Tests wait for copies on a condition."""

    def __init__(self, *, silent: bool = False) -> None:
        self.silent = silent
        self.copies: list[Copy] = []
        self.cond = threading.Condition()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = int(self.listener.getsockname()[1])
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        conn.settimeout(30)
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                while len(buf) < length:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                body, buf = buf[:length], buf[length:]
                with self.cond:
                    self.copies.append(Copy(head, body))
                    self.cond.notify_all()
                if not self.silent:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except OSError:
            return
        finally:
            conn.close()

    def wait(self, count: int, timeout: float = 10.0) -> list[Copy]:
        with self.cond:
            assert self.cond.wait_for(lambda: len(self.copies) >= count, timeout), self.copies
            return list(self.copies)

    def close(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the pending accept
        except OSError:
            pass  # already closed: nothing to wake
        self.listener.close()
        for conn in self.conns:
            conn.close()


class Peers(NamedTuple):
    a: int
    b: int
    main: int
    ws: list[int]
    mirrors: dict[str, MirrorBackend]


@pytest.fixture(scope="module")
def peers() -> Iterator[Peers]:
    a, a_port = start_http_backend("a")
    b, b_port = start_http_backend("b")
    main, main_port = start_http_backend("main")
    ws, ws_ports = start_ws_backends(4)
    mirrors = {name: MirrorBackend(silent=name == "silent")
               for name in ("copy", "pct", "nobody", "ws", "silent")}
    try:
        yield Peers(a_port, b_port, main_port, ws_ports, mirrors)
    finally:
        for proc in (a, b, main, ws):
            proc.stop()
        for mirror in mirrors.values():
            mirror.close()


def lb(*ports: int, **extra: Any) -> dict[str, Any]:
    return {"loadBalancer": {"servers": [{"url": f"http://127.0.0.1:{p}"} for p in ports],
                             **extra}}


@pytest.fixture(scope="module")
def gateway(peers: Peers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wsgate]:
    m = peers.mirrors
    services: dict[str, Any] = {
        "a": lb(peers.a), "b": lb(peers.b),
        "main-hc": lb(peers.main, healthCheck=CHECK),
        "fo": {"failover": {"service": "main-hc", "fallback": "b"}},
        "fo-err": {"failover": {"service": "a", "fallback": "b", "errors": {
            "status": ["500-599"], "maxRequestBodyBytes": 64}}},
        "ws-refusing": lb(peers.ws[2]), "ws-fallback": lb(peers.ws[3]),
        "fo-ws": {"failover": {"service": "ws-refusing", "fallback": "ws-fallback",
                               "errors": {"status": ["503"]}}},
        # The names are hashed with the client address: these two split loopback clients.
        "blue": lb(peers.a), "legacy-v1": lb(peers.b),
        "hrw": {"highestRandomWeight": {"services": [{"name": "blue"},
                                                     {"name": "legacy-v1", "weight": 2}]}},
        "copy": lb(m["copy"].port), "pct": lb(m["pct"].port), "nobody": lb(m["nobody"].port),
        "ws-copy": lb(m["ws"].port), "silent": lb(m["silent"].port),
        "mir": {"mirroring": {"service": "a", "maxBodySize": 64,
                              "mirrors": [{"name": "copy", "percent": 100}]}},
        "mir-pct": {"mirroring": {"service": "a", "mirrors": [{"name": "pct", "percent": 30}]}},
        "mir-nobody": {"mirroring": {"service": "a", "mirrorBody": False,
                                     "mirrors": [{"name": "nobody", "percent": 100}]}},
        "mir-ws": {"mirroring": {"service": "ws-cap-free",
                                 "mirrors": [{"name": "ws-copy", "percent": 100}]}},
        "ws-cap-free": lb(peers.ws[3]),
        "mir-silent": {"mirroring": {"service": "a",
                                     "mirrors": [{"name": "silent", "percent": 100}]}},
        "cap": lb(peers.ws[0], peers.ws[1], wsgate={"maxConnectionsPerServer": 1}),
    }
    hosts = ["fo", "fo-err", "fo-ws", "hrw", "mir", "mir-pct", "mir-nobody", "mir-ws",
             "mir-silent", "cap"]
    routers = {h: {"rule": f"Host(`{h}.test`)", "service": h} for h in hosts}
    static = {"log": {"level": "DEBUG"}, "entryPoints": {"web": {"address": "127.0.0.1:0"}}}
    gw = Wsgate(tmp_path_factory.mktemp("composite"), static,
                {"http": {"routers": routers, "services": services}})
    try:
        yield gw
    finally:
        gw.stop()


def port_of(gw: Wsgate) -> int:
    return gw.ports["web"]


def get(gw: Wsgate, host: str, target: str = "/", *, method: str = "GET", body: bytes = b"",
        headers: bytes = b"") -> Response:
    head = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\n".encode() + headers
    if body:
        head += b"Content-Length: %d\r\n" % len(body)
    return request(port_of(gw), head + b"\r\n" + body, method)


def backend(response: Response) -> str:
    return response.header("X-Backend") or ""


def control(port: int, path: str) -> None:
    response = request(port, b"GET %s HTTP/1.1\r\nHost: control\r\n\r\n" % path.encode())
    assert response.status == 200, response


def transition(port: int, service: str, state: str) -> str:
    return (rf"health check: server {re.escape(f'http://127.0.0.1:{port}')} of service "
            rf"{re.escape(service)} is {state}\b")


# -- failover -------------------------------------------------------------------------------------

def test_failover_follows_the_health_of_its_service(gateway: Wsgate, peers: Peers) -> None:
    assert backend(get(gateway, "fo.test")) == "main"
    control(peers.main, "/set-health/500")
    try:
        gateway.proc.wait_for(transition(peers.main, "main-hc@file", "DOWN"))
        assert backend(get(gateway, "fo.test")) == "b"
        # A WebSocket upgrade makes the same choice (b is plain HTTP: it answers 200).
        upgrade = get(gateway, "fo.test", headers=b"Connection: Upgrade\r\n"
                                                  b"Upgrade: websocket\r\n")
        assert backend(upgrade) == "b"
    finally:
        control(peers.main, "/set-health/200")
    gateway.proc.wait_for(transition(peers.main, "main-hc@file", "UP"))
    assert backend(get(gateway, "fo.test")) == "main"


def test_failover_errors_send_the_request_again_to_the_fallback(gateway: Wsgate) -> None:
    response = get(gateway, "fo-err.test", "/status/503", method="POST", body=b"hello")
    assert backend(response) == "b"     # b answers /status/503 with 503 too
    assert response.status == 503
    assert json.loads(response.body)["body_length"] == 5
    kept = get(gateway, "fo-err.test", "/status/404")
    assert (kept.status, backend(kept)) == (404, "a")
    assert backend(get(gateway, "fo-err.test", "/")) == "a"


def test_failover_errors_refuse_bodies_over_the_limit(gateway: Wsgate) -> None:
    response = get(gateway, "fo-err.test", "/", method="POST", body=b"x" * 65)
    assert response.status == 413
    assert response.body == b"Request body too large\n"
    assert backend(get(gateway, "fo-err.test", "/", method="POST", body=b"x" * 64)) == "a"
    chunk = b"x" * 40
    with RawHTTP(port_of(gateway)) as conn:
        conn.send(b"POST / HTTP/1.1\r\nHost: fo-err.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                  + b"28\r\n" + chunk + b"\r\n" + b"28\r\n" + chunk + b"\r\n0\r\n\r\n")
        assert conn.response("POST").status == 413


def test_failover_errors_apply_to_upgrades(gateway: Wsgate, peers: Peers) -> None:
    control(peers.ws[2], "/set-upgrades/off")
    try:
        with ws_connect(port_of(gateway), "fo-ws.test", "/id") as ws:
            assert ws.recv(timeout=10) == f"id {peers.ws[3]}"
            ws.send("hello")
            assert ws.recv(timeout=10) == "hello"
    finally:
        control(peers.ws[2], "/set-upgrades/on")
    with ws_connect(port_of(gateway), "fo-ws.test", "/id") as ws:
        assert ws.recv(timeout=10) == f"id {peers.ws[2]}"


# -- highestRandomWeight --------------------------------------------------------------------------

def from_address(gw: Wsgate, source: str, host: str) -> str:
    """The X-Backend of the answer to a request sent from ``source`` (another loopback
    address: hrw hashes the client's)."""
    conn = http.client.HTTPConnection("127.0.0.1", port_of(gw), timeout=10,
                                      source_address=(source, 0))
    try:
        conn.request("GET", "/", headers={"Host": host})
        response = conn.getresponse()
        response.read()
        assert response.status == 200
        return response.getheader("X-Backend") or ""
    finally:
        conn.close()


def test_hrw_maps_each_client_address_to_a_child(gateway: Wsgate) -> None:
    def expected(ip: str) -> str:
        scores = {name: _rendezvous_score(fnv1a_64((ip + name).encode()), weight)
                  for name, weight in (("blue", 1.0), ("legacy-v1", 2.0))}
        return "a" if scores["blue"] > scores["legacy-v1"] else "b"

    sources = [f"127.0.0.{i}" for i in range(2, 250, 9)]
    got = {ip: from_address(gateway, ip, "hrw.test") for ip in sources}
    assert got == {ip: expected(ip) for ip in sources}
    assert set(got.values()) == {"a", "b"}
    # A client keeps its child.
    assert all(from_address(gateway, ip, "hrw.test") == got[ip] for ip in sources[:5])


# -- mirroring ------------------------------------------------------------------------------------

def test_mirror_gets_a_copy_with_the_body(gateway: Wsgate, peers: Peers) -> None:
    mirror = peers.mirrors["copy"]
    before = len(mirror.copies)
    response = get(gateway, "mir.test", "/copy?x=1", method="POST", body=b"payload")
    assert (response.status, backend(response)) == (200, "a")
    copy = mirror.wait(before + 1)[before]
    assert copy.target == "/copy?x=1"
    assert copy.body == b"payload"
    assert copy.header("Host") == "mir.test"
    assert copy.header("X-Forwarded-For") == "127.0.0.1"


def test_body_over_max_body_size_is_served_but_not_mirrored(gateway: Wsgate,
                                                            peers: Peers) -> None:
    mirror = peers.mirrors["copy"]
    before = len(mirror.copies)
    with RawHTTP(port_of(gateway)) as conn:
        conn.send(b"POST /big HTTP/1.1\r\nHost: mir.test\r\nContent-Length: 65\r\n\r\n"
                  + b"x" * 65)
        big = conn.response("POST")
        conn.send(b"GET /after HTTP/1.1\r\nHost: mir.test\r\n\r\n")
        assert conn.response().status == 200
    assert big.status == 200 and json.loads(big.body)["body_length"] == 65
    copies = mirror.wait(before + 1)
    assert [c.target for c in copies[before:]] == ["/after"]


def test_mirror_percent_follows_traefiks_counters(gateway: Wsgate, peers: Peers) -> None:
    mirror = peers.mirrors["pct"]
    for i in range(10):
        assert get(gateway, "mir-pct.test", f"/r{i}").status == 200
    copies = mirror.wait(3)
    assert sorted(c.target for c in copies) == ["/r0", "/r3", "/r6"]


def test_mirror_body_false_sends_the_head_only(gateway: Wsgate, peers: Peers) -> None:
    response = get(gateway, "mir-nobody.test", "/nb", method="PUT", body=b"secret")
    assert json.loads(response.body)["body_length"] == 6
    [copy] = peers.mirrors["nobody"].wait(1)
    assert (copy.target, copy.header("Content-Length"), copy.body) == ("/nb", "0", b"")


def test_websocket_is_copied_to_mirrors_when_the_session_ends(gateway: Wsgate,
                                                              peers: Peers) -> None:
    mirror = peers.mirrors["ws"]
    with ws_connect(port_of(gateway), "mir-ws.test", "/id") as ws:
        assert ws.recv(timeout=10) == f"id {peers.ws[3]}"
        ws.send("ping")
        assert ws.recv(timeout=10) == "ping"
        assert mirror.copies == []      # the main session is still open
    [copy] = mirror.wait(1)
    assert copy.target == "/id"
    assert (copy.header("Upgrade") or "").lower() == "websocket"


def test_a_mirror_that_never_answers_does_not_hold_the_main_requests(gateway: Wsgate,
                                                                     peers: Peers) -> None:
    with RawHTTP(port_of(gateway)) as conn:
        for i in range(5):
            conn.send(b"GET /s%d HTTP/1.1\r\nHost: mir-silent.test\r\n\r\n" % i)
            response = conn.response()
            assert (response.status, backend(response)) == (200, "a")
    peers.mirrors["silent"].wait(5)


# -- wsgate.maxConnectionsPerServer ---------------------------------------------------------------

def test_full_servers_are_skipped_and_then_503(gateway: Wsgate, peers: Peers) -> None:
    port = port_of(gateway)
    closed = r"WebSocket on web closed"
    with ws_connect(port, "cap.test", "/id") as first, \
            ws_connect(port, "cap.test", "/id") as second:
        ids = {first.recv(timeout=10), second.recv(timeout=10)}
        assert ids == {f"id {peers.ws[0]}", f"id {peers.ws[1]}"}
        with pytest.raises(InvalidStatus) as refused:
            ws_connect(port, "cap.test", "/id")
        assert refused.value.response.status_code == 503
        # Plain requests are not limited.
        assert get(gateway, "cap.test", "/id").status == 200
        count = gateway.proc.count(closed)
        first.close()
        gateway.proc.wait_for_count(closed, count + 1)
        with ws_connect(port, "cap.test", "/id") as third:
            assert third.recv(timeout=10) in ids
