"""autobahn-python's own Twisted WebSocket echo server: the backend of the Autobahn TestSuite runs.

It is configured like autobahn-python's testee server: every message is echoed as it came
(text or binary), there is no limit on frame or message size, protocol violations are
answered with a close frame rather than a dropped TCP connection (``failByDrop=False``, as the
suite expects of a conformant endpoint), and a ``permessage-deflate`` offer is accepted so the
compression groups (12, 13) have something to talk to. ``--no-deflate`` refuses it.
Prints "listening on PORT" when ready.
"""

from __future__ import annotations

import argparse
import sys

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept
from twisted.internet import reactor


class EchoProtocol(WebSocketServerProtocol):
    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.sendMessage(payload, isBinary)


def accept_deflate(offers: list[object]) -> PerMessageDeflateOfferAccept | None:
    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            return PerMessageDeflateOfferAccept(offer)
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--no-deflate", action="store_true")
    args = parser.parse_args()
    factory = WebSocketServerFactory(server="AutobahnPython-echo")
    factory.protocol = EchoProtocol
    factory.setProtocolOptions(failByDrop=False, maxFramePayloadSize=0,
                               maxMessagePayloadSize=0, openHandshakeTimeout=30)
    if not args.no_deflate:
        factory.setProtocolOptions(perMessageCompressionAccept=accept_deflate)
    port = reactor.listenTCP(args.port, factory, interface="127.0.0.1")
    print(f"listening on {port.getHost().port}", flush=True)
    reactor.run()
    sys.exit(0)


if __name__ == "__main__":
    main()
