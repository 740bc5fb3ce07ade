"""Checking a backend's 101 against the upgrade the client asked for."""

from __future__ import annotations

from wsgate.http.errors import HTTPParseError
from wsgate.http.head import RequestHead, ResponseHead


def _protocols(value: str) -> list[str]:
    return [t.strip(" \t").lower() for t in value.split(",") if t.strip(" \t")]


def check_switching_protocols(request: RequestHead, response: ResponseHead) -> None:
    """Raise ``HTTPParseError(502)`` unless ``response`` is an acceptable 101 for ``request``.

    The 101 must carry ``Connection: upgrade`` and an ``Upgrade`` naming, ignoring case, a
    protocol the client offered (RFC 9110 §7.8). For the usual single offer this is Go's
    ReverseProxy rule (equal values, case-insensitive); with several offers Go demands the whole
    list back, we accept the one the backend picked. A 101 to a request that asked for no
    upgrade is refused: the client never gets a switch it did not ask for.
    """
    if response.status != 101:
        raise HTTPParseError(502, f"expected 101 Switching Protocols, got {response.status}")
    if not request.is_upgrade or request.upgrade is None:
        raise HTTPParseError(502, "backend switched protocols without an upgrade request")
    if response.upgrade is None or "upgrade" not in response.connection:
        raise HTTPParseError(502, "backend's 101 lacks Connection: upgrade and Upgrade")
    offered = _protocols(request.upgrade)
    chosen = _protocols(response.upgrade)
    if not chosen or any(p not in offered for p in chosen):
        raise HTTPParseError(
            502,
            f"backend tried to switch protocol {response.upgrade!r} "
            f"when {request.upgrade!r} was requested",
        )
