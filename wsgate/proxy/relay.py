"""The bidirectional relay after a 101: bytes both ways, flow control, clean close frames.

Each direction is a pair (reader transport → writer transport). The writer transport is the
reader's consumer with the reader as a streaming producer, so a slow reader on one side pauses
reading on the other and memory stays bounded by Twisted's write buffer high-water mark.

A frame tracker on each direction follows frame boundaries without copying payloads. When one
side goes away without a WebSocket close, the other side is sent a close frame at a frame
boundary (1014 to the client when the backend is lost, 1001 to the backend when the client is
lost) before its TCP connection is closed, instead of a bare TCP cut that peers see as 1006.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOProtocol
from zope.interface import implementer

from wsgate.websocket import CloseCode, FrameError, FrameTracker, build_close_frame

log = Logger()


class RelayStats:
    """Per-direction counters, read by metrics and the access log."""

    __slots__ = (
        "backend_bytes",
        "backend_messages",
        "client_bytes",
        "client_messages",
        "close_code",
        "closed_by",
    )

    def __init__(self) -> None:
        self.client_bytes = 0
        self.backend_bytes = 0
        self.client_messages = 0
        self.backend_messages = 0
        self.close_code: int | None = None
        self.closed_by = ""


@implementer(IPushProducer)
class _ReadSide:
    """A transport's reading side as a producer for the other transport.

    Registering the bare transport would let Twisted close it (stopProducing) when the other
    side goes away, before the relay had the chance to send a close frame.
    """

    __slots__ = ("transport",)

    def __init__(self, transport: Any) -> None:
        self.transport = transport

    def pauseProducing(self) -> None:
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self.transport.resumeProducing()

    def stopProducing(self) -> None:
        """The relay ends each side itself (see WebSocketRelay.side_lost)."""


class WebSocketRelay:
    """Joins a client transport and a backend transport after a successful upgrade."""

    def __init__(self, client: Any, backend: Any, *, deflate: bool = False,
                 on_done: Callable[[WebSocketRelay], None] | None = None) -> None:
        self.client = client
        self.backend = backend
        # client → backend frames are masked; backend → client frames are not.
        self.upstream = FrameTracker(masked=True, allow_rsv1=deflate, message_events=False)
        self.downstream = FrameTracker(masked=False, allow_rsv1=deflate,
                                       message_events=False)
        self.stats = RelayStats()
        self.on_done = on_done
        self._client_read_closed = False
        self._backend_read_closed = False
        self._client_lost = False
        self._backend_lost = False
        self._finished = False
        self._tracking = True
        client.registerProducer(_ReadSide(backend), True)
        backend.registerProducer(_ReadSide(client), True)

    # -- data ---------------------------------------------------------------------------------
    def from_client(self, data: bytes) -> None:
        self.stats.client_bytes += len(data)
        if self._tracking:
            try:
                self.upstream.feed(data)
            except FrameError as exc:
                self._protocol_error("client", exc)
        if not self._backend_lost:
            self.backend.write(data)

    def from_backend(self, data: bytes) -> None:
        self.stats.backend_bytes += len(data)
        if self._tracking:
            try:
                self.downstream.feed(data)
            except FrameError as exc:
                self._protocol_error("backend", exc)
        if not self._client_lost:
            self.client.write(data)

    def _protocol_error(self, side: str, exc: FrameError) -> None:
        # The endpoints own protocol enforcement; the proxy only stops tracking frames so that
        # it never injects a close frame into a stream it no longer understands.
        log.info("WebSocket frame error from {side}: {exc}; relaying bytes without frame "
                 "tracking", side=side, exc=exc)
        self._tracking = False

    # -- ends ---------------------------------------------------------------------------------
    def client_read_closed(self) -> None:
        """The client will send nothing more (FIN, or the connection is gone)."""
        if self._client_read_closed:
            return
        self._client_read_closed = True
        if not self._backend_lost:
            if self._tracking and self.upstream.close is None and \
                    self.upstream.at_frame_boundary:
                self.backend.write(build_close_frame(CloseCode.GOING_AWAY, "client went away",
                                                     mask=True))
                self._note_close(CloseCode.GOING_AWAY, "proxy")
            _half_close(self.backend)
        self._maybe_close_both()

    def backend_read_closed(self) -> None:
        """The backend will send nothing more (FIN, or the connection is gone)."""
        if self._backend_read_closed:
            return
        self._backend_read_closed = True
        if not self._client_lost:
            if self._tracking and self.downstream.close is None and \
                    self.downstream.at_frame_boundary:
                self.client.write(build_close_frame(CloseCode.BAD_GATEWAY, "backend went away",
                                                    mask=False))
                self._note_close(CloseCode.BAD_GATEWAY, "proxy")
            _half_close(self.client)
        self._maybe_close_both()

    def side_lost(self, side: str) -> None:
        """A transport is closed for good: nothing more can go either way on it."""
        if side == "client":
            self._client_lost = True
            self.client_read_closed()
            _close(self.backend)
        else:
            self._backend_lost = True
            self.backend_read_closed()
            _close(self.client)
        if self._client_lost and self._backend_lost:
            self._finish()

    def _maybe_close_both(self) -> None:
        if self._client_read_closed and self._backend_read_closed:
            _close(self.client)
            _close(self.backend)

    def close(self, code: int, reason: str = "") -> None:
        """Close both sides with ``code`` at frame boundaries (drain, limits)."""
        if self._tracking:
            if not self._client_lost and self.downstream.at_frame_boundary:
                self.client.write(build_close_frame(code, reason, mask=False))
            if not self._backend_lost and self.upstream.at_frame_boundary:
                self.backend.write(build_close_frame(code, reason, mask=True))
        self._note_close(code, "proxy")
        _close(self.client)
        _close(self.backend)

    def _note_close(self, code: int, by: str) -> None:
        if self.stats.close_code is None:
            self.stats.close_code = code
            self.stats.closed_by = by

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self.stats.close_code is None:
            if self.upstream.close is not None:
                self.stats.close_code = self.upstream.close.code
                self.stats.closed_by = "client"
            elif self.downstream.close is not None:
                self.stats.close_code = self.downstream.close.code
                self.stats.closed_by = "backend"
        self.stats.client_messages = self.upstream.messages
        self.stats.backend_messages = self.downstream.messages
        if self.on_done is not None:
            self.on_done(self)


def _half_close(transport: Any) -> None:
    """Send FIN after what is buffered, keeping the reading side open."""
    transport.unregisterProducer()
    # TLS cannot half-close: looked up on a TLS transport, loseWriteConnection would reach the
    # TCP transport underneath and cut the TLS stream (wsgate.tls); close it whole instead.
    lose_write = None if isinstance(transport, TLSMemoryBIOProtocol) else \
        getattr(transport, "loseWriteConnection", None)
    if lose_write is not None:
        lose_write()
    else:
        transport.loseConnection()


def _close(transport: Any) -> None:
    # A registered, paused producer would keep Twisted from finishing the close.
    transport.unregisterProducer()
    transport.loseConnection()
