"""TCP transports that write through to the socket when nothing is queued.

Twisted's ``write`` always queues: the bytes wait in the transport's buffer, the socket is
registered for writability (one ``epoll_ctl``), the next poll round reports it writable, the
bytes are sent and the socket unregistered (another ``epoll_ctl``). For a proxy that writes
each chunk it reads, that is two extra system calls and one extra loop round per chunk, on
every hop. These transports send at once when their buffer is empty; whatever the kernel does
not take (or any write while bytes are still queued) goes through Twisted's own buffered path,
so ordering, backpressure (producers paused above the buffer size) and error reporting are
Twisted's unchanged: a send error falls back to the queue, where the next write attempt meets
the same error and reports the connection lost as usual.

Used for entryPoint listeners and backend connections (TLS ones too: the TLS layer writes its
records to these transports). Reactors that are not Twisted's POSIX ones (test doubles) get
their own ``listenTCP``/``connectTCP``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from twisted.internet import tcp
from twisted.internet.abstract import FileDescriptor
from twisted.internet.interfaces import IConnector, IListeningPort
from twisted.internet.posixbase import PosixReactorBase

from wsgate.tls.transport import client_tls_factory


class _WriteThrough:
    """Mixin for ``tcp.Connection`` subclasses: send now if the queue is empty."""

    #: Read size and write-buffer threshold (Twisted's default is 64 KiB): fewer reads and
    #: pause/resume cycles for large messages, still a bound per slow reader.
    bufferSize = 256 * 1024

    # Attributes of twisted.internet.abstract.FileDescriptor / tcp.Connection.
    TLS: bool
    connected: int
    disconnecting: int
    _writeDisconnected: bool
    _writeDisconnecting: bool
    _tempDataLen: int
    dataBuffer: bytes
    offset: int
    socket: Any

    #: A SplicePump that may put bytes for this transport in its pipe (wsgate/proxy/splice.py).
    #: While set, what is written (and a close) waits for the pipe to drain: bytes queued in
    #: Twisted's buffer go first, then the pipe's, then these.
    _pipe: Any = None

    def has_queued(self) -> bool:
        """Bytes wait in Twisted's write buffer."""
        return bool(self._tempDataLen or self.offset != len(self.dataBuffer))

    def write(self, data: bytes) -> None:
        if self._pipe is not None and data:
            self._pipe.after(data)
            return
        if (self._tempDataLen or self.offset != len(self.dataBuffer) or self.TLS
                or not self.connected or self._writeDisconnected or not data
                or type(data) is not bytes):
            tcp.Connection.write(self, data)  # type: ignore[arg-type]
            return
        try:
            sent = self.socket.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            # The queued path sends again, meets the same error and reports the loss.
            FileDescriptor.write(self, data)  # type: ignore[arg-type]
            return
        if sent < len(data):
            FileDescriptor.write(self, data[sent:])  # type: ignore[arg-type]

    def writeSequence(self, iovec: Iterable[bytes]) -> None:
        if (self._tempDataLen or self.offset != len(self.dataBuffer) or self.TLS) \
                and self._pipe is None:
            tcp.Connection.writeSequence(self, iovec)  # type: ignore[arg-type]
            return
        self.write(b"".join(iovec))

    def loseConnection(self) -> None:
        if self._pipe is not None:
            self._pipe.after_close(half=False)
            return
        tcp.Connection.loseConnection(self)  # type: ignore[arg-type]

    def loseWriteConnection(self) -> None:
        if self._pipe is not None:
            self._pipe.after_close(half=True)
            return
        tcp.Connection.loseWriteConnection(self)  # type: ignore[arg-type]

    def connectionLost(self, reason: Any) -> None:
        pipe = self._pipe
        if pipe is not None:
            pipe.destination_lost()  # what waited in the pipe for this connection is moot
        super().connectionLost(reason)  # type: ignore[misc]

    def doWrite(self) -> Any:
        pipe = self._pipe
        if pipe is None:
            return tcp.Connection.doWrite(self)  # type: ignore[arg-type]
        if self._tempDataLen or self.offset != len(self.dataBuffer):
            # What was queued before the pipe goes first (Twisted stops writing once it is
            # out; no close can be pending, the pipe holds it back).
            result = tcp.Connection.doWrite(self)  # type: ignore[arg-type]
            if result is not None or self._tempDataLen or self.offset != len(self.dataBuffer):
                return result
        return pipe.writable()


def splice_capable(transport: Any) -> bool:
    """A plain TCP transport of this module (bytes on the socket are the stream's bytes)."""
    return isinstance(transport, _WriteThrough) and not transport.TLS


class WriteThroughServer(_WriteThrough, tcp.Server):
    """An accepted connection."""


class WriteThroughClient(_WriteThrough, tcp.Client):
    """An outgoing connection."""


class WriteThroughPort(tcp.Port):
    transport = WriteThroughServer


class WriteThroughConnector(tcp.Connector):
    def _makeTransport(self) -> WriteThroughClient:  # type: ignore[override]
        return WriteThroughClient(self.host, self.port, self.bindAddress, self, self.reactor)


def listen_tcp(reactor: Any, port: int, factory: Any, *, backlog: int = 50,
               interface: str = "") -> IListeningPort:
    """``reactor.listenTCP`` with write-through transports on POSIX reactors."""
    if not isinstance(reactor, PosixReactorBase):
        return reactor.listenTCP(port, factory, backlog=backlog,  # type: ignore[no-any-return]
                                 interface=interface)
    listening = WriteThroughPort(port, factory, backlog, interface, reactor)
    listening.startListening()
    return listening


def connect_tcp(reactor: Any, host: str, port: int, factory: Any, *,
                timeout: float = 30.0) -> IConnector:
    """``reactor.connectTCP`` with a write-through transport on POSIX reactors."""
    if not isinstance(reactor, PosixReactorBase):
        return reactor.connectTCP(host, port, factory,  # type: ignore[no-any-return]
                                  timeout=timeout)
    connector = WriteThroughConnector(host, port, factory, timeout, None, reactor)
    connector.connect()
    return connector


def connect_tls(reactor: Any, host: str, port: int, factory: Any, context: Any, *,
                timeout: float = 30.0) -> IConnector:
    """``reactor.connectSSL`` (TLS in memory over a write-through transport)."""
    if not isinstance(reactor, PosixReactorBase):
        return reactor.connectSSL(host, port, factory, context,  # type: ignore[no-any-return]
                                  timeout=timeout)
    return connect_tcp(reactor, host, port, client_tls_factory(context, factory),
                       timeout=timeout)
