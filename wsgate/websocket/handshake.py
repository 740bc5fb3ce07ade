"""Opening-handshake helpers (RFC 6455 §4, RFC 7692).

The proxy relays the handshake: the backend decides whether to accept it. These helpers only
recognise a WebSocket upgrade, describe what looks wrong with one (for metrics and logs, never to
reject), compute Sec-WebSocket-Accept, and read the negotiated extensions so the frame tracker
knows whether RSV1 is legitimate.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import NamedTuple

from wsgate.http.head import RequestHead, ResponseHead

WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_key(key: str) -> str:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key."""
    digest = hashlib.sha1((key.strip(" \t") + WEBSOCKET_GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def is_websocket_upgrade(head: RequestHead) -> bool:
    """An HTTP/1.1 upgrade whose Upgrade lists ``websocket`` (what Traefik counts as one)."""
    if not head.is_upgrade or head.upgrade is None:
        return False
    up = head.upgrade.lower()
    return up == "websocket" or any(t.strip(" \t") == "websocket" for t in up.split(","))


class HandshakeCheck(NamedTuple):
    """What a client's handshake gets wrong; ``problems`` is empty for a valid one."""

    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def check_client_handshake(head: RequestHead) -> HandshakeCheck:
    """RFC 6455 §4.2.1 checks, for metrics and logging only: never reject on them, the backend
    may accept what the RFC would not."""
    problems: list[str] = []
    if head.method != "GET":
        problems.append(f"method {head.method} instead of GET")
    if not is_websocket_upgrade(head):
        problems.append("not an Upgrade: websocket request")
    keys = head.get_all("Sec-WebSocket-Key")
    if len(keys) != 1:
        problems.append("Sec-WebSocket-Key missing" if not keys else "several Sec-WebSocket-Key")
    else:
        try:
            raw = base64.b64decode(keys[0].strip(" \t"), validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 16:
            problems.append("Sec-WebSocket-Key is not 16 bytes in base64")
    versions = head.get_all("Sec-WebSocket-Version")
    if [v.strip(" \t") for v in versions] != ["13"]:
        problems.append(f"Sec-WebSocket-Version {', '.join(versions) or 'missing'} instead of 13")
    return HandshakeCheck(tuple(problems))


Extension = tuple[str, dict[str, str | None]]


def parse_extensions(values: list[str] | str | None) -> list[Extension]:
    """Sec-WebSocket-Extensions into ``[(name, {param: value or None})]`` in order.

    Lenient on purpose (it informs, it does not validate): names and parameter names are
    lower-cased, quoted values unquoted, empty items skipped.
    """
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    out: list[Extension] = []
    for value in values:
        for item in _split_outside_quotes(value, ","):
            parts = _split_outside_quotes(item, ";")
            name = parts[0].strip(" \t").lower()
            if not name:
                continue
            params: dict[str, str | None] = {}
            for p in parts[1:]:
                k, eq, v = p.partition("=")
                k = k.strip(" \t").lower()
                if not k:
                    continue
                if eq:
                    v = v.strip(" \t")
                    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
                        v = v[1:-1]
                    params[k] = v
                else:
                    params[k] = None
            out.append((name, params))
    return out


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    if '"' not in text:
        return text.split(sep)
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def negotiated_extensions(response: ResponseHead) -> list[Extension]:
    """The extensions a backend's 101 accepted."""
    return parse_extensions(response.get_all("Sec-WebSocket-Extensions"))


def permessage_deflate_negotiated(response: ResponseHead) -> bool:
    """Whether the 101 turned permessage-deflate on, making RSV1 legal on first frames."""
    return any(name == "permessage-deflate" for name, _ in negotiated_extensions(response))


def negotiated_subprotocol(response: ResponseHead) -> str | None:
    value = response.get("Sec-WebSocket-Protocol")
    return value.strip(" \t") if value else None
