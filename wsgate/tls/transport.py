"""The TLS layer over wsgate's connections: Twisted's in-memory TLS, tuned for relaying.

Two changes to ``twisted.protocols.tls``, both about how many times Python runs per read:

- **Receive: one delivery per read.** Twisted hands the wrapped protocol each TLS record's
  plaintext as soon as it is decrypted, so a read holding sixteen small records (a client with
  sixteen WebSocket messages in flight) becomes sixteen ``dataReceived`` calls, and a relay
  writes sixteen times to the other side. Here the plaintext of everything one read decrypted
  is joined and delivered once.
- **Send: no write aggregation.** Twisted's default ``BufferingTLSTransport`` holds small
  writes until the next reactor round with a ``callLater(0)`` per burst; the timer churn cost
  more than the records it saved (it was about a seventh of the proxy's time under wss load),
  and it adds a loop round of latency. A relay writes once per read anyway.
"""

from __future__ import annotations

from typing import Any

from OpenSSL.SSL import Error, WantReadError, ZeroReturnError
from twisted.protocols.policies import ProtocolWrapper
from twisted.protocols.tls import TLSMemoryBIOFactory, TLSMemoryBIOProtocol
from twisted.python.failure import Failure

#: Plaintext asked of OpenSSL per call: one TLS record holds at most 16 KiB.
RECORD_PLAINTEXT = 16384


class CoalescingTLSProtocol(TLSMemoryBIOProtocol):
    """TLSMemoryBIOProtocol that delivers all plaintext of one read in one call."""

    def _flushReceiveBIO(self) -> None:
        received: list[bytes] = []
        connection = self._tlsConnection
        failure: Failure | None = None
        closed = False
        while not self._lostTLSConnection:
            try:
                received.append(connection.recv(RECORD_PLAINTEXT))
            except WantReadError:
                break  # everything the last read brought is decrypted
            except ZeroReturnError:
                closed = True  # the peer's close_notify: its data first, then the end
                break
            except Error:
                failure = Failure()
                break
        if received and not self._aborted:
            data = received[0] if len(received) == 1 else b"".join(received)
            ProtocolWrapper.dataReceived(self, data)
        if closed and not self._lostTLSConnection:
            self._shutdownTLS()
            self._tlsShutdownFinished(None)
        elif failure is not None and not self._lostTLSConnection:
            self._tlsShutdownFinished(failure)
        self._flushSendBIO()


class CoalescingTLSFactory(TLSMemoryBIOFactory):
    """TLSMemoryBIOFactory building :class:`CoalescingTLSProtocol` connections."""

    protocol = CoalescingTLSProtocol


def client_tls_factory(context: Any, wrapped_factory: Any) -> CoalescingTLSFactory:
    """TLS towards a backend (``context``: an IOpenSSLClientConnectionCreator)."""
    return CoalescingTLSFactory(context, True, wrapped_factory)
