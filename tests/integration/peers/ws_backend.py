"""A WebSocket backend written with the `websockets` library (not Twisted), for tests.

Echoes every message; on the path /push it sends three messages first; /headers sends back
the request head it received as JSON; /reject-origin refuses foreign origins with 403;
/unauthorized answers 401; subprotocols chat and superchat are offered for selection.
Prints "listening on PORT" when ready.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.http11 import Response


def process_request(connection, request):  # type: ignore[no-untyped-def]
    path = request.path.split("?", 1)[0]
    if path.startswith("/unauthorized"):
        return Response(401, "Unauthorized", Headers([("WWW-Authenticate", 'Basic realm="t"'),
                                                      ("Content-Length", "13")]),
                        b"unauthorized\n")
    if path.startswith("/reject-origin"):
        origin = request.headers.get("Origin")
        if origin is not None and origin != "https://allowed-origin.com":
            return Response(403, "Forbidden", Headers([("Content-Length", "10")]),
                            b"forbidden\n")
    return None


async def handler(ws):  # type: ignore[no-untyped-def]
    path = ws.request.path
    if path.startswith("/push"):
        for i in range(3):
            await ws.send(f"push {i}")
    if path.startswith("/headers"):
        await ws.send(json.dumps({"path": path, "headers": list(ws.request.headers.raw_items()),
                                  "subprotocol": ws.subprotocol}))
    async for message in ws:
        await ws.send(message)


async def main(port: int) -> None:
    async with serve(handler, "127.0.0.1", port, process_request=process_request,
                     subprotocols=["chat", "superchat"], max_size=None,
                     compression="deflate", ping_interval=None) as server:
        bound = server.sockets[0].getsockname()[1]
        print(f"listening on {bound}", flush=True)
        await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    try:
        asyncio.run(main(args.port))
    except KeyboardInterrupt:
        sys.exit(0)
