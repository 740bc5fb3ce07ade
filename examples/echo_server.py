#!/usr/bin/env python3
"""A WebSocket echo server to put behind the examples (autobahn on Twisted, both installed
with wsgate).

    python examples/echo_server.py --port 8000                        # ws://
    python examples/echo_server.py --port 8443 --cert c.pem --key k.pem   # wss://
    python examples/echo_server.py --allowed-origin https://allowed-origin.com

Every message comes back as it was sent. The first message on a connection is preceded by a
greeting that says which path and Host the server saw, so you can tell what the proxy
forwarded. With ``--allowed-origin`` a handshake whose Origin header is another origin is
refused with 403, as servers that check origins do. Prints ``listening on PORT``.
"""

from __future__ import annotations

import argparse
import json
import sys

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet import reactor, ssl


class EchoProtocol(WebSocketServerProtocol):
    allowed_origin: str | None = None

    def onConnect(self, request):
        origin = request.headers.get("origin")
        if self.allowed_origin and origin is not None and origin != self.allowed_origin:
            raise ConnectionDeny(403, f"origin {origin} is not allowed")
        self.seen = {"path": request.path, "host": request.headers.get("host"),
                     "origin": origin,
                     "x-forwarded-proto": request.headers.get("x-forwarded-proto")}
        return None

    def onOpen(self):
        self.sendMessage(json.dumps({"hello": self.seen}).encode())

    def onMessage(self, payload, isBinary):
        self.sendMessage(payload, isBinary)


def main() -> None:
    parser = argparse.ArgumentParser(description="WebSocket echo server for the examples")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--cert", help="PEM certificate: serve wss:// instead of ws://")
    parser.add_argument("--key", help="PEM private key of --cert")
    parser.add_argument("--allowed-origin", help="refuse handshakes from any other Origin")
    args = parser.parse_args()
    EchoProtocol.allowed_origin = args.allowed_origin
    factory = WebSocketServerFactory(server="wsgate-example-echo")
    factory.protocol = EchoProtocol
    factory.setProtocolOptions(maxMessagePayloadSize=0, maxFramePayloadSize=0)
    if args.cert:
        context = ssl.DefaultOpenSSLContextFactory(args.key or args.cert, args.cert)
        port = reactor.listenSSL(args.port, factory, context, interface=args.host)
    else:
        port = reactor.listenTCP(args.port, factory, interface=args.host)
    print(f"listening on {port.getHost().port}", flush=True)
    reactor.run()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
