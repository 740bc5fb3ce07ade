"""WebSocket backends over TLS (the `websockets` library on Python's ssl), for TLS tests.

One process serves several TLS listeners, each given as
``--tls NAME=CERT,KEY[,alpn=P1+P2][,client_ca=PATH]`` (``client_ca`` requires a client
certificate issued by that CA). Each echoes every message. On the path /tls it first sends, as
JSON, what its TLS layer saw: the server name the client sent (SNI), the ALPN protocol chosen
and the TLS version. A plain GET to /hello (no upgrade) answers 200 "hello". Every request
head is announced on stdout ("request NAME PATH"), so a test can tell whether a request reached
a server at all. Prints "listening NAME PORT" for each listener, then "ready".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys
from typing import Any

from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.http11 import Response

_SNI: dict[int, str | None] = {}


def remember_sni(sslobj: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
    _SNI[id(sslobj)] = name


def listener(name: str) -> tuple[Any, Any]:
    def process_request(connection, request):  # type: ignore[no-untyped-def]
        print(f"request {name} {request.path}", flush=True)
        if request.path.startswith("/hello"):
            return Response(200, "OK", Headers([("Content-Length", "6")]), b"hello\n")
        return None

    async def handler(ws):  # type: ignore[no-untyped-def]
        if ws.request.path.startswith("/tls"):
            sslobj = ws.transport.get_extra_info("ssl_object")
            await ws.send(json.dumps({
                "sni": _SNI.get(id(sslobj)),
                "alpn": sslobj.selected_alpn_protocol(),
                "version": sslobj.version(),
            }))
        async for message in ws:
            await ws.send(message)

    return process_request, handler


def context(spec: str) -> tuple[str, ssl.SSLContext]:
    name, _, rest = spec.partition("=")
    cert, key, *options = rest.split(",")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    for option in options:
        key_, _, value = option.partition("=")
        if key_ == "alpn":
            ctx.set_alpn_protocols(value.split("+"))
        elif key_ == "client_ca":
            ctx.load_verify_locations(cafile=value)
            ctx.verify_mode = ssl.CERT_REQUIRED
        else:
            raise SystemExit(f"unknown option {option!r} in {spec!r}")
    ctx.sni_callback = remember_sni
    return name, ctx


async def main(specs: list[str]) -> None:
    servers = []
    for spec in specs:
        name, ctx = context(spec)
        process_request, handler = listener(name)
        server = await serve(handler, "127.0.0.1", 0, ssl=ctx, process_request=process_request,
                             ping_interval=None)
        servers.append(server)
        print(f"listening {name} {server.sockets[0].getsockname()[1]}", flush=True)
    print("ready", flush=True)
    await asyncio.get_running_loop().create_future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tls", action="append", required=True,
                        help="NAME=CERT,KEY[,alpn=P1+P2][,client_ca=PATH]")
    try:
        asyncio.run(main(parser.parse_args().tls))
    except KeyboardInterrupt:
        sys.exit(0)
