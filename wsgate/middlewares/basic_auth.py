"""basicAuth: HTTP Basic authentication against htpasswd users.

Users come from ``usersFile`` (one ``name:hash`` per line; blank lines and ``#`` comments
skipped, lines trimmed) and then ``users`` (so an inline user overrides the file's). A wrong
or missing ``Authorization`` gets 401 with ``WWW-Authenticate: Basic realm="<realm>"`` (realm
default ``traefik``); a correct one goes on, with the user name in ``headerField`` if set and
``Authorization`` removed if ``removeHeader``.

bcrypt checks take tens of milliseconds on purpose: they are handed to the caller as
:class:`~wsgate.middlewares.base.Blocking` work to run off the reactor thread, and a correct
name/password pair is remembered (as a keyed hash, in a bounded cache) so that a client
reconnecting its WebSocket does not pay for it again. For an unknown user a hash is still
computed (with the first user's hash) so that timing does not tell which names exist.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections import OrderedDict
from collections.abc import Callable

from wsgate.config.dynamic import BasicAuth
from wsgate.middlewares import htpasswd
from wsgate.middlewares.base import (
    PASS,
    Answer,
    Blocking,
    Decision,
    Defer,
    Middleware,
    RequestContext,
)
from wsgate.middlewares.errors import MiddlewareError
from wsgate.middlewares.gocompat import wire

__all__ = ["BasicAuthMiddleware", "parse_basic_credentials", "read_users_file"]

DEFAULT_REALM = "traefik"
#: Verified name/password pairs remembered per middleware.
CACHE_SIZE = 1024


def parse_basic_credentials(value: str | None) -> tuple[str, bytes] | None:
    """Go's ``Request.BasicAuth``: (user, password) of an ``Authorization: Basic`` value."""
    if value is None or len(value) < 6 or value[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(value[6:].replace("\r", "").replace("\n", ""),
                                   validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = decoded.partition(b":")
    if not sep:
        return None
    return user.decode("utf-8", "surrogateescape"), password


def read_users_file(path: str) -> list[str]:
    """The user lines of an htpasswd file: trimmed, without blanks and ``#`` comments."""
    with open(path, "rb") as f:
        data = f.read().decode("utf-8", "surrogateescape")
    lines = (line.strip() for line in data.split("\n"))
    return [line for line in lines if line and not line.startswith("#")]


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


class BasicAuthMiddleware(Middleware):
    kind = "basicAuth"

    def __init__(self, name: str, config: BasicAuth, *,
                 read_file: Callable[[str], list[str]] = read_users_file) -> None:
        super().__init__(name)
        entries: list[tuple[str, str]] = []
        if config.users_file:
            try:
                lines = read_file(config.users_file)
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise MiddlewareError(name, "basicAuth.usersFile",
                                      f"cannot read {config.users_file}: {reason}") from None
            entries += [(f"basicAuth.usersFile ({config.users_file}, user line {i + 1})", line)
                        for i, line in enumerate(lines)]
        entries += [(f"basicAuth.users[{i}]", line) for i, line in enumerate(config.users)]
        users: dict[str, str] = {}
        for field, line in entries:
            parts = line.split(":")
            if len(parts) != 2:
                shown = parts[0] if len(parts) > 2 else "(no ':')"
                raise MiddlewareError(name, field, f"error parsing user {shown!r}: a user "
                                                   "is written name:hash (htpasswd)")
            user, hashed = parts
            kind = htpasswd.scheme(hashed)
            if kind == "bcrypt" and not htpasswd.bcrypt_available():
                raise MiddlewareError(name, field, f"user {user!r} has a bcrypt hash, which "
                                                   "needs the Python package bcrypt")
            if kind == "unknown":
                self.warnings.append(
                    f"{field}: the password of user {user!r} is not an htpasswd hash "
                    "(bcrypt, {SHA} or $apr1$): it never matches, as in Traefik")
            users[user] = hashed
        if not users:
            where = config.users_file or "users"
            raise MiddlewareError(name, "basicAuth.users", f"no users found in {where}")
        self.users = users
        self.not_found_secret = next(iter(users.values()))
        self.realm = config.realm or DEFAULT_REALM
        self.remove_header = config.remove_header
        self.header_field = config.header_field
        self._unauthorized = Answer(401, (
            ("WWW-Authenticate", f'Basic realm="{wire(_quote(self.realm))}"'),
            ("Content-Type", "text/plain"),
        ), b"401 Unauthorized\n")
        self._key = os.urandom(32)
        self._verified: OrderedDict[bytes, None] = OrderedDict()

    def on_request(self, ctx: RequestContext) -> Decision:
        credentials = parse_basic_credentials(ctx.get("Authorization"))
        if credentials is None:
            return self._unauthorized
        user, password = credentials
        secret = self.users.get(user)
        if secret is None:
            return self._check(ctx, user, password, self.not_found_secret, known=False)
        digest = hmac.new(self._key, b"\0".join((user.encode("utf-8", "surrogateescape"),
                                                 password, secret.encode())),
                          hashlib.sha256).digest()
        if digest in self._verified:
            self._verified.move_to_end(digest)
            return self._accept(ctx, user)
        return self._check(ctx, user, password, secret, known=True, digest=digest)

    def _check(self, ctx: RequestContext, user: str, password: bytes, secret: str, *,
               known: bool, digest: bytes = b"") -> Decision:
        if htpasswd.is_slow(secret):
            return Defer(Blocking(lambda: htpasswd.check(password, secret), "bcrypt"),
                         lambda ok: self._result(ctx, user, bool(ok) and known, digest))
        return self._result(ctx, user, htpasswd.check(password, secret) and known, digest)

    def _result(self, ctx: RequestContext, user: str, ok: bool, digest: bytes) -> Decision:
        if not ok:
            return self._unauthorized
        self._verified[digest] = None
        if len(self._verified) > CACHE_SIZE:
            self._verified.popitem(last=False)
        return self._accept(ctx, user)

    def _accept(self, ctx: RequestContext, user: str) -> Decision:
        ctx.user = user
        if self.header_field:
            ctx.delete(self.header_field)
            ctx.add(self.header_field, wire(user))
        if self.remove_header:
            ctx.delete("Authorization")
        return PASS
