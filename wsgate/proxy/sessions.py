"""Open WebSocket relays per (service, server URL), so that policy can close them.

The data path registers a relay when the backend's 101 is relayed and forgets it when the
relay is done; health checks (``wsgate.closeOnUnhealthy``) close the relays of a server that
goes down. The registry lives in the gateway, not in a service's objects, because sessions
outlive reloads: a session opened before a reload is still on that server afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

__all__ = ["ClosableRelay", "OpenRelays"]


class ClosableRelay(Protocol):
    """What the registry and the shutdown drain need of a relay (``WebSocketRelay`` is one)."""

    @property
    def client_gone(self) -> bool: ...

    def close(self, code: int, reason: str = "") -> None: ...

    def abort(self) -> None: ...


class OpenRelays:
    """Relays open now, by (qualified service name, server URL). Reactor thread only."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, str], set[ClosableRelay]] = {}

    def add(self, service: str, url: str, relay: ClosableRelay) -> None:
        """A session to ``url`` of ``service`` is open (call when the 101 is relayed)."""
        self._open.setdefault((service, url), set()).add(relay)

    def discard(self, service: str, url: str, relay: ClosableRelay) -> None:
        """The session ended (call from the relay's on_done); unknown relays are ignored."""
        key = (service, url)
        relays = self._open.get(key)
        if relays is not None:
            relays.discard(relay)
            if not relays:
                del self._open[key]

    def count(self, service: str, url: str) -> int:
        relays = self._open.get((service, url))
        return len(relays) if relays else 0

    def close_server(self, service: str, url: str, code: int, reason: str) -> int:
        """Close every session to ``url`` of ``service`` with ``code``; how many there were.

        The relays stay registered until their own end calls :meth:`discard`.
        """
        relays = tuple(self._open.get((service, url), ()))
        for relay in relays:
            relay.close(code, reason)
        return len(relays)

    def __iter__(self) -> Iterator[ClosableRelay]:
        """Every open relay (a snapshot: closing one while iterating is safe)."""
        return iter([relay for relays in self._open.values() for relay in relays])
