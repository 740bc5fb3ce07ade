"""A bounded copy of a request body taken as it streams to the backend (sans-I/O).

failover's ``errors`` (send the request again to the fallback) and mirroring (send copies to
the mirrors) both need the body once more after it went to the first server. wsgate does not
hold a body back before forwarding it: it forwards each piece at once and keeps a copy of
the bytes as sent (a chunked body keeps its chunked coding, so the copy goes out with the
same head). The copy stops, and is dropped, at its limit.
"""

from __future__ import annotations

__all__ = ["UNBOUNDED_CAP", "BodyCopy", "effective_limit"]

#: What a limit of -1 ("no limit": failover's maxRequestBodyBytes, mirroring's maxBodySize)
#: holds at most: Traefik would keep any size in memory; wsgate bounds it.
UNBOUNDED_CAP = 16 * 1024 * 1024

#: Chunk framing may add to the payload; past this much more the copy is dropped all the
#: same (a body of one-byte chunks with long extensions must not grow memory unbounded).
_FRAMING_SLACK = 64 * 1024


def effective_limit(limit: int) -> int:
    """The payload bytes a copy may hold for a configured limit (-1 or less: no limit)."""
    return UNBOUNDED_CAP if limit < 0 else limit


class BodyCopy:
    """Pieces of one body as forwarded, while its payload stays within ``limit`` bytes.

    ``add`` takes each forwarded piece with the payload byte count so far (chunk data only,
    for a chunked body). Past the limit the pieces are let go and ``dropped`` stays set.
    """

    __slots__ = ("chunks", "dropped", "limit", "payload", "raw")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: list[bytes] = []
        self.raw = 0
        self.payload = 0
        self.dropped = False

    def add(self, data: bytes, payload_total: int) -> bool:
        """Keep ``data``; False once the copy is (or just got) dropped."""
        if self.dropped:
            return False
        self.payload = payload_total
        self.raw += len(data)
        if payload_total > self.limit or self.raw > 2 * self.limit + _FRAMING_SLACK:
            self.drop()
            return False
        self.chunks.append(data)
        return True

    def drop(self) -> None:
        self.dropped = True
        self.chunks = []
        self.raw = 0
