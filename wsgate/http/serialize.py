"""Heads to bytes, in one join, and the proxy's own short error responses."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

REASONS = {
    100: "Continue",
    101: "Switching Protocols",
    200: "OK",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    304: "Not Modified",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    417: "Expectation Failed",
    426: "Upgrade Required",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    499: "Client Closed Request",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    505: "HTTP Version Not Supported",
}

# Statuses after which the request's framing cannot be trusted: the connection must close.
_CLOSE_BY_DEFAULT = frozenset((400, 408, 413, 417, 431, 501, 505))


def _encode(text: str, lines: int) -> bytes:
    # One C-level count guards against a LF smuggled into a name or value. Values from parsed
    # heads are already free of CR and LF; configured values are checked when loaded.
    if text.count("\n") != lines:
        raise ValueError("LF inside a header name or value")
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise ValueError(f"header text not encodable as latin-1: {exc}") from None


def serialize_request(
    method: str, target: str, headers: Sequence[tuple[str, str]], version: str = "1.1"
) -> bytes:
    """A request head, ending with the empty line."""
    if headers:
        text = f"{method} {target} HTTP/{version}\r\n" + "\r\n".join(map(": ".join, headers))
        return _encode(text + "\r\n\r\n", len(headers) + 2)
    return _encode(f"{method} {target} HTTP/{version}\r\n\r\n", 2)


def serialize_response(
    status: int, reason: str, headers: Sequence[tuple[str, str]], version: str = "1.1"
) -> bytes:
    """A response head, ending with the empty line."""
    if headers:
        text = f"HTTP/{version} {status} {reason}\r\n" + "\r\n".join(map(": ".join, headers))
        return _encode(text + "\r\n\r\n", len(headers) + 2)
    return _encode(f"HTTP/{version} {status} {reason}\r\n\r\n", 2)


def default_error_body(status: int) -> str:
    """Bodies as Traefik/Go write them: ``404 page not found``, else the status text."""
    if status == 404:
        return "404 page not found\n"
    reason = REASONS.get(status, "Error")
    if status in _CLOSE_BY_DEFAULT:
        return f"{status} {reason}"
    return reason


def error_response(
    status: int,
    body: str | None = None,
    *,
    close: bool | None = None,
    headers: Iterable[tuple[str, str]] = (),
) -> bytes:
    """A complete short text response from the proxy itself.

    ``close`` defaults to True for statuses that leave the request's framing unknown (400,
    408, 413, 417, 431, 501, 505); the caller passes it explicitly when it knows better (e.g.
    a 502 after the client's body was not fully read).
    """
    text = default_error_body(status) if body is None else body
    payload = text.encode("utf-8")
    if close is None:
        close = status in _CLOSE_BY_DEFAULT
    hdrs = [
        ("Content-Type", "text/plain; charset=utf-8"),
        ("X-Content-Type-Options", "nosniff"),
        ("Content-Length", str(len(payload))),
        *headers,
    ]
    if close:
        hdrs.append(("Connection", "close"))
    return serialize_response(status, REASONS.get(status, "Error"), hdrs) + payload
