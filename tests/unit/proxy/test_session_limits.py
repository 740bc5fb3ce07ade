"""Per-router WebSocket session counts (wsgate.maxConnections)."""

from __future__ import annotations

from wsgate.proxy.session_limits import RouterSessionCounts


def test_router_session_counts() -> None:
    counts = RouterSessionCounts()
    assert counts.acquire("r", 2) and counts.acquire("r", 2)
    assert not counts.acquire("r", 2)
    assert counts.acquire("other", 2) and counts.acquire("unlimited", 0)
    counts.release("r")
    assert counts.count("r") == 1 and counts.acquire("r", 2)
    for _ in range(3):
        counts.release("r")
    assert counts.count("r") == 0
