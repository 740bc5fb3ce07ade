"""Password hashes of htpasswd files, checked as Traefik checks them.

- ``$2y$``, ``$2a$``, ``$2b$``, ``$2x$``: bcrypt (needs the ``bcrypt`` package; slow by
  design, so callers run it off the reactor thread: see :func:`is_slow`);
- ``{SHA}``: base64 of the SHA-1 of the password;
- ``$apr1$`` (Apache) and ``$1$``: MD5-crypt, implemented here (Poul-Henning Kamp's
  algorithm, 1000 rounds);
- anything else (plain text, DES crypt) never matches, as in Traefik.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

__all__ = ["BCRYPT_PREFIXES", "bcrypt_available", "check", "is_slow", "md5_crypt", "scheme"]

BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2x$", "$2y$")

_ITOA64 = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def scheme(hashed: str) -> str:
    """``bcrypt``, ``sha1``, ``md5-crypt`` or ``unknown``."""
    if hashed.startswith(BCRYPT_PREFIXES):
        return "bcrypt"
    if hashed.startswith("{SHA}"):
        return "sha1"
    if hashed.startswith("$") and hashed.count("$") >= 3:
        return "md5-crypt"
    return "unknown"


def is_slow(hashed: str) -> bool:
    return scheme(hashed) == "bcrypt"


def bcrypt_available() -> bool:
    try:
        import bcrypt  # noqa: F401
    except ImportError:
        return False
    return True


def _to64(value: int, length: int) -> bytes:
    out = bytearray()
    for _ in range(length):
        out.append(_ITOA64[value & 0x3F])
        value >>= 6
    return bytes(out)


def md5_crypt(password: bytes, salt: bytes, magic: bytes = b"$apr1$") -> bytes:
    """The MD5-crypt hash of ``password``: ``magic`` + salt + ``$`` + 22 characters."""
    salt = salt.split(b"$", 1)[0][:8]
    ctx = hashlib.md5(password + magic + salt)
    alternate = hashlib.md5(password + salt + password).digest()
    remaining = len(password)
    while remaining > 0:
        ctx.update(alternate[: min(16, remaining)])
        remaining -= 16
    i = len(password)
    while i:
        ctx.update(b"\x00" if i & 1 else password[:1])
        i >>= 1
    final = ctx.digest()
    for r in range(1000):
        step = hashlib.md5()
        step.update(password if r & 1 else final)
        if r % 3:
            step.update(salt)
        if r % 7:
            step.update(password)
        step.update(final if r & 1 else password)
        final = step.digest()
    encoded = b"".join(
        _to64((final[a] << 16) | (final[b] << 8) | final[c], 4)
        for a, b, c in ((0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)))
    encoded += _to64(final[11], 2)
    return magic + salt + b"$" + encoded


def _check_md5_crypt(password: bytes, hashed: bytes) -> bool:
    parts = hashed.split(b"$", 3)
    if len(parts) != 4:
        return False
    magic = b"$" + parts[1] + b"$"
    return hmac.compare_digest(hashed, md5_crypt(password, parts[2], magic))


def _check_sha1(password: bytes, hashed: bytes) -> bool:
    expected = b"{SHA}" + base64.b64encode(hashlib.sha1(password).digest())
    return hmac.compare_digest(hashed, expected)


def _check_bcrypt(password: bytes, hashed: bytes) -> bool:
    import bcrypt

    if hashed[:4] in (b"$2x$", b"$2y$"):
        hashed = b"$2b$" + hashed[4:]
    try:
        # Go's bcrypt only ever reads the first 72 bytes of a password.
        return bool(bcrypt.checkpw(password[:72], hashed))
    except ValueError:
        return False


def check(password: bytes | str, hashed: str) -> bool:
    """Whether ``password`` matches ``hashed`` (constant time for a given scheme)."""
    pw = password if isinstance(password, bytes) else password.encode("utf-8", "surrogateescape")
    hb = hashed.encode("utf-8", "surrogateescape")
    kind = scheme(hashed)
    if kind == "bcrypt":
        return _check_bcrypt(pw, hb)
    if kind == "sha1":
        return _check_sha1(pw, hb)
    # Traefik's default comparison is MD5-crypt: anything else simply never matches.
    return _check_md5_crypt(pw, hb)
