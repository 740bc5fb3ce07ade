"""mirroring: which mirrors get a copy of a request, what the copy says, and how much the
copies in flight may hold (sans-I/O).

As in Traefik, the main service answers the client; once its exchange is over (for a
WebSocket, once the session has ended) each chosen mirror gets a copy and its answer is
thrown away. A mirror never delays or fails the main request. The choice follows Traefik's
counters exactly: the n-th request goes to a mirror of ``percent`` when the mirror's copies
so far times 100 are below n times percent (30% gives requests 1, 4, 7, 11, ...).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from wsgate.http.forwarding import forward_target, rewrite_request_head
from wsgate.http.head import BodyKind, RequestHead
from wsgate.http.serialize import serialize_request

__all__ = ["CopyBudget", "CopySource", "MirrorSelector", "copy_head"]

#: Copies in flight (sent, their answer not read yet) per mirroring service, and the body
#: bytes they may hold together; past either, new copies are dropped (and logged).
MAX_COPIES = 1024
MAX_COPY_BYTES = 64 * 1024 * 1024


class MirrorSelector:
    """Traefik's percent counters: deterministic, so 50% is every other request."""

    __slots__ = ("_counts", "_percents", "_total")

    def __init__(self, percents: Sequence[int]) -> None:
        self._percents = tuple(percents)
        self._counts = [0] * len(self._percents)
        self._total = 0

    def next(self) -> tuple[int, ...]:
        """The indices of the mirrors that get a copy of the next request."""
        self._total += 1
        total = self._total
        chosen = []
        counts = self._counts
        for i, percent in enumerate(self._percents):
            if counts[i] * 100 < total * percent:
                counts[i] += 1
                chosen.append(i)
        return tuple(chosen)


class CopyBudget:
    """What one mirroring service's copies in flight may hold, so that slow mirrors cannot
    make memory grow without bound."""

    __slots__ = ("bytes", "copies", "dropped", "max_bytes", "max_copies")

    def __init__(self, max_copies: int = MAX_COPIES, max_bytes: int = MAX_COPY_BYTES) -> None:
        self.max_copies = max_copies
        self.max_bytes = max_bytes
        self.copies = 0
        self.bytes = 0
        #: Copies refused so far (for the log).
        self.dropped = 0

    def take(self, size: int) -> bool:
        """Reserve room for one copy holding ``size`` body bytes; False: drop the copy."""
        if self.copies >= self.max_copies or self.bytes + size > self.max_bytes:
            self.dropped += 1
            return False
        self.copies += 1
        self.bytes += size
        return True

    def give(self, size: int) -> None:
        """A copy reserved with ``take(size)`` is done."""
        self.copies -= 1
        self.bytes -= size


@dataclass(frozen=True, slots=True)
class CopySource:
    """The request as the main server got it, before the per-server rewriting: what a copy
    is made from."""

    head: RequestHead
    client_ip: str
    tls: bool
    #: The client's X-Forwarded-* are kept (trusted, or already filtered by middlewares).
    trusted: bool
    server_name: str
    not_append_xff: bool
    suppress_xff: bool
    cookies: Mapping[str, str] | None


def copy_head(source: CopySource, *, authority: str, path_prefix: str,
              pass_host_header: bool, with_body: bool) -> bytes:
    """The head of a copy for one mirror server, rewritten as the data path rewrites a
    request for its server. Without the body (``mirrorBody: false``) the framing headers go
    and ``Content-Length: 0`` says so (Traefik sends the original length, then no body: the
    mirror sees the request cut short)."""
    head = source.head
    headers = rewrite_request_head(
        head, client_ip=source.client_ip, tls=source.tls, trusted=source.trusted,
        server_name=source.server_name, backend_hostport=authority,
        pass_host_header=pass_host_header, not_append_xff=source.not_append_xff)
    if source.suppress_xff:
        headers = [(n, v) for n, v in headers if n.lower() != "x-forwarded-for"]
    if not with_body and head.body_kind is not BodyKind.NONE:
        headers = [(n, v) for n, v in headers
                   if n.lower() not in ("content-length", "transfer-encoding")]
        headers.append(("Content-Length", "0"))
    target = forward_target(head)
    if path_prefix:
        target = path_prefix + target
    return serialize_request(head.method, target, headers)
