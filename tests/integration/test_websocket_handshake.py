"""The opening handshake through the proxy: what reaches the backend, what reaches the client.

Reference §6: subprotocol and extensions negotiated by the backend, Origin, Authorization and
custom headers passed untouched, the raw path and query kept byte for byte, non-101 answers
relayed as they are, the backend's own 101 relayed (never one made up by the proxy).
"""

from __future__ import annotations

import json
import socket
from typing import Any

import pytest
import pytest_twisted
from websockets.exceptions import InvalidStatus

from tests.integration.harness import make_payload, ws_connect

BACKENDS = {"websockets": "ws.test", "autobahn": "ab.test"}


def _headers_seen(ws: Any) -> dict[str, Any]:
    info = json.loads(ws.recv(timeout=10))
    info["lower"] = {k.lower(): v for k, v in info["headers"]}
    return info


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_backend_chooses_the_subprotocol(gw_port: int, backend: str) -> None:
    # The client prefers superchat; both backends prefer chat: the backend's choice must win.
    with ws_connect(gw_port, BACKENDS[backend], "/headers",
                    subprotocols=["superchat", "chat"]) as ws:
        info = _headers_seen(ws)
        assert ws.subprotocol == "chat"
        assert info["subprotocol"] == "chat"
        assert info["lower"]["sec-websocket-protocol"] == "superchat, chat"


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_permessage_deflate_negotiated_end_to_end(gw_port: int, backend: str) -> None:
    with ws_connect(gw_port, BACKENDS[backend], "/headers", compression="deflate") as ws:
        info = _headers_seen(ws)
        assert info["extensions"] == ["permessage-deflate"]
        assert [ext.name for ext in ws.protocol.extensions] == ["permessage-deflate"]
        assert "permessage-deflate" in info["lower"]["sec-websocket-extensions"]
        # Compressed frames (RSV1) pass the proxy's frame tracker in both directions.
        for message in ("a" * (1 << 20), make_payload("text", 70000).decode(), ""):
            ws.send(message)
            assert ws.recv(timeout=10) == message
        ws.send(b"\x00" * 200000)
        assert ws.recv(timeout=10) == b"\x00" * 200000


@pytest_twisted.inlineCallbacks
def test_permessage_deflate_with_autobahn_client(gw_port: int) -> Any:
    from tests.integration.peers import ab_client

    client = yield ab_client.connect(gw_port, f"ws://ws.test:{gw_port}/headers", deflate=True)
    raw, _ = yield client.next_message()
    assert json.loads(raw)["extensions"] == ["permessage-deflate"]
    assert client.extensions == ["permessage-deflate"]
    client.sendMessage(b"z" * 300000, isBinary=True)
    echoed, is_binary = yield client.next_message()
    assert is_binary and echoed == b"z" * 300000
    client.sendClose(1000)
    yield client.closed


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_server_initiated_messages(gw_port: int, backend: str) -> None:
    with ws_connect(gw_port, BACKENDS[backend], "/push") as ws:
        assert [ws.recv(timeout=10) for _ in range(3)] == ["push 0", "push 1", "push 2"]


@pytest_twisted.inlineCallbacks
def test_server_initiated_messages_autobahn_client(gw_port: int) -> Any:
    from tests.integration.peers import ab_client

    client = yield ab_client.connect(gw_port, f"ws://ws.test:{gw_port}/push",
                                     protocols=["chat"])
    assert client.websocket_protocol_in_use == "chat"
    got = []
    for _ in range(3):
        payload, _ = yield client.next_message()
        got.append(payload)
    assert got == [b"push 0", b"push 1", b"push 2"]
    client.sendClose(1000)
    yield client.closed


@pytest.mark.parametrize(("target", "forwarded"), [
    # reserved escapes (%2F, %3A) and other escapes survive byte for byte...
    ("/headers?a=1&b=%2F&c=x&empty=&utf8=%C3%A9", "/headers?a=1&b=%2F&c=x&empty=&utf8=%C3%A9"),
    ("/headers/http%3A%2F%2Ftest", "/headers/http%3A%2F%2Ftest"),
    # ...after Traefik's entryPoint clean-up, checked against the real Traefik by the
    # differential tests: ';' in the query as '&', escaped unreserved characters decoded,
    # escape hex upper-cased, dot segments and repeated slashes removed (sanitizePath).
    ("/headers?a=1&c=x;y", "/headers?a=1&c=x&y"),
    ("/headers/x/%2e%2E/a%2fb//c/./d?q=%3A%2F", "/headers/a%2Fb/c/d?q=%3A%2F"),
])
def test_path_and_query_reach_the_backend_byte_for_byte(gw_port: int, target: str,
                                                         forwarded: str) -> None:
    with ws_connect(gw_port, "ws.test", target) as ws:
        assert _headers_seen(ws)["path"] == forwarded


def test_raw_target_byte_for_byte_autobahn_backend(gw_port: int) -> None:
    target = "/headers/http%3A%2F%2Ftest?x=%2F&y=1"
    with ws_connect(gw_port, "ab.test", target) as ws:
        assert _headers_seen(ws)["uri"] == target


def test_foreign_origin_rejected_by_backend_reaches_client(gw_port: int) -> None:
    with pytest.raises(InvalidStatus) as info:
        ws_connect(gw_port, "ws.test", "/reject-origin", origin="https://evil.example")
    response = info.value.response
    assert response.status_code == 403
    assert response.body == b"forbidden\n"


def test_allowed_origin_passes_through(gw_port: int) -> None:
    with ws_connect(gw_port, "ws.test", "/reject-origin",
                    origin="https://allowed-origin.com") as ws:
        ws.send("hi")
        assert ws.recv(timeout=10) == "hi"


def test_authorization_cookie_and_custom_headers_pass_through(gw_port: int) -> None:
    sent = {"Authorization": "Basic dHJhZWZpa2VyOnNlY3JldA==", "Cookie": "a=1; b=2",
            "X-Token": "tok-123"}
    with ws_connect(gw_port, "ws.test", "/headers", additional_headers=sent,
                    origin="https://app.example") as ws:
        lower = _headers_seen(ws)["lower"]
    assert lower["authorization"] == sent["Authorization"]
    assert lower["cookie"] == sent["Cookie"]
    assert lower["x-token"] == sent["X-Token"]
    assert lower["origin"] == "https://app.example"


def test_backend_401_and_its_body_reach_the_client(gw_port: int) -> None:
    with pytest.raises(InvalidStatus) as info:
        ws_connect(gw_port, "ws.test", "/unauthorized")
    response = info.value.response
    assert response.status_code == 401
    assert response.body == b"unauthorized\n"
    assert response.headers["WWW-Authenticate"] == 'Basic realm="t"'


def test_the_101_is_the_backends_own(gw_port: int) -> None:
    with ws_connect(gw_port, "ws.test", "/echo") as ws:
        assert ws.response.status_code == 101
        assert "websockets" in ws.response.headers["Server"]
        ws.send("x")
        assert ws.recv(timeout=10) == "x"


def test_upgrade_request_head_as_the_backend_sees_it(gateway: Any, gw_port: int) -> None:
    with ws_connect(gw_port, "ws.test", "/headers",
                    additional_headers={"X-Forwarded-For": "6.6.6.6"}) as ws:
        info = _headers_seen(ws)
    lower = info["lower"]
    names = [k.lower() for k, _ in info["headers"]]
    assert lower["host"] == f"ws.test:{gw_port}"
    assert lower["connection"].lower() == "upgrade"
    assert lower["upgrade"].lower() == "websocket"
    assert lower["sec-websocket-version"] == "13"
    assert "sec-websocket-key" in lower
    assert lower["x-forwarded-proto"] == "ws"
    assert lower["x-forwarded-for"] == "127.0.0.1"  # the spoofed value was dropped
    assert lower["x-forwarded-host"] == f"ws.test:{gw_port}"
    assert lower["x-forwarded-port"] == str(gw_port)
    assert lower["x-forwarded-server"] == socket.gethostname()
    assert lower["x-real-ip"] == "127.0.0.1"
    assert names.count("host") == 1 and names.count("connection") == 1


def test_pings_and_pongs_pass_through(gw_port: int) -> None:
    with ws_connect(gw_port, "ws.test", "/echo") as ws:
        for payload in (b"", b"p" * 125, b"ping"):
            pong = ws.ping(payload)
            assert pong.wait(10) is not None
        ws.send("after pings")
        assert ws.recv(timeout=10) == "after pings"


def test_frames_sent_right_behind_the_upgrade_request(gw_port: int) -> None:
    """A client may send its first frames without waiting for the 101; they reach the
    backend once the upgrade is done."""
    from websockets.frames import Frame, Opcode

    # Handshake by hand, with a frame in the same write.
    sock = socket.create_connection(("127.0.0.1", gw_port), timeout=10)
    sock.sendall(b"GET /echo HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\n"
                 b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
                 + Frame(Opcode.TEXT, b"early bird").serialize(mask=True))
    data = b""
    while b"early bird" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    assert data.startswith(b"HTTP/1.1 101 ")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in data
    sock.close()


@pytest.mark.parametrize("response", [
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n",
], ids=["other-protocol", "no-upgrade-header"])
def test_101_for_another_protocol_answers_502(peers: Any, gw_port: int,
                                              response: bytes) -> None:
    from tests.integration.harness import OneShotWebSocketBackend

    backend = OneShotWebSocketBackend(peers.victim_raw_port, b"", response=response)
    try:
        with pytest.raises(InvalidStatus) as info:
            ws_connect(gw_port, "raw.test", "/x")
        assert info.value.response.status_code == 502
    finally:
        backend.close()


def test_101_to_a_request_that_did_not_ask_answers_502(peers: Any, gw_port: int) -> None:
    from tests.integration.harness import OneShotWebSocketBackend, request

    backend = OneShotWebSocketBackend(peers.victim_raw_port, b"")
    try:
        response = request(gw_port, b"GET /x HTTP/1.1\r\nHost: raw.test\r\n\r\n")
        assert response.status == 502
    finally:
        backend.close()


def test_in_process_echo_service(gw_port: int) -> None:
    with ws_connect(gw_port, "echo.test", "/echo") as ws:
        for message in ("hello", b"\x00\x01" * 70000, ""):
            ws.send(message)
            assert ws.recv(timeout=10) == message
        ws.close(1000)
    assert ws.close_code == 1000


def test_server_url_path_prefixes_the_target(gw_port: int) -> None:
    from tests.integration.harness import request

    response = request(gw_port, b"GET /x/%2F?q=1 HTTP/1.1\r\nHost: prefixed.test\r\n\r\n")
    assert json.loads(response.body)["target"] == "/base/x/%2F?q=1"


@pytest_twisted.inlineCallbacks
def test_backend_401_reaches_an_autobahn_client(gw_port: int) -> Any:
    from tests.integration.peers import ab_client

    with pytest.raises(ConnectionError) as info:
        yield ab_client.connect(gw_port, f"ws://ws.test:{gw_port}/unauthorized")
    assert "401" in str(info.value)
