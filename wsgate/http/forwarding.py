"""Rewriting a request head for the backend: forwarded headers, hop-by-hop headers, Host.

Follows Traefik's forwardedHeaders middleware and its Go ReverseProxy rewrite (reference §6.1–2),
with one deliberate difference: names keep the client's casing and order (Go canonicalises and
sorts them); headers the proxy adds go after the client's own.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from wsgate.http.head import RequestHead

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MANAGED_X_HEADERS = frozenset(
    (
        "x-forwarded-proto",
        "x-forwarded-scheme",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-server",
        "x-forwarded-uri",
        "x-forwarded-method",
        "x-forwarded-prefix",
        "x-forwarded-tls-client-cert",
        "x-forwarded-tls-client-cert-info",
        "x-scheme",
        "x-real-ip",
    )
)
"""Headers an untrusted client may not set (Traefik's XHeadersSet), lower-cased."""

HOP_BY_HOP = frozenset(
    (
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    )
)

# The headers the rewrite sets, in the order they are appended when the client sent none.
_XFF = "x-forwarded-for"
_XFH = "x-forwarded-host"
_XFPORT = "x-forwarded-port"
_XFP = "x-forwarded-proto"
_XFSERVER = "x-forwarded-server"
_XREALIP = "x-real-ip"
_XFSCHEME = "x-forwarded-scheme"
_XSCHEME = "x-scheme"
_SET = frozenset((_XFF, _XFH, _XFPORT, _XFP, _XFSERVER, _XREALIP, _XFSCHEME, _XSCHEME, "host"))
_NEVER_NAMED = MANAGED_X_HEADERS | HOP_BY_HOP | {"host", "content-length"}
_INTERESTING = HOP_BY_HOP | _SET | MANAGED_X_HEADERS
_CANONICAL = {
    _XFF: "X-Forwarded-For",
    _XFH: "X-Forwarded-Host",
    _XFPORT: "X-Forwarded-Port",
    _XFP: "X-Forwarded-Proto",
    _XFSERVER: "X-Forwarded-Server",
    _XREALIP: "X-Real-Ip",
    _XFSCHEME: "X-Forwarded-Scheme",
    _XSCHEME: "X-Scheme",
    "host": "Host",
}


def is_managed_x_header(name: str) -> bool:
    """Whether ``name`` is a managed X- header, ``_`` counting as ``-`` (X_Forwarded_For)."""
    lname = name.lower()
    if not lname.startswith("x"):
        return False
    return lname in MANAGED_X_HEADERS or lname.replace("_", "-") in MANAGED_X_HEADERS


# -- trust ------------------------------------------------------------------------------------


def parse_trusted_ips(entries: Iterable[str]) -> tuple[IPNetwork, ...]:
    """forwardedHeaders.trustedIPs: plain IPs or CIDRs. Raises ValueError on a bad entry."""
    return tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries)


def _parse_ip(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    ip = ip.strip()
    if ip.startswith("[") and ip.endswith("]"):
        ip = ip[1:-1]
    ip = ip.partition("%")[0]
    try:
        return ipaddress.ip_address(ip)
    except ValueError:
        return None


def is_trusted(ip: str, networks: Sequence[IPNetwork]) -> bool:
    """Whether the peer ``ip`` is in ``networks``; an IPv4-mapped IPv6 peer matches IPv4
    networks (as Go's IPNet.Contains does). An unparsable address is not trusted."""
    if not networks:
        return False
    addr = _parse_ip(ip)
    if addr is None:
        return False
    mapped = addr.ipv4_mapped if isinstance(addr, ipaddress.IPv6Address) else None
    for net in networks:
        if addr in net or (mapped is not None and mapped in net):
            return True
    return False


# -- rewrite ----------------------------------------------------------------------------------


def _host_port(host: str) -> str:
    """The port of a Host value, or "" (Go's net.SplitHostPort semantics, loosely)."""
    if host.startswith("["):
        close = host.find("]")
        if close != -1 and host[close + 1 : close + 2] == ":":
            return host[close + 2 :]
        return ""
    if host.count(":") == 1:
        return host.rpartition(":")[2]
    return ""


def rewrite_request_head(
    head: RequestHead,
    *,
    client_ip: str,
    tls: bool,
    trusted: bool,
    server_name: str,
    backend_hostport: str | None,
    pass_host_header: bool = True,
    not_append_xff: bool = False,
    add_scheme_headers: bool = False,
) -> list[tuple[str, str]]:
    """Headers to send to the backend for ``head``.

    ``trusted`` is ``forwardedHeaders.insecure`` or the peer being in ``trustedIPs``
    (see :func:`is_trusted`); untrusted clients lose every managed X- header, underscore
    variants included. ``client_ip`` is the peer address without port. ``backend_hostport`` is
    the server URL's host[:port] as written, used for Host when ``pass_host_header`` is false
    (and when an HTTP/1.0 client sent no Host). Body framing headers are kept: Content-Length as
    sent, ``Transfer-Encoding: chunked`` when the body is chunked.
    """
    upgrade = head.is_upgrade
    # Tokens of Connection name headers to drop (RFC 9110 §7.6.1), but never the managed X-
    # headers (Traefik keeps them) nor the message's own framing or Host. Usually empty.
    named = [t for t in head.connection if t not in _NEVER_NAMED] if head.connection else None
    te_trailers = False
    upgrade_done = False
    out: list[tuple[str, str] | None] = []
    found: dict[str, list[int]] = {}
    append = out.append
    interesting = _INTERESTING
    for pair in head.headers:
        lname = pair[0].lower()
        if lname not in interesting and lname[0] != "x":
            if named is None or lname not in named:
                append(pair)
            continue
        if lname in HOP_BY_HOP:
            if lname == "connection":
                if upgrade and not upgrade_done:
                    append((pair[0], "Upgrade"))
                    upgrade_done = True
            elif lname == "upgrade":
                if upgrade and "upgrade" not in found:
                    found["upgrade"] = [len(out)]
                    append(pair)
            elif lname == "transfer-encoding":
                if head.chunked and "transfer-encoding" not in found:
                    found["transfer-encoding"] = [len(out)]
                    append((pair[0], "chunked"))
            elif lname == "te" and not te_trailers:
                te_trailers = any(t.strip(" \t").lower() == "trailers" for t in pair[1].split(","))
            continue
        if lname in _SET:
            if not trusted and lname in MANAGED_X_HEADERS:
                continue
            idx = found.get(lname)
            if idx is None:
                found[lname] = [len(out)]
            else:
                idx.append(len(out))
        elif lname in MANAGED_X_HEADERS:
            if not trusted:
                continue
        elif "_" in lname and lname.replace("_", "-") in MANAGED_X_HEADERS:
            # An underscore variant (X_Forwarded_For): dropped unless trusted, then untouched.
            if not trusted:
                continue
        elif named is not None and lname in named:
            continue
        append(pair)

    # forwardedHeaders middleware.
    if not _first_value(out, found, _XREALIP):
        _put(out, found, _XREALIP, client_ip.partition("%")[0])
    xfp = _first_value(out, found, _XFP)
    if not xfp:
        if upgrade and _is_websocket(head):
            xfp = "wss" if tls else "ws"
        else:
            xfp = "https" if tls else "http"
        _put(out, found, _XFP, xfp)
    if not _first_value(out, found, _XFPORT):
        port = _host_port(head.host)
        if not port:
            port = "443" if tls or xfp == "https" or xfp == "wss" else "80"
        _put(out, found, _XFPORT, port)
    if add_scheme_headers:
        _put(out, found, _XFSCHEME, xfp)
        _put(out, found, _XSCHEME, xfp)
    if head.host and not _first_value(out, found, _XFH):
        _put(out, found, _XFH, head.host)
    if server_name:
        _put(out, found, _XFSERVER, server_name)
    # ReverseProxy rewrite: fold prior X-Forwarded-For values and append the client.
    xff_idx = found.get(_XFF)
    prior = [p[1] for i in xff_idx if (p := out[i]) is not None] if xff_idx else []
    if not not_append_xff:
        prior.append(client_ip)
        _put(out, found, _XFF, ", ".join(prior))
    elif len(prior) > 1:
        _put(out, found, _XFF, ", ".join(prior))

    # Host: the client's, the absolute-form authority, or the backend's.
    if not pass_host_header and backend_hostport is not None:
        _set_host(out, found, backend_hostport)
    elif head.target_form == "absolute" or "host" not in found:
        host = head.host or backend_hostport
        if host:
            _set_host(out, found, host)

    if te_trailers:
        out.append(("TE", "trailers"))
    if upgrade and not upgrade_done:
        out.append(("Connection", "Upgrade"))
    if None in out:
        return [p for p in out if p is not None]
    return out  # type: ignore[return-value]


def _first_value(out: list[tuple[str, str] | None], found: dict[str, list[int]], lname: str) -> str:
    """Go's Header.Get: the first value, "" when absent."""
    idx = found.get(lname)
    if not idx:
        return ""
    pair = out[idx[0]]
    return pair[1] if pair is not None else ""


def _put(
    out: list[tuple[str, str] | None], found: dict[str, list[int]], lname: str, value: str
) -> None:
    """Go's Header.Set: one field, at the first existing position, else appended."""
    idx = found.get(lname)
    if not idx:
        found[lname] = [len(out)]
        out.append((_CANONICAL[lname], value))
        return
    first = out[idx[0]]
    assert first is not None
    out[idx[0]] = (first[0], value)
    for i in idx[1:]:
        out[i] = None
    del idx[1:]


def _is_websocket(head: RequestHead) -> bool:
    """Upgrade lists the ``websocket`` token (Traefik's isWebsocketRequest)."""
    up = head.upgrade
    if up is None:
        return False
    up = up.lower()
    return up == "websocket" or any(t.strip(" \t") == "websocket" for t in up.split(","))


def _set_host(out: list[tuple[str, str] | None], found: dict[str, list[int]], host: str) -> None:
    idx = found.get("host")
    if idx:
        first = out[idx[0]]
        assert first is not None
        out[idx[0]] = (first[0], host)
    else:
        out.insert(0, ("Host", host))


def forward_target(head: RequestHead, *, query_semicolons: str = "keep") -> str:
    """The request-target to send upstream: byte for byte (``%2F``/``%3A`` survive), as
    origin-form for an absolute-form request.

    ``query_semicolons``: ``"keep"`` (wsgate's default), ``"ampersand"`` (Traefik's default:
    ``;`` in the query becomes ``&``) or ``"encode"`` (Traefik's encodeQuerySemicolons: ``%3B``).
    """
    target = head.origin_form if head.target_form == "absolute" else head.target
    if query_semicolons != "keep" and ";" in target:
        path, sep, query = target.partition("?")
        if sep:
            repl = "&" if query_semicolons == "ampersand" else "%3B"
            target = f"{path}?{query.replace(';', repl)}"
    return target


def rewrite_response_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """A backend's non-101 response headers for the client: hop-by-hop ones and those named in
    its Connection dropped (the proxy adds its own framing and Connection)."""
    pairs = list(headers)
    named: set[str] = set()
    for n, v in pairs:
        if n.lower() == "connection":
            named.update(t.strip(" \t").lower() for t in v.split(","))
    return [(n, v) for n, v in pairs if (ln := n.lower()) not in HOP_BY_HOP and ln not in named]
