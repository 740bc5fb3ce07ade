"""A broadcast chat served by wsgate itself: every message goes to every connected client.

The protocol is plain autobahn; wsgate routes to it like to any other service, with the same
rules, middlewares and TLS as proxied ones.
"""

from __future__ import annotations

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol


class ChatProtocol(WebSocketServerProtocol):
    def onOpen(self) -> None:
        self.factory.members.add(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        for member in list(self.factory.members):
            member.sendMessage(payload, isBinary)

    def onClose(self, wasClean: bool, code: int, reason: str) -> None:
        self.factory.members.discard(self)


class ChatFactory(WebSocketServerFactory):
    protocol = ChatProtocol

    def __init__(self) -> None:
        super().__init__()
        self.members: set[ChatProtocol] = set()
