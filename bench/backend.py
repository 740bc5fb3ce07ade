"""Benchmark backend: a WebSocket echo server (picows on uvloop), not written with Twisted.

Run by bench/run.py; prints ``listening ws=PORT`` (and ``http=PORT`` with ``--http``) when
ready. Echoes every data frame as it arrives (frame by frame, opcode and FIN kept), answers a
close frame with the same code and then closes the TCP connection, as RFC 6455 asks of a
server. ``--http`` adds a minimal keep-alive HTTP/1.1 responder on uvloop (a fixed 200 for
every request head), used only when nginx is not there to serve the plain HTTP measurement.
``--tls-port`` with ``--cert``/``--key`` adds the same echo over TLS (``wss=PORT`` in the ready
line) for the wss:// measurements; it prints ``tls VERSION CIPHER BITS`` for every TLS
WebSocket it accepts, so that bench/run.py can tell which cipher a proxy's backend leg uses.

With ``--impl websockets`` the echo is the ``websockets`` library on uvloop instead (the
fall-back when picows cannot be installed).

Only binds 127.0.0.1. Stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import ssl
import sys
from typing import Any

HTTP_BODY = b"hello, bench\n"
HTTP_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
                 + str(len(HTTP_BODY)).encode() + b"\r\n\r\n" + HTTP_BODY)


class HTTPResponder(asyncio.Protocol):
    """A fixed response per request head; bodyless GET requests only (what the bench sends)."""

    __slots__ = ("buf", "transport")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        n = buf.count(b"\r\n\r\n")
        if n:
            self.transport.write(HTTP_RESPONSE * n)  # type: ignore[attr-defined]
            buf = buf[buf.rindex(b"\r\n\r\n") + 4:]
        self.buf = buf


def report_tls(transport: Any) -> None:
    """One ``tls ...`` line per accepted TLS connection (nothing for plain ones)."""
    obj = transport.get_extra_info("ssl_object") if transport is not None else None
    if obj is not None:
        name, _, bits = obj.cipher()
        print("tls", obj.version(), name, bits, flush=True)


def server_context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx


async def serve_picows(port: int, ctx: ssl.SSLContext | None = None) -> tuple[object, int]:
    from picows import WSCloseCode, WSListener, WSMsgType, ws_create_server

    class Echo(WSListener):  # type: ignore[misc]
        def on_ws_connected(self, transport):  # type: ignore[no-untyped-def]
            if ctx is not None:
                report_tls(transport.underlying_transport)

        def on_ws_frame(self, transport, frame):  # type: ignore[no-untyped-def]
            t = frame.msg_type
            if t is WSMsgType.CLOSE:
                code = frame.get_close_code()
                if code is WSCloseCode.NO_INFO:
                    code = WSCloseCode.OK
                transport.send_close(code)
                transport.disconnect()
            elif t is not WSMsgType.PONG and t is not WSMsgType.PING:
                transport.send(t, frame.get_payload_as_memoryview(), frame.fin)

    server = await ws_create_server(lambda request: Echo(), "127.0.0.1", port,
                                    max_frame_size=64 * 1024 * 1024,
                                    websocket_handshake_timeout=10, backlog=4096, ssl=ctx)
    bound = server.sockets[0].getsockname()[1]
    return server, bound


async def serve_websockets(port: int, ctx: ssl.SSLContext | None = None) -> tuple[object, int]:
    from websockets.asyncio.server import serve

    async def echo(ws):  # type: ignore[no-untyped-def]
        report_tls(ws.transport)
        async for msg in ws:
            await ws.send(msg)

    server = await serve(echo, "127.0.0.1", port, max_size=64 * 1024 * 1024, compression=None,
                         ping_interval=None, backlog=4096, ssl=ctx)
    bound = next(iter(server.sockets)).getsockname()[1]
    return server, bound


async def main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    serve = serve_picows if args.impl == "picows" else serve_websockets
    server, ws_port = await serve(args.port)
    line = f"listening ws={ws_port}"
    tls_server = None
    if args.tls_port is not None:
        tls_server, wss_port = await serve(args.tls_port, server_context(args.cert, args.key))
        line += f" wss={wss_port}"
    http_server = None
    if args.http is not None:
        http_server = await loop.create_server(HTTPResponder, "127.0.0.1", args.http,
                                               backlog=4096)
        line += f" http={http_server.sockets[0].getsockname()[1]}"
    print(line, f"impl={args.impl}", flush=True)
    await stop
    server.close()  # type: ignore[attr-defined]
    if tls_server is not None:
        tls_server.close()  # type: ignore[attr-defined]
    if http_server is not None:
        http_server.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--http", type=int, default=None, metavar="PORT",
                   help="also serve plain HTTP on this port (0: any free port)")
    p.add_argument("--impl", choices=("picows", "websockets"), default="picows")
    p.add_argument("--tls-port", type=int, default=None, metavar="PORT",
                   help="also serve the echo over TLS on this port (0: any free port)")
    p.add_argument("--cert", help="PEM certificate chain for --tls-port")
    p.add_argument("--key", help="PEM private key for --tls-port")
    a = p.parse_args()
    if a.tls_port is not None and not (a.cert and a.key):
        p.error("--tls-port needs --cert and --key")
    import uvloop

    uvloop.run(main(a))
    sys.exit(0)
