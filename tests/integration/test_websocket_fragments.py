"""Fragmented messages, with control frames between the fragments, through the relay's frame
tracker in both directions (RFC 6455 §5.4: control frames may be injected between fragments)."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted

from tests.integration.harness import make_payload, ws_connect

BACKENDS = {"websockets": "ws.test", "autobahn": "ab.test"}
# Fragment sizes across the 7-, 16- and 64-bit length encodings, including empty fragments.
FRAGMENTS = [0, 1, 125, 126, 65535, 65536, 3, 0, 200000]


@pytest.mark.parametrize("deflate", [False, True], ids=["plain", "deflate"])
@pytest.mark.parametrize("kind", ["text", "binary"])
@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest_twisted.inlineCallbacks
def test_fragments_with_pings_between_them(gw_port: int, backend: str, kind: str,
                                           deflate: bool) -> Any:
    from tests.integration.peers import ab_client

    client = yield ab_client.connect(gw_port, f"ws://{BACKENDS[backend]}:{gw_port}/echo",
                                     deflate=deflate)
    assert client.extensions == (["permessage-deflate"] if deflate else [])
    pieces = [make_payload(kind, n, seed=i) for i, n in enumerate(FRAGMENTS)]
    client.beginMessage(isBinary=kind == "binary")
    for i, piece in enumerate(pieces):
        client.sendMessageFrame(piece)
        client.sendPing(b"ping %d" % i)
    client.endMessage()
    for i in range(len(pieces)):
        pong = yield client.next_pong()
        assert pong == b"ping %d" % i
    echoed, is_binary = yield client.next_message()
    assert is_binary == (kind == "binary")
    assert echoed == b"".join(pieces)
    # The connection is still in step: a plain message after the fragmented one.
    client.sendMessage(b"after", isBinary=True)
    echoed, _ = yield client.next_message()
    assert echoed == b"after"
    client.sendClose(1000)
    clean, code, _ = yield client.closed
    assert clean and code == 1000


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_websockets_client_fragmented_send(gw_port: int, backend: str) -> None:
    pieces = [make_payload("binary", n, seed=n) for n in FRAGMENTS]
    with ws_connect(gw_port, BACKENDS[backend], "/echo") as ws:
        ws.send(iter(pieces))
        assert ws.recv(timeout=10) == b"".join(pieces)
        text = ["héllo ", "", "wörld " * 30000, "!"]
        ws.send(iter(text))
        assert ws.recv(timeout=10) == "".join(text)


@pytest.mark.parametrize("kind", ["text", "binary"])
@pytest_twisted.inlineCallbacks
def test_backend_fragments_with_pings_between_them(gw_port: int, kind: str) -> Any:
    """The other direction: the websockets backend fragments its answer and pings between."""
    from tests.integration.peers import ab_client

    client = yield ab_client.connect(gw_port, f"ws://ws.test:{gw_port}/fragments")
    pings: list[bytes] = []
    client.onPing = lambda payload: (pings.append(payload),  # type: ignore[method-assign]
                                     client.sendPong(payload))
    payload = make_payload(kind, 300001, seed=7)
    client.sendMessage(payload, isBinary=kind == "binary")
    echoed, is_binary = yield client.next_message()
    assert is_binary == (kind == "binary")
    assert echoed == payload
    assert pings[:3] == [b"frag 0", b"frag 1", b"frag 2"]
    client.sendClose(1000)
    yield client.closed


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest_twisted.inlineCallbacks
def test_autobahn_send_message_with_fragment_size(gw_port: int, backend: str) -> Any:
    from tests.integration.peers import ab_client

    client = yield ab_client.connect(gw_port, f"ws://{BACKENDS[backend]}:{gw_port}/echo")
    payload = make_payload("text", 70001, seed=3)
    client.sendMessage(payload, fragmentSize=1000)  # 71 frames
    echoed, is_binary = yield client.next_message()
    assert not is_binary and echoed == payload
    client.sendClose(1000)
    yield client.closed
