"""``echo@internal``: an autobahn WebSocket echo service, for smoke tests and the default."""

from __future__ import annotations

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol


class EchoProtocol(WebSocketServerProtocol):  # type: ignore[misc]
    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.sendMessage(payload, isBinary)


def echo_factory() -> WebSocketServerFactory:
    factory = WebSocketServerFactory()
    factory.protocol = EchoProtocol
    # The proxy in front already bounds heads; autobahn must not second-guess the Host.
    factory.setProtocolOptions(maxMessagePayloadSize=16 * 1024 * 1024 + 1024,
                               maxFramePayloadSize=16 * 1024 * 1024 + 1024,
                               autoFragmentSize=0)
    return factory
