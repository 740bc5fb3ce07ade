"""An autobahn WebSocket client for in-process use from pytest-twisted tests.

``connect`` returns a Deferred firing with an ``ABClient`` once the handshake is done; received
messages, pongs and the close are Deferreds and queues the test awaits (never a sleep).
"""

from __future__ import annotations

from typing import Any

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol
from autobahn.websocket.compress import (
    PerMessageDeflateOffer,
    PerMessageDeflateResponse,
    PerMessageDeflateResponseAccept,
)
from twisted.internet import defer, reactor

TIMEOUT = 30.0


class ABClient(WebSocketClientProtocol):
    factory: _Factory

    def __init__(self) -> None:
        super().__init__()
        self.messages: defer.DeferredQueue[tuple[bytes, bool]] = defer.DeferredQueue()
        self.pongs: defer.DeferredQueue[bytes] = defer.DeferredQueue()
        self.closed: defer.Deferred[tuple[bool, int | None, str | None]] = defer.Deferred()
        self.response: Any = None

    def onConnect(self, response: Any) -> None:
        self.response = response

    def onOpen(self) -> None:
        d, self.factory.opened = self.factory.opened, None
        if d is not None:
            d.callback(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.messages.put((payload, isBinary))

    def onPong(self, payload: bytes) -> None:
        self.pongs.put(payload)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        d, self.factory.opened = self.factory.opened, None
        if d is not None:
            d.errback(ConnectionError(f"handshake failed: code={code} reason={reason}"))
        if not self.closed.called:
            self.closed.callback((wasClean, code, reason))

    # -- helpers for tests ------------------------------------------------------------------------
    def next_message(self, timeout: float = TIMEOUT) -> defer.Deferred[tuple[bytes, bool]]:
        return self.messages.get().addTimeout(timeout, reactor)

    def next_pong(self, timeout: float = TIMEOUT) -> defer.Deferred[bytes]:
        return self.pongs.get().addTimeout(timeout, reactor)

    @property
    def extensions(self) -> list[str]:
        return [ext.EXTENSION_NAME for ext in self.websocket_extensions_in_use]


class _Factory(WebSocketClientFactory):
    protocol = ABClient
    opened: defer.Deferred[ABClient] | None = None


def _accept_deflate(response: Any) -> Any:
    if isinstance(response, PerMessageDeflateResponse):
        return PerMessageDeflateResponseAccept(response)
    return None


def connect(port: int, url: str, *, protocols: list[str] | None = None, deflate: bool = False,
            headers: dict[str, str] | None = None,
            timeout: float = TIMEOUT) -> defer.Deferred[ABClient]:
    """Open ``url`` (whose host names the router) through the proxy at 127.0.0.1:``port``."""
    factory = _Factory(url, protocols=protocols, headers=headers)
    options: dict[str, Any] = {"maxFramePayloadSize": 0, "maxMessagePayloadSize": 0,
                               "autoPingInterval": 0, "openHandshakeTimeout": timeout,
                               "closeHandshakeTimeout": 10}
    if deflate:
        options["perMessageCompressionOffers"] = [PerMessageDeflateOffer()]
        options["perMessageCompressionAccept"] = _accept_deflate
    factory.setProtocolOptions(**options)
    d: defer.Deferred[ABClient] = defer.Deferred()
    factory.opened = d
    reactor.connectTCP("127.0.0.1", port, factory, timeout=timeout)  # type: ignore[attr-defined]
    return d.addTimeout(timeout, reactor)
