"""Messages of every size class through the proxy, with two independent WebSocket stacks as
client and as backend: the `websockets` library and autobahn (Twisted)."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted

from tests.integration.harness import make_payload, ws_connect

# The length encodings of RFC 6455 §5.2: 7-bit, 16-bit and 64-bit, on each side of each limit.
SIZES = [0, 1, 125, 126, 65535, 65536, 1 << 20,
         pytest.param(16 << 20, marks=pytest.mark.slow, id="16777216")]
BACKENDS = {"websockets": "ws.test", "autobahn": "ab.test"}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", ["text", "binary"])
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_websockets_client(gw_port: int, backend: str, kind: str, size: int) -> None:
    payload = make_payload(kind, size, seed=size)
    message: Any = payload.decode() if kind == "text" else payload
    with ws_connect(gw_port, BACKENDS[backend], "/echo") as ws:
        ws.send(message)
        echoed = ws.recv(timeout=30)
        assert type(echoed) is type(message)
        assert len(echoed) == size
        assert echoed == message
        ws.close()
    assert ws.close_code == 1000


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", ["text", "binary"])
@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest_twisted.inlineCallbacks
def test_autobahn_client(gw_port: int, backend: str, kind: str, size: int) -> Any:
    from tests.integration.peers import ab_client

    payload = make_payload(kind, size, seed=size)
    client = yield ab_client.connect(gw_port, f"ws://{BACKENDS[backend]}:{gw_port}/echo")
    client.sendMessage(payload, isBinary=kind == "binary")
    echoed, is_binary = yield client.next_message()
    assert is_binary == (kind == "binary")
    assert len(echoed) == size
    assert echoed == payload
    client.sendClose(1000)
    clean, code, _ = yield client.closed
    assert clean and code == 1000


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_many_messages_in_both_directions_keep_order(gw_port: int, backend: str) -> None:
    """Small messages sent back to back (many frames per TCP segment) come back in order."""
    with ws_connect(gw_port, BACKENDS[backend], "/echo") as ws:
        for i in range(500):
            ws.send(f"m{i}")
        for i in range(500):
            assert ws.recv(timeout=10) == f"m{i}"
