"""A WebSocket backend written with the `websockets` library (not Twisted), for tests.

Echoes every message. Paths (the query string is ignored for routing, kept in reports):
- /push: sends three messages first;
- /headers: sends back the request head it received as JSON (with the negotiated
  subprotocol and extensions, and its own port);
- /id: sends ``id PORT`` first; a plain (non-upgrade) GET /id is answered 200 with ``PORT``;
- /flood?count=N&size=S: after a first client message, sends N binary messages of S bytes and
  then the text ``done``, printing ``flood sent I`` after each, and ``flood stalled after I``
  once when a send stays blocked for half a second (the reader's backpressure reached us);
- /fragments: echoes each message in four fragments with a ping after each fragment;
- /close: closes at once with code 4002 and reason ``server bye``;
- /reject-origin: refuses foreign origins with 403; /unauthorized answers 401 with a body;
- /set-upgrades/off and /set-upgrades/on (plain GET): from then on, that port refuses every
  upgrade with 503, or accepts them again (for health-check tests);
- subprotocols: chat is preferred to superchat, none offered is fine;
- permessage-deflate is accepted.

Prints ``listening on PORT [PORT...]`` when ready (``--count`` ports in one process) and
``closed PATH code=CODE`` when a connection ends, so tests can wait for both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from urllib.parse import parse_qs

from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.http11 import Response


def _plain(status: int, reason: str, body: bytes,
           extra: list[tuple[str, str]] | None = None) -> Response:
    headers = Headers([*(extra or []), ("Content-Length", str(len(body))),
                       ("Content-Type", "text/plain")])
    return Response(status, reason, headers, body)


#: Ports that refuse upgrades (set by /set-upgrades/off).
REFUSING: set[int] = set()


def process_request(connection, request):  # type: ignore[no-untyped-def]
    path = request.path.split("?", 1)[0]
    port = connection.transport.get_extra_info("sockname")[1]
    if path.startswith("/set-upgrades/"):
        if path.endswith("/off"):
            REFUSING.add(port)
        else:
            REFUSING.discard(port)
        return _plain(200, "OK", path.encode())
    upgrade = "upgrade" in request.headers.get("Connection", "").lower()
    if upgrade and port in REFUSING:
        return _plain(503, "Service Unavailable", b"not accepting upgrades\n")
    if path.startswith("/unauthorized"):
        return _plain(401, "Unauthorized", b"unauthorized\n",
                      [("WWW-Authenticate", 'Basic realm="t"')])
    if path.startswith("/reject-origin"):
        origin = request.headers.get("Origin")
        if origin is not None and origin != "https://allowed-origin.com":
            return _plain(403, "Forbidden", b"forbidden\n")
    if path.startswith("/id") and not upgrade:
        return _plain(200, "OK", str(port).encode())
    return None


async def _fragments(ws, message):  # type: ignore[no-untyped-def]
    """The message in four fragments (first one empty), a ping after each."""
    cut = [0, 0, len(message) // 3, 2 * len(message) // 3, len(message)]
    for i in range(4):
        yield message[cut[i]:cut[i + 1]]
        await ws.ping(f"frag {i}".encode())


async def handler(ws):  # type: ignore[no-untyped-def]
    path = ws.request.path
    route, _, query = path.partition("?")
    port = ws.transport.get_extra_info("sockname")[1]
    try:
        if route.startswith("/push"):
            for i in range(3):
                await ws.send(f"push {i}")
        elif route.startswith("/headers"):
            await ws.send(json.dumps({
                "path": path, "headers": list(ws.request.headers.raw_items()),
                "subprotocol": ws.subprotocol,
                "extensions": [ext.name for ext in ws.protocol.extensions],
                "port": port}))
        elif route.startswith("/close"):
            await ws.close(4002, "server bye")
        elif route.startswith("/id"):
            await ws.send(f"id {port}")
        elif route.startswith("/flood"):
            params = parse_qs(query)
            count = int(params.get("count", ["100"])[0])
            size = int(params.get("size", [str(1 << 20)])[0])
            await ws.recv()
            block = bytes(range(256)) * (size // 256) + b"\x00" * (size % 256)
            stalled = False
            for i in range(count):
                sending = asyncio.ensure_future(ws.send(block))
                if not stalled:
                    # A send blocked this long means every buffer on the way is full.
                    done, _ = await asyncio.wait([sending], timeout=0.5)
                    if not done:
                        stalled = True
                        print(f"flood stalled after {i}", flush=True)
                await sending
                print(f"flood sent {i + 1}", flush=True)
            await ws.send("done")
        if route.startswith("/fragments"):
            async for message in ws:
                await ws.send(_fragments(ws, message))
        async for message in ws:
            await ws.send(message)
    finally:
        print(f"closed {path} code={ws.close_code} port={port}", flush=True)


def select_subprotocol(connection, offered):  # type: ignore[no-untyped-def]
    """The server's preference wins (chat before superchat); none offered is fine."""
    for proto in ("chat", "superchat"):
        if proto in offered:
            return proto
    return None


async def main(port: int, count: int) -> None:
    servers = []
    for i in range(count):
        server = await serve(handler, "127.0.0.1", port + i if port else 0,
                             process_request=process_request,
                             select_subprotocol=select_subprotocol, max_size=None,
                             compression="deflate", ping_interval=None, max_queue=4)
        servers.append(server)
    bound = [str(s.sockets[0].getsockname()[1]) for s in servers]
    print(f"listening on {' '.join(bound)}", flush=True)
    await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--count", type=int, default=1)
    args = parser.parse_args()
    try:
        asyncio.run(main(args.port, args.count))
    except KeyboardInterrupt:
        sys.exit(0)
