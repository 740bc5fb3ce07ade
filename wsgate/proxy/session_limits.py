"""Open WebSocket sessions per router (``wsgate.maxConnections``) and per server of a
loadBalancer service (``wsgate.maxConnectionsPerServer``).

A session counts from the moment its upgrade request is admitted (so that handshakes in flight
cannot overshoot the limit) until its relay is done, or until the upgrade fails. The counts
live in the gateway, not in the routing table, because sessions outlive reloads.
"""

from __future__ import annotations

__all__ = ["RouterSessionCounts", "ServerSessionCounts"]


class RouterSessionCounts:
    """Sessions per qualified router name. Reactor thread only."""

    def __init__(self) -> None:
        self._open: dict[str, int] = {}

    def acquire(self, router: str, limit: int) -> bool:
        """Count one more session for ``router`` unless it already has ``limit`` (0: none)."""
        count = self._open.get(router, 0)
        if 0 < limit <= count:
            return False
        self._open[router] = count + 1
        return True

    def release(self, router: str) -> None:
        count = self._open.get(router, 0) - 1
        if count > 0:
            self._open[router] = count
        else:
            self._open.pop(router, None)

    def count(self, router: str) -> int:
        return self._open.get(router, 0)


class ServerSessionCounts:
    """Sessions per (qualified service name, server URL), counted from the pick of an
    upgrade's server. The balancer consults them (``room``) to skip full servers; the limit
    is the service's, so that a reload that changes it applies to the sessions already open.
    Reactor thread only."""

    def __init__(self) -> None:
        self._open: dict[tuple[str, str], int] = {}

    def acquire(self, service: str, url: str) -> None:
        key = (service, url)
        self._open[key] = self._open.get(key, 0) + 1

    def release(self, service: str, url: str) -> None:
        key = (service, url)
        count = self._open.get(key, 0) - 1
        if count > 0:
            self._open[key] = count
        else:
            self._open.pop(key, None)

    def count(self, service: str, url: str) -> int:
        return self._open.get((service, url), 0)
