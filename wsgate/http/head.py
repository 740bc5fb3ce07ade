"""Immutable request and response heads, as parsed.

Heads are NamedTuples: building one is a single tuple allocation, which matters on the
per-request path, and they cannot be mutated by accident. Header names keep the casing and order
the peer sent; lookups are case-insensitive linear scans, which beat a dict for the dozen or so
headers a real request carries.
"""

from __future__ import annotations

import enum
from typing import NamedTuple
from urllib.parse import unquote

Headers = tuple[tuple[str, str], ...]
"""Header fields in wire order, names with their original casing, values without OWS."""


class BodyKind(enum.IntEnum):
    """How the body of a message is delimited (RFC 9112 §6.3)."""

    NONE = 0
    LENGTH = 1
    CHUNKED = 2
    UNTIL_CLOSE = 3


def get_header(headers: Headers, name: str, default: str | None = None) -> str | None:
    """The first value of ``name`` (case-insensitive), or ``default``."""
    lname = name.lower()
    for n, v in headers:
        if n.lower() == lname:
            return v
    return default


def get_all_headers(headers: Headers, name: str) -> list[str]:
    """Every value of ``name`` in wire order."""
    lname = name.lower()
    return [v for n, v in headers if n.lower() == lname]


def header_tokens(headers: Headers, name: str) -> list[str]:
    """The lower-cased comma-separated tokens of every ``name`` field, empty ones skipped."""
    lname = name.lower()
    out: list[str] = []
    for n, v in headers:
        if n.lower() == lname:
            for part in v.split(","):
                part = part.strip(" \t").lower()
                if part:
                    out.append(part)
    return out


def has_token(headers: Headers, name: str, token: str) -> bool:
    """Whether a comma-list header (Connection, Upgrade, TE...) contains ``token``."""
    return token.lower() in header_tokens(headers, name)


class RequestHead(NamedTuple):
    """A client's request head.

    ``target`` is the request-target exactly as sent (decoded as latin-1, so
    ``target.encode("latin-1")`` gives back the wire bytes). ``version`` is ``"1.0"`` or
    ``"1.1"`` (a higher 1.x minor is treated as 1.1, RFC 9110 §2.5). ``host`` is the Host
    header, or the authority of an absolute-form target, which overrides it (RFC 9112 §3.2.2).
    ``connection`` holds the lower-cased Connection tokens; ``upgrade`` the raw Upgrade value.
    """

    method: str
    target: str
    version: str
    headers: Headers
    host: str
    content_length: int | None
    chunked: bool
    connection: tuple[str, ...]
    upgrade: str | None
    expects_continue: bool
    target_form: str
    """``"origin"``, ``"absolute"``, ``"authority"`` (CONNECT) or ``"asterisk"`` (OPTIONS *)."""

    # -- header access -------------------------------------------------------------------------
    def get(self, name: str, default: str | None = None) -> str | None:
        return get_header(self.headers, name, default)

    def get_all(self, name: str) -> list[str]:
        return get_all_headers(self.headers, name)

    def has_token(self, name: str, token: str) -> bool:
        return has_token(self.headers, name, token)

    # -- derived -------------------------------------------------------------------------------
    @property
    def raw_target(self) -> bytes:
        return self.target.encode("latin-1")

    @property
    def is_upgrade(self) -> bool:
        """Connection has the ``upgrade`` token and Upgrade is present (ignored in HTTP/1.0,
        RFC 9110 §7.8)."""
        return self.upgrade is not None and "upgrade" in self.connection and self.version != "1.0"

    @property
    def upgrade_protocol(self) -> str | None:
        """The first protocol offered in Upgrade (e.g. ``"websocket"``), as sent."""
        if not self.is_upgrade or self.upgrade is None:
            return None
        return self.upgrade.split(",", 1)[0].strip(" \t")

    @property
    def keep_alive(self) -> bool:
        """Whether the client lets the connection persist after this exchange."""
        if "close" in self.connection:
            return False
        if self.version == "1.0":
            return "keep-alive" in self.connection
        return True

    @property
    def body_kind(self) -> BodyKind:
        if self.chunked:
            return BodyKind.CHUNKED
        if self.content_length:
            return BodyKind.LENGTH
        return BodyKind.NONE

    @property
    def origin_form(self) -> str:
        """Path and query as an origin-form target (``/`` for an empty absolute-form path)."""
        if self.target_form == "absolute":
            rest = self.target.split("://", 1)[1]
            cut = len(rest)
            for sep in "/?":
                i = rest.find(sep)
                if i != -1 and i < cut:
                    cut = i
            tail = rest[cut:]
            if not tail.startswith("/"):
                tail = "/" + tail
            return tail
        return self.target

    @property
    def path(self) -> str:
        """The path, still percent-encoded (``%2F`` stays ``%2F``)."""
        if self.target_form == "origin":
            return self.target.partition("?")[0]
        if self.target_form == "absolute":
            return self.origin_form.partition("?")[0]
        if self.target_form == "asterisk":
            return "*"
        return ""

    @property
    def query(self) -> str:
        """The query without ``?``; empty when there is none."""
        if self.target_form == "origin":
            return self.target.partition("?")[2]
        if self.target_form == "absolute":
            return self.origin_form.partition("?")[2]
        return ""

    @property
    def decoded_path(self) -> str:
        """The path percent-decoded as UTF-8 (what Traefik's Path/PathPrefix rules match)."""
        return unquote(self.path, errors="replace")


class ResponseHead(NamedTuple):
    """A backend's response head. ``body_kind`` already accounts for the request method (HEAD),
    1xx, 204 and 304."""

    status: int
    reason: str
    version: str
    headers: Headers
    content_length: int | None
    chunked: bool
    connection: tuple[str, ...]
    upgrade: str | None
    body_kind: BodyKind

    def get(self, name: str, default: str | None = None) -> str | None:
        return get_header(self.headers, name, default)

    def get_all(self, name: str) -> list[str]:
        return get_all_headers(self.headers, name)

    def has_token(self, name: str, token: str) -> bool:
        return has_token(self.headers, name, token)

    @property
    def is_informational(self) -> bool:
        """A 1xx other than 101: relay it and keep reading for the final response."""
        return 100 <= self.status < 200 and self.status != 101

    @property
    def is_switching_protocols(self) -> bool:
        return self.status == 101

    @property
    def keep_alive(self) -> bool:
        if self.body_kind is BodyKind.UNTIL_CLOSE or "close" in self.connection:
            return False
        if self.version == "1.0":
            return "keep-alive" in self.connection
        return True
