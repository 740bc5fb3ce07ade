"""A WebSocket backend written with autobahn on Twisted, for tests.

Echoes every message with its type. Paths: /push sends three messages first; /headers sends
the request it received as JSON (path, raw target, headers, subprotocol, extensions, port).
Subprotocol chat is preferred to superchat; permessage-deflate offers are accepted.

Prints ``listening on PORT`` when ready and ``closed PATH code=CODE`` when a connection ends.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept
from twisted.internet import reactor

SUBPROTOCOLS = ("chat", "superchat")


def accept_deflate(offers: list[Any]) -> Any:
    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            return PerMessageDeflateOfferAccept(offer)
    return None


class EchoProtocol(WebSocketServerProtocol):
    path = ""
    request: Any = None

    def onConnect(self, request: Any) -> Any:
        self.request = request
        self.path = request.path
        if request.params:
            query = "&".join(f"{k}={v}" for k, vs in request.params.items() for v in vs)
            self.path = f"{request.path}?{query}"
        for proto in SUBPROTOCOLS:  # the server's preference wins, as in ws_backend
            if proto in request.protocols:
                return proto
        return None

    def onOpen(self) -> None:
        if self.request.path.startswith("/push"):
            for i in range(3):
                self.sendMessage(f"push {i}".encode())
        elif self.request.path.startswith("/headers"):
            info = {
                "path": self.path,
                "uri": self.http_request_uri,
                "headers": sorted(self.request.headers.items()),
                "subprotocol": self.websocket_protocol_in_use,
                "extensions": [ext.EXTENSION_NAME for ext in self.websocket_extensions_in_use],
                "port": self.transport.getHost().port,
            }
            self.sendMessage(json.dumps(info).encode())

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.sendMessage(payload, isBinary)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        print(f"closed {self.path} code={code} clean={wasClean}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    factory = WebSocketServerFactory()
    factory.protocol = EchoProtocol
    factory.setProtocolOptions(perMessageCompressionAccept=accept_deflate,
                               maxFramePayloadSize=0, maxMessagePayloadSize=0,
                               autoPingInterval=0, openHandshakeTimeout=10,
                               closeHandshakeTimeout=5)
    port = reactor.listenTCP(args.port, factory, interface="127.0.0.1")  # type: ignore[attr-defined]
    print(f"listening on {port.getHost().port}", flush=True)
    reactor.run()  # type: ignore[attr-defined]


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
