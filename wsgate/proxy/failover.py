"""failover's ``errors``: which answers of the main service go to the fallback instead, and
which request bodies are too large to be sent twice (sans-I/O).

Without ``errors`` a failover is a choice between two services by availability
(:class:`wsgate.proxy.balancer.FailoverBalancer`). With ``errors.status``, an answer of the
main service whose status is listed (its own, or the proxy's 502/504 when it could not be
reached) is dropped before anything of it reaches the client, and the request goes to the
fallback, its body sent again. As in Traefik, a body over ``maxRequestBodyBytes`` is refused
with 413 (Traefik reads the body whole before choosing; wsgate forwards it while keeping a
copy, so a chunked body that turns out too large is refused when it goes over the limit,
the main server having seen part of it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wsgate.middlewares.status_ranges import StatusRanges

if TYPE_CHECKING:
    from wsgate.proxy.routing import ProxyService

__all__ = ["TOO_LARGE_BODY", "FailoverStep", "parse_failover_status"]

#: The body of the 413 (Traefik's words).
TOO_LARGE_BODY = "Request body too large\n"


def parse_failover_status(blocks: Iterable[str]) -> StatusRanges:
    """``errors.status`` as ranges (``"500"``, ``"500-504"``, comma-separated lists);
    ValueError naming the bad block (configuration validation already rejects them)."""
    ranges: list[tuple[int, int]] = []
    for i, block in enumerate(blocks):
        for part in block.split(","):
            codes = [code.strip() for code in part.split("-")]
            if len(codes) > 2 or not all(c.isascii() and c.isdigit() for c in codes):
                raise ValueError(f"errors.status[{i}]: invalid status code range {part!r}")
            low = int(codes[0])
            high = int(codes[1]) if len(codes) > 1 else low
            ranges.append((low, high))
    return StatusRanges(ranges)


@dataclass(frozen=True, slots=True)
class FailoverStep:
    """One failover with ``errors`` that a request went through on its main side."""

    #: The failover service (qualified), for logs.
    service: str
    #: Its fallback service, where a caught answer sends the request.
    fallback: ProxyService
    status: StatusRanges
    #: errors.maxRequestBodyBytes (-1: no limit).
    max_body: int

    def catches(self, status: int) -> bool:
        """Whether an answer of ``status`` from the main side goes to the fallback (never a
        101, which is the start of a WebSocket)."""
        return status != 101 and self.status.contains(status)

    def refuses(self, body_bytes: int) -> bool:
        """Whether a body of ``body_bytes`` payload bytes is over maxRequestBodyBytes."""
        return 0 <= self.max_body < body_bytes
