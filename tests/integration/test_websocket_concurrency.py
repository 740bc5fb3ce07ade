"""Many WebSockets at once: every message reaches its own client, in order (no cross-talk
between relays)."""

from __future__ import annotations

import asyncio
import socket

from websockets.asyncio.client import connect

CLIENTS = 150
MESSAGES = 20


def test_many_concurrent_websockets(gw_port: int) -> None:
    async def one(i: int, host: str) -> list[str]:
        sock = socket.create_connection(("127.0.0.1", gw_port))
        async with connect(f"ws://{host}:{gw_port}/echo?c={i}", sock=sock, max_size=None,
                           compression=None, open_timeout=20) as ws:
            got = []
            for j in range(MESSAGES):
                await ws.send(f"{i}:{j}:" + "x" * (j * 97))
            for _ in range(MESSAGES):
                got.append(str(await asyncio.wait_for(ws.recv(), 20)).split(":", 2)[1])
            return got

    async def main() -> list[list[str]]:
        hosts = ["ws.test", "ab.test"]
        return await asyncio.wait_for(
            asyncio.gather(*(one(i, hosts[i % 2]) for i in range(CLIENTS))), 60)

    results = asyncio.run(main())
    assert results == [[str(j) for j in range(MESSAGES)]] * CLIENTS
