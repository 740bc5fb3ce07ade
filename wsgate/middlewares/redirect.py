"""What redirectScheme and redirectRegex share: the redirect answer and the URL check.

The status follows Traefik: 302 (or 301 when ``permanent``) for GET, 307 (or 308) for any
other method; the body is the status text.

A WebSocket client cannot follow a redirect: the handshake (a GET with ``Upgrade``) gets the
302/301 and the client reports a failed connection (browsers: "Unexpected response code:
302"). Redirect plain HTTP to https and give WebSocket clients the wss:// URL directly.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from wsgate.middlewares.base import Answer, text_answer
from wsgate.middlewares.paths import escaped_path

__all__ = ["parse_go_url", "redirect_answer"]

_HEX = frozenset("0123456789abcdefABCDEF")


def redirect_answer(method: str, location: str, permanent: bool,
                    status: int | None = None) -> Answer:
    if status is None:
        if permanent:
            status = 301 if method == "GET" else 308
        else:
            status = 302 if method == "GET" else 307
    return text_answer(status, headers=(("Location", location),))


def _bad_escape(part: str) -> bool:
    i = part.find("%")
    while i >= 0:
        chunk = part[i + 1 : i + 3]
        if len(chunk) < 2 or chunk[0] not in _HEX or chunk[1] not in _HEX:
            return True
        i = part.find("%", i + 3)
    return False


def parse_go_url(url: str) -> str | None:
    """``url`` as Go's ``url.Parse`` + ``String()`` would give it back, or None where Go's
    parser fails (control characters, a malformed escape, a port that is not a number).

    Only the path is re-escaped; the rest is kept as written.
    """
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        return None
    if _bad_escape(parts.path) or _bad_escape(parts.netloc):
        return None
    path = escaped_path(parts.path)
    if path == parts.path:
        return url
    out = f"{parts.scheme}:" if parts.scheme else ""
    if parts.netloc or url[len(out):].startswith("//"):
        out += "//" + parts.netloc
    out += path
    if parts.query or "?" in url:
        out += "?" + parts.query
    if parts.fragment:
        out += "#" + parts.fragment
    return out
