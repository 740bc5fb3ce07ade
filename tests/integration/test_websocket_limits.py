"""The routers' WebSocket session policy (the ``wsgate`` section) with real clients and
backends: idle timeout (1001), pings to the client and their pongs kept from the backend,
no pong (1011), lifetime (1001), message size (1009 both ways), message rate (1008), and
maxConnections (429 at the handshake, admission again once a session ends)."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.frames import Close, Opcode

from tests.integration.conftest import Peers
from tests.integration.harness import (
    RawWSClient,
    Wsgate,
    free_port,
    read_head,
    websocket_accept,
    ws_connect,
)
from tests.wsframes import CLOSE, PING, PONG, TEXT, enc, parse
from wsgate.proxy.relay import CLOSE_TIMEOUT

PING_INTERVAL = 0.3
IDLE = 1.0
LIFETIME = 1.0


class RecordingWSBackend:
    """A raw WebSocket backend in a thread: accepts upgrades with a correct 101, records
    every byte each connection sends, and answers a close frame with a close frame."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = int(self.listener.getsockname()[1])
        self.lock = threading.Lock()
        self.sessions: list[bytearray] = []
        self.ended = threading.Semaphore(0)
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        received = bytearray()
        with self.lock:
            self.sessions.append(received)
        try:
            with conn:
                conn.settimeout(30)
                first = read_head(conn)
                if first is None:
                    return
                head, data = first
                conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             b"Connection: Upgrade\r\nSec-WebSocket-Accept: "
                             + websocket_accept(head) + b"\r\n\r\n")
                while True:
                    with self.lock:
                        received += data
                    if any(f.opcode == CLOSE for f in parse(bytes(received), partial=True)):
                        conn.sendall(enc(CLOSE, b"\x03\xe8", masked=False))
                        return
                    data = conn.recv(65536)
                    if not data:
                        return
        finally:
            self.ended.release()

    def close(self) -> None:
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # never listened or already closed
        self.listener.close()
        self._thread.join(5)


@pytest.fixture(scope="module")
def recorder() -> Iterator[RecordingWSBackend]:
    backend = RecordingWSBackend()
    try:
        yield backend
    finally:
        backend.close()


@pytest.fixture(scope="module")
def gw(peers: Peers, recorder: RecordingWSBackend,
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[Wsgate]:
    ws = f"http://127.0.0.1:{peers.ws_ports[0]}"
    policies: dict[str, tuple[str, dict[str, Any]]] = {
        "idle": (ws, {"idleTimeout": f"{IDLE}s"}),
        "ping": (f"http://127.0.0.1:{recorder.port}",
                 {"pingInterval": f"{PING_INTERVAL}s", "pingTimeout": f"{PING_INTERVAL}s"}),
        "pingws": (ws, {"pingInterval": f"{PING_INTERVAL}s", "pingTimeout": "300ms"}),
        "size": (ws, {"maxMessageSize": 1000}),
        "rate": (ws, {"maxMessagesPerSecond": 20}),
        "raterec": (f"http://127.0.0.1:{recorder.port}", {"maxMessagesPerSecond": 20}),
        "life": (ws, {"maxLifetime": f"{LIFETIME}s"}),
        "max": (ws, {"maxConnections": 2}),
        "maxone": (ws, {"maxConnections": 1}),
        "maxrefused": (f"http://127.0.0.1:{peers.refused_port}", {"maxConnections": 1}),
    }
    routers = {name: {"rule": f"Host(`{name}.test`)", "service": name, "wsgate": policy}
               for name, (_, policy) in policies.items()}
    services = {name: {"loadBalancer": {"servers": [{"url": url}]}}
                for name, (url, _) in policies.items()}
    static = {"log": {"level": "DEBUG"},
              "entryPoints": {"web": {"address": f"127.0.0.1:{free_port()}"}}}
    with Wsgate(tmp_path_factory.mktemp("limits"), static,
                {"http": {"routers": routers, "services": services}}) as gate:
        yield gate


def _tag() -> str:
    return uuid.uuid4().hex[:12]


def _close_code(exc: ConnectionClosed) -> int | None:
    return exc.rcvd.code if exc.rcvd is not None else None


# -- idle timeout -------------------------------------------------------------------------------


def test_idle_session_is_closed_1001_both_ways(peers: Peers, port: int) -> None:
    tag = _tag()
    with ws_connect(port, "idle.test", f"/echo?tag={tag}") as ws:
        for i in range(3):  # traffic keeps it open past idleTimeout
            if i:
                time.sleep(IDLE / 2)
            ws.send("x")
            assert ws.recv(timeout=10) == "x"
        last = time.monotonic()
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
        waited = time.monotonic() - last
    assert _close_code(info.value) == 1001
    assert IDLE <= waited <= IDLE * 1.25 + 0.5
    peers.ws.wait_for(rf"closed /echo\?tag={tag} code=1001")


# -- pings --------------------------------------------------------------------------------------


def test_pings_answered_by_the_client_never_reach_the_backend(recorder: RecordingWSBackend,
                                                              port: int) -> None:
    sessions_before = len(recorder.sessions)
    client = RawWSClient(port, "ping.test", "/x")  # answers pings (websockets' protocol)
    pings = 0
    client.send_text("before")
    while pings < 4:
        frame = client.next_frame()
        assert frame is not None and frame.opcode is Opcode.PING, frame
        assert len(frame.data) == 8
        pings += 1
        client.send_text(f"after ping {pings}")
    client.proto.send_close(1000, "done")
    client.flush()
    reply = client.next_frame()
    assert reply.opcode is Opcode.CLOSE and Close.parse(reply.data).code == 1000
    assert recorder.ended.acquire(timeout=10)
    received = recorder.sessions[sessions_before]
    frames = parse(bytes(received))
    assert [f.opcode for f in frames] == [TEXT] * 5 + [CLOSE]
    assert PONG not in [f.opcode for f in frames] and PING not in [f.opcode for f in frames]


def test_client_that_never_answers_pings_gets_1011(peers: Peers, port: int) -> None:
    tag = _tag()
    client = RawWSClient(port, "pingws.test", f"/echo?tag={tag}")
    start = time.monotonic()
    received = bytearray()
    closed_at = None
    while True:  # read the socket directly: nothing answers the pings (nor the close)
        try:
            data = client.sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        received += data
        if closed_at is None and CLOSE in [f.opcode for f in parse(bytes(received),
                                                                  partial=True)]:
            closed_at = time.monotonic() - start
    frames = parse(bytes(received))
    assert [f.opcode for f in frames] == [PING, CLOSE]
    assert frames[-1].close_code == 1011
    # The first ping goes out one interval after the 101 (a little before the handshake
    # returned here), its pong is due one timeout later.
    assert closed_at is not None
    assert 2 * PING_INTERVAL - 0.1 <= closed_at <= 2 * PING_INTERVAL + 1.0
    # The close is not answered either: TCP is cut after the close timeout.
    assert time.monotonic() - start <= 2 * PING_INTERVAL + CLOSE_TIMEOUT + 1.0
    peers.ws.wait_for(rf"closed /echo\?tag={tag} code=1011")


@pytest_twisted.inlineCallbacks
def test_autobahn_clients_with_and_without_ping_answers(port: int) -> Any:
    from autobahn.twisted.websocket import WebSocketClientFactory
    from twisted.internet import defer, reactor

    from tests.integration.peers import ab_client

    class Silent(ab_client.ABClient):
        """autobahn with its automatic pong turned off."""

        pings = 0

        def onPing(self, payload: bytes) -> None:
            Silent.pings += 1

    class SilentFactory(ab_client._Factory):
        protocol = Silent

    # A well-behaved autobahn client: several pings answered, the session stays open.
    good = yield ab_client.connect(port, f"ws://pingws.test:{port}/echo")
    yield task_sleep(reactor, PING_INTERVAL * 5)
    good.sendMessage(b"still open")
    payload, _ = yield good.next_message()
    assert payload == b"still open"
    good.sendClose(1000)
    clean, code, _ = yield good.closed
    assert clean and code == 1000

    factory: WebSocketClientFactory = SilentFactory(f"ws://pingws.test:{port}/echo")
    factory.setProtocolOptions(autoPingInterval=0, openHandshakeTimeout=10,
                               closeHandshakeTimeout=5)
    opened: defer.Deferred[Any] = defer.Deferred()
    factory.opened = opened
    reactor.connectTCP("127.0.0.1", port, factory)  # type: ignore[attr-defined]
    silent = yield opened.addTimeout(10, reactor)
    clean, code, _ = yield silent.closed.addTimeout(10, reactor)
    # The proxy waits for autobahn's answer to its close frame: a clean closing handshake.
    assert clean and code == 1011 and Silent.pings >= 1


def task_sleep(reactor: Any, seconds: float) -> Any:
    """An awaited timer: the point of this wait is the time passing (pings being answered)."""
    from twisted.internet import task

    return task.deferLater(reactor, seconds, lambda: None)


# -- lifetime -----------------------------------------------------------------------------------


def test_max_lifetime_closes_1001(peers: Peers, port: int) -> None:
    tag = _tag()
    start = time.monotonic()
    with ws_connect(port, "life.test", f"/echo?tag={tag}") as ws:
        received = 0
        with pytest.raises(ConnectionClosed) as info:
            while True:  # a busy session ends all the same
                ws.send("tick")
                ws.recv(timeout=10)
                received += 1
                time.sleep(0.05)
        elapsed = time.monotonic() - start
    assert _close_code(info.value) == 1001 and received > 5
    assert LIFETIME * 0.9 - 0.05 <= elapsed <= LIFETIME * 1.1 + 0.5
    peers.ws.wait_for(rf"closed /echo\?tag={tag} code=1001")


# -- message size -------------------------------------------------------------------------------


def test_too_big_client_message_closes_1009_both_ways(peers: Peers, port: int) -> None:
    tag = _tag()
    with ws_connect(port, "size.test", f"/echo?tag={tag}") as ws:
        ws.send(b"a" * 1000)  # at the limit: fine
        assert ws.recv(timeout=10) == b"a" * 1000
        ws.send(b"b" * 1001)
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert _close_code(info.value) == 1009
    peers.ws.wait_for(rf"closed /echo\?tag={tag} code=1009")


def test_too_big_backend_message_closes_1009_both_ways(peers: Peers, port: int) -> None:
    tag = _tag()
    with ws_connect(port, "size.test", f"/flood?count=3&size=2000&tag={tag}") as ws:
        ws.send("go")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=10)
    assert _close_code(info.value) == 1009
    peers.ws.wait_for(rf"closed /flood\?count=3&size=2000&tag={tag} code=1009")


# -- message rate -------------------------------------------------------------------------------


def test_flooding_client_is_closed_1008_after_its_allowance(gw: Wsgate, port: int) -> None:
    client = RawWSClient(port, "rate.test", "/echo")
    client.sock.sendall(b"".join(enc(TEXT, f"m{i}".encode(), masked=True)
                                 for i in range(100)))
    frame = client.next_frame()
    while frame is not None and frame.opcode is not Opcode.CLOSE:
        frame = client.next_frame()  # echoes that crossed the close
    assert frame is not None and Close.parse(frame.data).code == 1008
    assert client.next_frame() is None  # its close answered, the proxy closes TCP
    # (The websockets backend, with messages still queued, takes its own close_timeout to
    # report the end; what the backend receives is checked on a raw backend below.)
    gw.proc.wait_for(r"WebSocket on web closed: code=1008 by=proxy")


def test_flooding_client_messages_past_the_allowance_are_not_relayed(
        recorder: RecordingWSBackend, port: int) -> None:
    sessions_before = len(recorder.sessions)
    client = RawWSClient(port, "raterec.test", "/x")
    # 100 messages in one write: the burst (one second's worth, 20) passes, then 1008.
    client.sock.sendall(b"".join(enc(TEXT, f"m{i}".encode(), masked=True)
                                 for i in range(100)))
    frame = client.next_frame()
    assert frame is not None and frame.opcode is Opcode.CLOSE
    assert Close.parse(frame.data).code == 1008
    assert recorder.ended.acquire(timeout=10)
    frames = parse(bytes(recorder.sessions[sessions_before]))
    texts = [f.payload for f in frames if f.opcode == TEXT]
    assert texts == [f"m{i}".encode() for i in range(20)]
    assert frames[-1].opcode == CLOSE and frames[-1].close_code == 1008


def test_client_under_the_rate_is_not_closed(port: int) -> None:
    with ws_connect(port, "rate.test", "/echo") as ws:
        for i in range(30):  # 30 messages over 1.5 s: 20 per second
            ws.send(f"m{i}")
            assert ws.recv(timeout=10) == f"m{i}"
            time.sleep(0.05)
        ws.close()
    assert ws.close_code == 1000


# -- maxConnections -----------------------------------------------------------------------------


def test_max_connections_answers_429_then_admits_again(gw: Wsgate, port: int) -> None:
    closed = r"WebSocket on web closed"
    with ws_connect(port, "max.test", "/echo") as first, \
            ws_connect(port, "max.test", "/echo") as second:
        for ws in (first, second):
            ws.send("hi")
            assert ws.recv(timeout=10) == "hi"
        with pytest.raises(InvalidStatus) as info:
            ws_connect(port, "max.test", "/echo")
        assert info.value.response.status_code == 429
        gw.proc.wait_for(r"429 for GET /echo on web: router max@file has 2 open")
        before = gw.proc.count(closed)
        # Another router is not affected.
        with ws_connect(port, "size.test", "/echo") as other:
            other.send("ok")
            assert other.recv(timeout=10) == "ok"
        first.close()
        gw.proc.wait_for_count(closed, before + 2)  # other's session, then first's
        with ws_connect(port, "max.test", "/echo") as third:
            third.send("admitted")
            assert third.recv(timeout=10) == "admitted"
            with pytest.raises(InvalidStatus) as info:
                ws_connect(port, "max.test", "/echo")
            assert info.value.response.status_code == 429


def test_failed_upgrades_give_their_place_back(port: int) -> None:
    """An upgrade that does not become a session (the backend answers 401, or cannot be
    reached) holds its place only while it is tried."""
    for _ in range(3):
        with pytest.raises(InvalidStatus) as info:
            ws_connect(port, "maxone.test", "/unauthorized")
        assert info.value.response.status_code == 401
        with pytest.raises(InvalidStatus) as info:
            ws_connect(port, "maxrefused.test", "/echo")
        assert info.value.response.status_code == 502
    with ws_connect(port, "maxone.test", "/echo") as ws:
        ws.send("one place, free again")
        assert ws.recv(timeout=10) == "one place, free again"
