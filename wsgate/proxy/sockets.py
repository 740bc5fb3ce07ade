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
from twisted.protocols.tls import TLSMemoryBIOFactory


class _WriteThrough:
    """Mixin for ``tcp.Connection`` subclasses: send now if the queue is empty."""

    # Attributes of twisted.internet.abstract.FileDescriptor / tcp.Connection.
    TLS: bool
    connected: int
    _writeDisconnected: bool
    _tempDataLen: int
    dataBuffer: bytes
    offset: int
    socket: Any

    def write(self, data: bytes) -> None:
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
        if self._tempDataLen or self.offset != len(self.dataBuffer) or self.TLS:
            tcp.Connection.writeSequence(self, iovec)  # type: ignore[arg-type]
            return
        self.write(b"".join(iovec))


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
    return connect_tcp(reactor, host, port, TLSMemoryBIOFactory(context, True, factory),
                       timeout=timeout)
