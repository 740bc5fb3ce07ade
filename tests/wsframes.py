"""A reference WebSocket frame encoder and parser for tests (independent of wsgate.websocket)."""

from __future__ import annotations

import struct
from typing import NamedTuple

KEY = b"\x37\xfa\x21\x3d"

TEXT, BINARY, CLOSE, PING, PONG, CONT = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0


def enc(opcode: int, payload: bytes = b"", *, masked: bool, fin: bool = True, rsv: int = 0,
        xor: bool = True, length: int | None = None) -> bytes:
    """One frame; masked with the fixed KEY when ``masked`` (client to server).

    ``rsv`` sets the three RSV bits (0b100 is RSV1). ``xor=False`` sets the mask bit and key
    but leaves the payload as is (a big per-byte XOR only slows tests that never read data
    payloads). ``length`` forces the 64-bit length field to that value (to test its top bit,
    or a frame longer than what follows)."""
    n = len(payload)
    out = bytearray([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mbit = 0x80 if masked else 0
    if length is not None:
        out.append(mbit | 127)
        out += length.to_bytes(8, "big")
    elif n <= 125:
        out.append(mbit | n)
    elif n <= 0xFFFF:
        out.append(mbit | 126)
        out += struct.pack(">H", n)
    else:
        out.append(mbit | 127)
        out += struct.pack(">Q", n)
    if masked:
        out += KEY
        if xor:
            payload = bytes(b ^ KEY[i % 4] for i, b in enumerate(payload))
    return bytes(out) + payload


def close_payload(code: int, reason: str = "") -> bytes:
    return struct.pack(">H", code) + reason.encode()


class Frame(NamedTuple):
    fin: bool
    opcode: int
    payload: bytes
    masked: bool

    @property
    def close_code(self) -> int:
        assert self.opcode == CLOSE and len(self.payload) >= 2
        return int(struct.unpack(">H", self.payload[:2])[0])


def parse(data: bytes, *, partial: bool = False) -> list[Frame]:
    """The frames of ``data`` (unmasked payloads); the bytes must end at a frame boundary
    unless ``partial``."""
    frames = []
    pos = 0
    n = len(data)
    while pos < n:
        if n - pos < 2:
            break
        b0, b1 = data[pos], data[pos + 1]
        ln = b1 & 0x7F
        hlen = 2
        if ln == 126:
            if n - pos < 4:
                break
            ln = struct.unpack(">H", data[pos + 2:pos + 4])[0]
            hlen = 4
        elif ln == 127:
            if n - pos < 10:
                break
            ln = struct.unpack(">Q", data[pos + 2:pos + 10])[0]
            hlen = 10
        masked = bool(b1 & 0x80)
        key = b""
        if masked:
            key = data[pos + hlen:pos + hlen + 4]
            hlen += 4
        end = pos + hlen + ln
        if end > n:
            break
        payload = data[pos + hlen:end]
        if masked:
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        frames.append(Frame(bool(b0 & 0x80), b0 & 0x0F, bytes(payload), masked))
        pos = end
    if not partial:
        assert pos == n, f"{n - pos} bytes after the last whole frame"
    return frames
