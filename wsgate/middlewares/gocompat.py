"""Small facts of Go's standard library that Traefik's answers depend on.

Traefik writes status texts from ``net/http`` (``http.StatusText``), canonicalises header names
(``textproto.CanonicalMIMEHeaderKey``) and prints durations with ``time.Duration.String``;
wsgate reproduces those so that answers and headers read the same.

Strings: request targets and header values in a :class:`~wsgate.http.RequestHead` are wire
bytes decoded as latin-1 ("wire form"), while configuration values are text. Go handles both
as UTF-8 bytes, so :func:`wire` converts configured text to wire form before it is put in a
head, and :func:`text` goes the other way where a regular expression must see UTF-8 text.
"""

from __future__ import annotations

__all__ = [
    "STATUS_TEXT",
    "canonical_header_key",
    "format_duration",
    "status_text",
    "text",
    "wire",
]

#: ``http.StatusText`` of Go's net/http; a code missing here has no text in Go either.
STATUS_TEXT: dict[int, str] = {
    100: "Continue", 101: "Switching Protocols", 102: "Processing", 103: "Early Hints",
    200: "OK", 201: "Created", 202: "Accepted", 203: "Non-Authoritative Information",
    204: "No Content", 205: "Reset Content", 206: "Partial Content", 207: "Multi-Status",
    208: "Already Reported", 226: "IM Used",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Found", 303: "See Other",
    304: "Not Modified", 305: "Use Proxy", 307: "Temporary Redirect",
    308: "Permanent Redirect",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 409: "Conflict",
    410: "Gone", 411: "Length Required", 412: "Precondition Failed",
    413: "Request Entity Too Large", 414: "Request URI Too Long",
    415: "Unsupported Media Type", 416: "Requested Range Not Satisfiable",
    417: "Expectation Failed", 418: "I'm a teapot", 421: "Misdirected Request",
    422: "Unprocessable Entity", 423: "Locked", 424: "Failed Dependency", 425: "Too Early",
    426: "Upgrade Required", 428: "Precondition Required", 429: "Too Many Requests",
    431: "Request Header Fields Too Large", 451: "Unavailable For Legal Reasons",
    500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout", 505: "HTTP Version Not Supported",
    506: "Variant Also Negotiates", 507: "Insufficient Storage", 508: "Loop Detected",
    510: "Not Extended", 511: "Network Authentication Required",
}


def status_text(status: int) -> str:
    """Go's ``http.StatusText``: the text of a known code, else ""."""
    return STATUS_TEXT.get(status, "")


_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789"
                   "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def canonical_header_key(name: str) -> str:
    """Go's ``CanonicalMIMEHeaderKey``: ``x-auth-user`` → ``X-Auth-User``; a name with a
    character that is not a token character is returned unchanged."""
    out = []
    upper = True
    for c in name:
        if c not in _TOKEN:
            return name
        if upper and "a" <= c <= "z":
            c = c.upper()
        elif not upper and "A" <= c <= "Z":
            c = c.lower()
        out.append(c)
        upper = c == "-"
    return "".join(out)


def _fraction(value: int, precision: int) -> tuple[int, str]:
    """Split ``value`` (in units of 10**-precision) into its integer part and ``.ddd``
    without trailing zeros ("" when the fraction is zero), as Go's fmtFrac does."""
    if precision == 0:
        return value, ""
    scale = 10**precision
    whole, frac = divmod(value, scale)
    digits = f"{frac:0{precision}d}".rstrip("0")
    return whole, ("." + digits) if digits else ""


def format_duration(seconds: float) -> str:
    """Go's ``time.Duration.String`` of ``seconds``: ``1.5s``, ``250ms``, ``2m0.5s``."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    u = abs(ns)
    if u < 1_000_000_000:
        if u < 1_000:
            unit, precision = "ns", 0
        elif u < 1_000_000:
            unit, precision = "µs", 3
        else:
            unit, precision = "ms", 6
        whole, frac = _fraction(u, precision)
        return f"{sign}{whole}{frac}{unit}"
    whole_seconds, frac = _fraction(u, 9)
    out = f"{whole_seconds % 60}{frac}s"
    minutes = whole_seconds // 60
    if minutes:
        out = f"{minutes % 60}m{out}"
        hours = minutes // 60
        if hours:
            out = f"{hours}h{out}"
    return sign + out


def wire(value: str) -> str:
    """Configured text as it goes on the wire: its UTF-8 bytes, in latin-1 wire form."""
    if value.isascii():
        return value
    return value.encode("utf-8", "surrogateescape").decode("latin-1")


def text(value: str) -> str:
    """Wire form back to text (UTF-8, undecodable bytes kept as surrogates)."""
    if value.isascii():
        return value
    return value.encode("latin-1", "replace").decode("utf-8", "surrogateescape")
