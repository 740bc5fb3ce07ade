"""What every middleware shares: the request context, the decisions, the three hooks.

A middleware is a plain object built once per configuration from its section. The data path
calls, for every request or WebSocket handshake that a router matched:

- ``on_request(ctx)`` → a :data:`Decision`: :data:`PASS` (go on; the middleware may have
  rewritten ``ctx``), :class:`Answer` (the proxy answers now: 401, 403, 429, a redirect, a
  CORS preflight...), or :class:`Defer` (the decision needs I/O or time first: a forwardAuth
  call, a rate-limit delay, a bcrypt check, the request body; the caller does the
  :data:`Work` and calls ``resume`` with its result, which gives the next decision);
- ``on_response(ctx, status, headers)`` → the headers to send, for every response head that
  comes back through the middleware: the backend's (101 included), the proxy's own errors
  (502, 504) and answers of middlewares placed after it;
- ``on_close(ctx)`` once the exchange is over: response sent, or WebSocket closed.

:class:`~wsgate.middlewares.chain.Chain` runs a router's middlewares in order with the same
three calls, so the data path deals with one object per router.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Union

from wsgate.http.head import RequestHead, get_header
from wsgate.http.parser import build_request_head
from wsgate.http.serialize import serialize_response
from wsgate.middlewares.gocompat import status_text

__all__ = [
    "PASS",
    "Answer",
    "AuthFailure",
    "AuthRequest",
    "AuthResponse",
    "Blocking",
    "BodyTooLarge",
    "Clock",
    "Decision",
    "Defer",
    "HeaderList",
    "Middleware",
    "Pass",
    "ReadBody",
    "RequestContext",
    "Sleep",
    "Work",
    "text_answer",
]

#: Monotonic seconds; injected so that time-based middlewares are tested without sleeping.
Clock = Callable[[], float]

HeaderList = list[tuple[str, str]]


# =========================================================================== decisions

class Pass:
    """Go on with the next middleware (the request may have been rewritten in place)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "PASS"


PASS = Pass()


@dataclass(frozen=True, slots=True)
class Answer:
    """The proxy answers the request itself; the backend is never contacted.

    ``headers`` are the answer's own (no framing: :meth:`serialize` adds Content-Length).
    """

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def get(self, name: str) -> str | None:
        return get_header(self.headers, name)

    def serialize(self, *, head_request: bool = False, close: bool = False) -> bytes:
        """The complete response: head, and body unless the request was HEAD."""
        has_body = self.status >= 200 and self.status not in (204, 304)
        hdrs = [(n, v) for n, v in self.headers
                if n.lower() not in ("content-length", "transfer-encoding", "connection")]
        if has_body:
            hdrs.append(("Content-Length", str(len(self.body))))
        if close:
            hdrs.append(("Connection", "close"))
        reason = status_text(self.status) or "Status"
        head = serialize_response(self.status, reason, hdrs)
        if has_body and not head_request:
            return head + self.body
        return head


def text_answer(status: int, body: str | None = None,
                headers: Iterable[tuple[str, str]] = (), *, nosniff: bool = False) -> Answer:
    """A short plain-text answer as Go writes one: ``body`` defaults to the status text.

    ``nosniff`` adds ``X-Content-Type-Options: nosniff`` as ``http.Error`` does.
    """
    text = status_text(status) if body is None else body
    hdrs = [*headers, ("Content-Type", "text/plain; charset=utf-8")]
    if nosniff:
        hdrs.append(("X-Content-Type-Options", "nosniff"))
    return Answer(status, tuple(hdrs), text.encode("utf-8"))


# =========================================================================== deferred work

@dataclass(frozen=True, slots=True)
class Sleep:
    """Wait ``seconds``, then resume with None (a rate-limit delay)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Blocking:
    """Run ``call`` off the reactor thread (a bcrypt check), resume with what it returns."""

    call: Callable[[], object]
    what: str = ""


@dataclass(frozen=True, slots=True)
class ReadBody:
    """Read the whole request body, at most ``max_bytes`` (negative: no limit), and resume
    with the bytes or with :class:`BodyTooLarge`. The caller keeps the bytes in
    ``ctx.body`` and must send them to the backend instead of the stream."""

    max_bytes: int


@dataclass(frozen=True, slots=True)
class BodyTooLarge:
    """The request body went past the limit of a :class:`ReadBody`."""

    limit: int


@dataclass(frozen=True, slots=True)
class AuthRequest:
    """An HTTP request to a forwardAuth server; resume with :class:`AuthResponse` or
    :class:`AuthFailure`. Redirects are never followed."""

    method: str
    url: str
    headers: tuple[tuple[str, str], ...]
    body: bytes | None
    timeout: float
    #: Most response body bytes to read; negative: no limit.
    max_response_body: int
    #: The middleware's forwardAuth ``tls`` section (a ForwardAuthTLS) or None.
    tls: Any = None


@dataclass(frozen=True, slots=True)
class AuthResponse:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    #: The body went past ``max_response_body`` (``body`` is then empty).
    too_large: bool = False


@dataclass(frozen=True, slots=True)
class AuthFailure:
    """The auth server could not be reached or answered garbage."""

    reason: str
    #: The client went away before the answer (Traefik answers 499 then).
    cancelled: bool = False


Work = Union[Sleep, Blocking, ReadBody, AuthRequest]


@dataclass(frozen=True, slots=True)
class Defer:
    """Do ``work``, then call ``resume(result)`` for the next decision."""

    work: Work
    resume: Callable[[object], Decision]


Decision = Union[Pass, Answer, Defer]


# =========================================================================== context

class RequestContext:
    """One request as the middlewares see and rewrite it.

    ``target`` is the origin-form request-target in wire form (path and query, raw),
    ``headers`` a mutable list of (name, value) in wire order with their casing, ``host``
    the effective host (Go's ``req.Host``). ``client_ip`` is the peer address without port.
    ``notes`` holds per-request state of the middlewares, keyed by the middleware object.
    """

    __slots__ = (
        "body",
        "chunked",
        "client_ip",
        "closed",
        "content_length",
        "entered",
        "entry_point",
        "headers",
        "host",
        "is_upgrade",
        "method",
        "modified",
        "notes",
        "passed",
        "router",
        "start",
        "suppress_xff",
        "target",
        "tls",
        "user",
        "version",
    )

    def __init__(self, method: str, target: str, headers: Iterable[tuple[str, str]] = (), *,
                 host: str = "", client_ip: str = "", tls: bool = False,
                 version: str = "1.1", entry_point: str = "", router: str = "",
                 is_upgrade: bool = False, content_length: int | None = None,
                 chunked: bool = False, start: float = 0.0) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers: HeaderList = list(headers)
        self.host = host
        self.client_ip = client_ip
        self.tls = tls
        self.entry_point = entry_point
        self.router = router
        self.is_upgrade = is_upgrade
        self.content_length = content_length
        self.chunked = chunked
        self.start = start
        #: Per-request state of each middleware.
        self.notes: dict[object, Any] = {}
        #: The authenticated user (basicAuth, forwardAuth headerField), for the access log.
        self.user = ""
        #: customRequestHeaders set X-Forwarded-For to "": send no X-Forwarded-For at all.
        self.suppress_xff = False
        #: The request body, once a middleware had it read (forwardAuth forwardBody).
        self.body: bytes | None = None
        #: Whether method, target or headers were changed (the head must be rebuilt).
        self.modified = False
        # Chain bookkeeping: middlewares entered and passed, close done.
        self.entered = 0
        self.passed = 0
        self.closed = False

    @classmethod
    def from_head(cls, head: RequestHead, *, client_ip: str, tls: bool,
                  entry_point: str = "", router: str = "", start: float = 0.0
                  ) -> RequestContext:
        headers = list(head.headers)
        if head.target_form == "absolute" and head.host:
            # The authority of an absolute-form target is the host (RFC 9112 §3.2.2).
            _set(headers, "Host", head.host)
        return cls(head.method, head.origin_form, headers, host=head.host,
                   client_ip=client_ip, tls=tls, version=head.version,
                   entry_point=entry_point, router=router, is_upgrade=head.is_upgrade,
                   content_length=head.content_length, chunked=head.chunked, start=start)

    # -- target -------------------------------------------------------------------------------
    @property
    def path(self) -> str:
        """The raw (still percent-encoded) path, wire form."""
        return self.target.partition("?")[0]

    @property
    def query(self) -> str:
        return self.target.partition("?")[2]

    def set_target(self, target: str) -> None:
        if target != self.target:
            self.target = target
            self.modified = True

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)

    # -- headers ------------------------------------------------------------------------------
    def get(self, name: str) -> str | None:
        """The first value of ``name`` (Go's Header.Get, None when absent)."""
        lname = name.lower()
        for n, v in self.headers:
            if n.lower() == lname:
                return v
        return None

    def get_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [v for n, v in self.headers if n.lower() == lname]

    def has(self, name: str) -> bool:
        return self.get(name) is not None

    def set(self, name: str, value: str) -> None:
        """Go's Header.Set: one field named ``name``, where the first one was."""
        _set(self.headers, name, value)
        if name.lower() == "host":
            self.host = value
        self.modified = True

    def add(self, name: str, value: str) -> None:
        """Go's Header.Add: one more field, after the others."""
        self.headers.append((name, value))
        self.modified = True

    def delete(self, name: str) -> None:
        """Go's Header.Del: every field named ``name`` goes."""
        lname = name.lower()
        kept = [p for p in self.headers if p[0].lower() != lname]
        if len(kept) != len(self.headers):
            self.headers[:] = kept
            self.modified = True

    # -- result -------------------------------------------------------------------------------
    def to_head(self) -> RequestHead:
        """The rewritten head to forward (built again only when something changed)."""
        return build_request_head(self.method, self.target, self.version, tuple(self.headers))


def _set(headers: HeaderList, name: str, value: str) -> None:
    lname = name.lower()
    first = -1
    out: HeaderList = []
    for pair in headers:
        if pair[0].lower() == lname:
            if first < 0:
                first = len(out)
                out.append((name, value))
            continue
        out.append(pair)
    if first < 0:
        out.append((name, value))
    headers[:] = out


# =========================================================================== middleware

class Middleware:
    """A middleware built from its configuration section; subclasses override the hooks.

    ``name`` is the qualified name. ``warnings`` lists what the configuration does that is
    legal but probably unwanted (a user whose hash can never match): the caller logs them.
    """

    kind: ClassVar[str] = ""
    #: Whether on_response / on_close do anything (the chain skips the others).
    wants_response: ClassVar[bool] = False
    wants_close: ClassVar[bool] = False

    def __init__(self, name: str) -> None:
        self.name = name
        self.warnings: list[str] = []

    def on_request(self, ctx: RequestContext) -> Decision:
        return PASS

    def on_response(self, ctx: RequestContext, status: int, headers: HeaderList) -> HeaderList:
        return headers

    def on_close(self, ctx: RequestContext) -> None:
        return None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"
