"""How a relayed WebSocket ends: close frames passed through, and the proxy's own close frame
at a frame boundary when one side goes away without one (1014 to the client when the backend
is lost, 1001 to the backend when the client is lost); never a close frame inside a frame."""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import pytest_twisted
from websockets.exceptions import ConnectionClosed, ConnectionClosedError
from websockets.frames import Close, Frame, Opcode

from tests.integration.conftest import Peers
from tests.integration.harness import (
    OneShotWebSocketBackend,
    Proc,
    RawWSClient,
    start_ws_backends,
    ws_connect,
)


@pytest.fixture
def victim(peers: Peers) -> Iterator[Proc]:
    """A websockets backend of this test's own, on the port routed as victim.test."""
    proc, _ = start_ws_backends(1, peers.victim_ws_port)
    try:
        yield proc
    finally:
        proc.stop(signal.SIGKILL)


def _tag() -> str:
    return uuid.uuid4().hex[:12]


# -- close frames from the endpoints pass through ------------------------------------------------


def test_client_close_code_and_reason_reach_the_backend(peers: Peers, gw_port: int) -> None:
    tag = _tag()
    with ws_connect(gw_port, "ws.test", f"/echo?tag={tag}") as ws:
        ws.send("hi")
        assert ws.recv(timeout=10) == "hi"
        ws.close(4001, "client bye")
    assert ws.close_code == 4001  # the backend echoed the code through the proxy
    peers.ws.wait_for(rf"closed /echo\?tag={tag} code=4001")


def test_backend_close_code_and_reason_reach_the_client(gw_port: int) -> None:
    with ws_connect(gw_port, "ws.test", "/close") as ws:
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
    assert ws.close_code == 4002
    assert ws.close_reason == "server bye"


# -- the backend goes away ----------------------------------------------------------------------


def test_backend_killed_client_receives_1014(victim: Proc, gw_port: int) -> None:
    with ws_connect(gw_port, "victim.test", "/push") as ws:
        assert [ws.recv(timeout=10) for _ in range(3)] == ["push 0", "push 1", "push 2"]
        ws.send("still there?")
        assert ws.recv(timeout=10) == "still there?"
        # Every frame sent so far has arrived: the relay is at a frame boundary.
        victim.stop(signal.SIGKILL)
        with pytest.raises(ConnectionClosedError) as info:
            ws.recv(timeout=10)
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1014


def test_backend_closing_tcp_after_whole_frames_gives_1014(peers: Peers, gw_port: int) -> None:
    frames = (Frame(Opcode.TEXT, b"one").serialize(mask=False)
              + Frame(Opcode.BINARY, b"\x00" * 70000).serialize(mask=False))
    backend = OneShotWebSocketBackend(peers.victim_raw_port, frames)
    try:
        client = RawWSClient(gw_port, "raw.test", "/x")
        got = [client.next_frame() for _ in range(3)]
        assert got[0].opcode is Opcode.TEXT and got[0].data == b"one"
        assert got[1].opcode is Opcode.BINARY and len(got[1].data) == 70000
        assert got[2].opcode is Opcode.CLOSE
        assert Close.parse(got[2].data).code == 1014
        assert client.next_frame() is None  # and the proxy closes TCP
    finally:
        backend.close()


def test_backend_dying_inside_a_frame_gets_no_injected_close(peers: Peers,
                                                              gw_port: int) -> None:
    whole = Frame(Opcode.TEXT, b"whole").serialize(mask=False)
    partial = Frame(Opcode.BINARY, b"\x01" * 1000).serialize(mask=False)[:500]
    backend = OneShotWebSocketBackend(peers.victim_raw_port, whole + partial)
    try:
        client = RawWSClient(gw_port, "raw.test", "/x")
        first = client.next_frame()
        assert first.opcode is Opcode.TEXT and first.data == b"whole"
        # The half frame arrives, then EOF: a close frame here would corrupt the stream.
        assert client.next_frame() is None
        assert client.proto.close_rcvd is None
    finally:
        backend.close()


# -- the client goes away -----------------------------------------------------------------------


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_client_lost_backend_receives_1001(peers: Peers, gw_port: int, reset: bool) -> None:
    tag = _tag()
    client = RawWSClient(gw_port, "ws.test", f"/echo?tag={tag}")
    client.send_text("hello")
    frame = client.next_frame()
    assert frame.data == b"hello"
    client.cut(reset=reset)
    peers.ws.wait_for(rf"closed /echo\?tag={tag} code=1001")


def test_client_process_killed_backend_receives_1001(peers: Peers, gw_port: int) -> None:
    import sys

    tag = _tag()
    script = (
        "import socket, sys, time\n"
        "from websockets.sync.client import connect\n"
        f"sock = socket.create_connection(('127.0.0.1', {gw_port}))\n"
        f"ws = connect('ws://ws.test:{gw_port}/echo?tag={tag}', sock=sock)\n"
        "ws.send('hello'); assert ws.recv(timeout=10) == 'hello'\n"
        "print('client open', flush=True)\n"
        "time.sleep(60)\n"
    )
    client = Proc([sys.executable, "-c", script], name="ws_client")
    try:
        client.wait_for("client open")
        client.stop(signal.SIGKILL)
        peers.ws.wait_for(rf"closed /echo\?tag={tag} code=1001")
    finally:
        client.stop(signal.SIGKILL)


@pytest_twisted.inlineCallbacks
def test_autobahn_client_dropping_tcp_gives_1001_to_autobahn_backend(peers: Peers,
                                                                      gw_port: int) -> Any:
    from tests.integration.peers import ab_client

    tag = _tag()
    client = yield ab_client.connect(gw_port, f"ws://ab.test:{gw_port}/echo?tag={tag}")
    client.sendMessage(b"x")
    yield client.next_message()
    client.transport.abortConnection()
    yield client.closed
    peers.ab.wait_for(rf"closed /echo\?tag={tag} code=1001")


def test_client_half_close_after_its_close_frame(peers: Peers, gw_port: int) -> None:
    """The client sends its close frame and FIN at once: the backend's close reply still
    comes back through the half-open connection, then the proxy closes it."""
    import socket

    tag = _tag()
    client = RawWSClient(gw_port, "ws.test", f"/echo?tag={tag}")
    client.send_text("bye soon")
    assert client.next_frame().data == b"bye soon"
    client.proto.send_close(4003, "half")
    client.flush()
    client.sock.shutdown(socket.SHUT_WR)
    reply = client.next_frame()
    assert reply.opcode is Opcode.CLOSE and Close.parse(reply.data).code == 4003
    assert client.next_frame() is None
    peers.ws.wait_for(rf"closed /echo\?tag={tag} code=4003")


def test_backend_half_close_after_its_close_frame(peers: Peers, gw_port: int) -> None:
    """The backend's close frame then FIN (websockets closes TCP first as a server): the
    client's close reply is not needed by anyone, and both sides end."""
    frames = Frame(Opcode.CLOSE, Close(4004, "server done").serialize()).serialize(mask=False)
    backend = OneShotWebSocketBackend(peers.victim_raw_port, frames)
    try:
        client = RawWSClient(gw_port, "raw.test", "/x")
        frame = client.next_frame()
        assert frame.opcode is Opcode.CLOSE and Close.parse(frame.data).code == 4004
        assert client.next_frame() is None  # no 1014 added after the backend's own close
    finally:
        backend.close()


@pytest_twisted.inlineCallbacks
def test_backend_killed_autobahn_client_is_closed(peers: Peers, gw_port: int) -> Any:
    """autobahn (26.x) does not accept close code 1014 (it lists it as unassigned, though
    IANA registered it as Bad Gateway): it fails the connection with a protocol error. The
    point here is that the client is told and the connection ends, never left hanging."""
    from twisted.internet import reactor

    from tests.integration.peers import ab_client

    proc, _ = start_ws_backends(1, peers.victim_ws_port)
    try:
        client = yield ab_client.connect(gw_port, f"ws://victim.test:{gw_port}/echo")
        client.sendMessage(b"x")
        yield client.next_message()
        proc.stop(signal.SIGKILL)
        clean, _, reason = yield client.closed.addTimeout(10, reactor)
        assert not clean
        assert "1014" in (reason or "")
    finally:
        proc.stop(signal.SIGKILL)


def test_backend_killed_while_streaming(victim: Proc, gw_port: int) -> None:
    """Killed in the middle of a flood: the client gets whole, intact messages, then either
    1014 (the kill fell between frames) or a bare close (it fell inside one, where a close
    frame would corrupt the stream); never a hang, never garbage."""
    block = bytes(range(256)) * 256  # what /flood sends, 64 KiB
    client = RawWSClient(gw_port, "victim.test", "/flood?count=100000&size=65536")
    client.send_text("go")
    for _ in range(20):
        frame = client.next_frame()
        assert frame.opcode is Opcode.BINARY and frame.data == block
    victim.stop(signal.SIGKILL)
    while True:
        frame = client.next_frame()
        if frame is None:  # EOF without a close frame: the kill fell inside a frame
            assert client.proto.close_rcvd is None
            break
        if frame.opcode is Opcode.CLOSE:
            assert Close.parse(frame.data).code == 1014
            assert client.next_frame() is None
            break
        assert frame.opcode is Opcode.BINARY and frame.data == block
