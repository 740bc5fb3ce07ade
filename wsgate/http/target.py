"""Request-target clean-ups Traefik applies at the entryPoint, as opt-in pure functions.

Traefik (v3) runs every request through ``normalizePath`` (percent-encoded unreserved characters
decoded, other escapes upper-cased, RFC 3986 §6.2.2.1–2) and, unless
``http.sanitizePath: false``, ``sanitizePath`` (dot segments and duplicate slashes removed from
the escaped path, RFC 3986 §6.2.2.3) before routing and forwarding. Encoded separators such as
``%2F`` are never decoded. wsgate forwards byte for byte by default; these functions let the
entryPoint glue match Traefik exactly when it wants to.
"""

from __future__ import annotations

import re

from wsgate.http.errors import HTTPParseError

_ESCAPE = re.compile("%(..)", re.DOTALL)
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _normalize_escape(m: re.Match[str]) -> str:
    hexpair = m.group(1).upper()
    try:
        ch = chr(int(hexpair, 16))
    except ValueError:
        raise HTTPParseError(400, f"invalid percent-encoding %{m.group(1)}") from None
    return ch if ch in _UNRESERVED else "%" + hexpair


def normalize_path(path: str) -> str:
    """Decode escaped unreserved characters (``%41`` → ``A``, ``%7E`` → ``~``) and upper-case
    the hex digits of the other escapes (``%2f`` → ``%2F``). Raises HTTPParseError(400) for a
    truncated escape."""
    if "%" not in path:
        return path
    if re.search("%(?![0-9A-Fa-f]{2})", path):
        raise HTTPParseError(400, "invalid percent-encoding in the request path")
    return _ESCAPE.sub(_normalize_escape, path)


def sanitize_path(path: str) -> str:
    """Remove ``.`` and ``..`` segments and empty segments (``//``) from an escaped path,
    keeping a trailing slash, as Go's ``URL.JoinPath()`` does for Traefik's sanitizePath.
    Escaped dots and slashes (``%2E``, ``%2F``) are data, not syntax."""
    if "//" not in path and "/." not in path:
        return path
    out: list[str] = []
    for seg in path.split("/"):
        if not seg or seg == ".":
            continue
        if seg == "..":
            if out:
                out.pop()
            continue
        out.append(seg)
    cleaned = "/" + "/".join(out)
    if path.endswith("/") and not cleaned.endswith("/"):
        cleaned += "/"
    return cleaned


def clean_target(
    target: str,
    *,
    normalize: bool = True,
    sanitize: bool = True,
    query_semicolons: str = "ampersand",
) -> str:
    """An origin-form target as Traefik would route and forward it (its defaults): path
    normalised and sanitised, ``;`` in the query turned into ``&`` (``"encode"`` gives
    ``%3B`` as with ``encodeQuerySemicolons``; ``"keep"`` leaves it)."""
    path, sep, query = target.partition("?")
    if normalize:
        path = normalize_path(path)
    if sanitize:
        path = sanitize_path(path)
    if sep and query_semicolons != "keep" and ";" in query:
        query = query.replace(";", "&" if query_semicolons == "ampersand" else "%3B")
    return path + sep + query
