"""Go's URL path handling as the path middlewares need it, on wire-form strings.

Traefik's path middlewares work on Go's ``url.URL``: ``Path`` (decoded), ``RawPath`` (the
encoded form when it differs) and ``RequestURI()``. wsgate keeps only the raw target, so these
helpers give the same results from it: the decoded path, the escaped path Go would send
(``EscapedPath``), and the ``JoinPath`` clean-up check that makes Traefik answer 400 when a
rewrite leaves ``//`` or dot segments in the path.
"""

from __future__ import annotations

from urllib.parse import unquote_to_bytes

from wsgate.http.target import sanitize_path

__all__ = [
    "decode_path",
    "encoded_prefix_len",
    "ensure_leading_slash",
    "escape_path",
    "escaped_path",
    "join_target",
    "needs_cleaning",
    "unescape_path",
    "valid_encoded_path",
]

_HEX = frozenset("0123456789abcdefABCDEF")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
# Bytes Go leaves alone in a path it escapes (shouldEscape(c, encodePath) is false).
_PATH_SAFE = _UNRESERVED | frozenset("$&+,/:;=@")
# Bytes Go accepts unescaped in a RawPath (validEncoded(s, encodePath)).
_PATH_VALID = _PATH_SAFE | frozenset("!'()*[]%")


def ensure_leading_slash(path: str) -> str:
    return path if not path or path[0] == "/" else "/" + path


def encoded_prefix_len(raw_path: str, decoded_len: int) -> int:
    """How many characters of ``raw_path`` encode the first ``decoded_len`` decoded bytes
    (a ``%XX`` counts as one), as Traefik's stripPrefix computes it."""
    decoded = 0
    i = 0
    n = len(raw_path)
    while i < n and decoded < decoded_len:
        if raw_path[i] == "%" and i + 2 < n:
            i += 3
        else:
            i += 1
        decoded += 1
    return i


def decode_path(raw_path: str) -> str:
    """The decoded path (Go's ``URL.Path``), wire form; a malformed escape stays as it is."""
    if "%" not in raw_path:
        return raw_path
    return unquote_to_bytes(raw_path.encode("latin-1", "replace")).decode("latin-1")


def unescape_path(raw_path: str) -> str:
    """Go's ``url.PathUnescape``: raises ValueError on a malformed escape, with Go's text."""
    if "%" not in raw_path:
        return raw_path
    i = raw_path.find("%")
    while i >= 0:
        chunk = raw_path[i + 1 : i + 3]
        if len(chunk) < 2 or chunk[0] not in _HEX or chunk[1] not in _HEX:
            bad = raw_path[i : i + 3]
            raise ValueError(f'invalid URL escape "{bad}"')
        i = raw_path.find("%", i + 3)
    return decode_path(raw_path)


def valid_encoded_path(raw_path: str) -> bool:
    """Whether Go would keep ``raw_path`` as the encoded form of its path."""
    return all(c in _PATH_VALID for c in raw_path)


def escape_path(decoded: str) -> str:
    """Go's ``url.PathEscape``-like escaping of a decoded (wire-form) path, '/' kept."""
    if all(c in _PATH_SAFE for c in decoded):
        return decoded
    out = []
    for c in decoded:
        if c in _PATH_SAFE:
            out.append(c)
        else:
            out.append(f"%{ord(c) & 0xFF:02X}")
    return "".join(out)


def escaped_path(raw_path: str) -> str:
    """Go's ``URL.EscapedPath()`` for a URL parsed from ``raw_path``."""
    if valid_encoded_path(raw_path):
        try:
            unescape_path(raw_path)
            return raw_path
        except ValueError:
            pass
    return escape_path(decode_path(raw_path))


def join_target(raw_path: str, sep: str, query: str) -> str:
    """Go's ``URL.RequestURI()``: the escaped path ("/" when empty) and the query as sent."""
    path = escaped_path(raw_path) or "/"
    return f"{path}?{query}" if sep else path


def needs_cleaning(raw_path: str) -> bool:
    """Whether ``URL.JoinPath()`` would change the path (``//``, ``.`` or ``..`` segments):
    Traefik then refuses the rewritten request with 400."""
    return bool(raw_path) and sanitize_path(raw_path) != raw_path
