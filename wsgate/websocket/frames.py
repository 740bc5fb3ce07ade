"""WebSocket frame constants, close codes, and the few frames the proxy writes itself."""

from __future__ import annotations

import enum
import os
import struct

from wsgate.websocket.errors import FrameError


class Opcode(enum.IntEnum):
    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class CloseCode(enum.IntEnum):
    """RFC 6455 §7.4.1 and the IANA registry."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS_RECEIVED = 1005  # never on the wire
    ABNORMAL_CLOSURE = 1006  # never on the wire
    INVALID_PAYLOAD = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015  # never on the wire


MAX_CONTROL_PAYLOAD = 125
MAX_CLOSE_REASON = 123


def is_valid_close_code(code: int) -> bool:
    """Whether ``code`` may appear in a close frame (RFC 6455 §7.4; 1012–1014 registered
    since). 1004–1006 and 1015 are reserved, 1016–2999 unassigned, below 1000 unused."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def mask_payload(payload: bytes, key: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte ``key`` (its own inverse). Meant for control-frame
    sized payloads: one big-int XOR, no per-byte Python loop."""
    n = len(payload)
    if not n:
        return b""
    reps = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(reps, "big")).to_bytes(n, "big")


def build_frame(opcode: int, payload: bytes = b"", *, mask: bool, fin: bool = True) -> bytes:
    """One frame. Client-to-server frames MUST be masked with a fresh random key (RFC 6455
    §5.3), server-to-client ones MUST NOT be."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    mbit = 0x80 if mask else 0
    if n < 126:
        head = bytes((b0, mbit | n))
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + mask_payload(payload, key)


def close_payload(code: int | None = CloseCode.NORMAL_CLOSURE, reason: str = "") -> bytes:
    if code is None:
        if reason:
            raise ValueError("a close reason needs a close code")
        return b""
    if not is_valid_close_code(code):
        raise ValueError(f"close code {code} may not be sent")
    raw = reason.encode("utf-8")
    if len(raw) > MAX_CLOSE_REASON:
        raise ValueError(f"close reason is {len(raw)} bytes, at most {MAX_CLOSE_REASON}")
    return struct.pack("!H", code) + raw


def build_close_frame(
    code: int | None = CloseCode.NORMAL_CLOSURE, reason: str = "", *, mask: bool
) -> bytes:
    """A close frame; ``code=None`` sends an empty payload (peer sees 1005)."""
    return build_frame(Opcode.CLOSE, close_payload(code, reason), mask=mask)


def build_ping_frame(payload: bytes = b"", *, mask: bool) -> bytes:
    if len(payload) > MAX_CONTROL_PAYLOAD:
        raise ValueError("ping payload over 125 bytes")
    return build_frame(Opcode.PING, payload, mask=mask)


def build_pong_frame(payload: bytes = b"", *, mask: bool) -> bytes:
    if len(payload) > MAX_CONTROL_PAYLOAD:
        raise ValueError("pong payload over 125 bytes")
    return build_frame(Opcode.PONG, payload, mask=mask)


def parse_close_payload(payload: bytes) -> tuple[int | None, str]:
    """(code, reason) of an unmasked close payload; ``None`` code when it is empty.

    Raises FrameError: 1002 for a 1-byte payload or a code that may not be sent, 1007 for a
    reason that is not UTF-8.
    """
    if not payload:
        return None, ""
    if len(payload) == 1:
        raise FrameError(CloseCode.PROTOCOL_ERROR, "close frame with a 1-byte payload")
    code = (payload[0] << 8) | payload[1]
    if not is_valid_close_code(code):
        raise FrameError(CloseCode.PROTOCOL_ERROR, f"invalid close code {code}")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError(CloseCode.INVALID_PAYLOAD, "close reason is not valid UTF-8") from None
    return code, reason
