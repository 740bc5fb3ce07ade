"""Micro benchmark: FrameTracker cost per relayed chunk. Not a test.

Run: python bench/micro_frame_tracker.py

Streams are pre-built and cut into 64 KiB chunks (Twisted's read size); only feeding is timed.
"""

from __future__ import annotations

import os
import struct
import time

from wsgate.websocket.tracker import FrameTracker

CHUNK = 65536


def frame(payload: bytes, *, opcode: int = 2, masked: bool) -> bytes:
    n = len(payload)
    b0 = 0x80 | opcode
    mbit = 0x80 if masked else 0
    if n < 126:
        head = bytes((b0, mbit | n))
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    # The tracker never reads payloads: a fixed key and unmasked bytes time the same.
    return head + (b"\x01\x02\x03\x04" if masked else b"") + payload


def chunks(stream: bytes, size: int = CHUNK) -> list[bytes]:
    return [stream[i : i + size] for i in range(0, len(stream), size)]


def run(label: str, parts: list[bytes], total_bytes: int, frames: int, **kw: object) -> None:
    best = float("inf")
    for _ in range(5):
        t = FrameTracker(**kw)  # type: ignore[arg-type]
        start = time.perf_counter()
        for c in parts:
            t.feed(c)
        best = min(best, time.perf_counter() - start)
        assert t.frames == frames and t.at_frame_boundary, (t.frames, frames)
    print(
        f"{label:48s} {total_bytes / best / 1e6:10,.0f} MB/s  {frames / best:12,.0f} frames/s"
        f"  {best / len(parts) * 1e6:7.2f} us/chunk"
    )


def main() -> None:
    big = os.urandom(1 << 20)
    nbig = 64
    stream = b"".join(frame(big, masked=True) for _ in range(nbig))
    run("1 MiB masked frames, 64 KiB chunks", chunks(stream), len(stream), nbig, masked=True)
    stream = b"".join(frame(big, masked=False) for _ in range(nbig))
    run("1 MiB unmasked frames, 64 KiB chunks", chunks(stream), len(stream), nbig, masked=False)

    small = os.urandom(64)
    nsmall = 200_000
    stream = b"".join(frame(small, masked=True) for _ in range(nsmall))
    parts = chunks(stream)
    run("64 B masked frames, 64 KiB chunks", parts, len(stream), nsmall, masked=True)
    run(
        "64 B masked frames, no message events",
        parts,
        len(stream),
        nsmall,
        masked=True,
        message_events=False,
    )
    stream = b"".join(frame(small, masked=False) for _ in range(nsmall))
    run("64 B unmasked frames, 64 KiB chunks", chunks(stream), len(stream), nsmall, masked=False)
    run("64 B unmasked frames, 1000 B chunks", chunks(stream, 1000), len(stream), nsmall)

    # Fragmented messages (4 fragments each) with a ping in between: the general path.
    frag = []
    for _ in range(20_000):
        frag.append(bytes((0x02, 0x80 | 64)) + b"\0" * 4 + small)
        frag.append(bytes((0x89, 0x80 | 4)) + b"\0" * 4 + b"ping")
        frag.append(bytes((0x00, 0x80 | 64)) + b"\0" * 4 + small)
        frag.append(bytes((0x00, 0x80 | 64)) + b"\0" * 4 + small)
        frag.append(bytes((0x80, 0x80 | 64)) + b"\0" * 4 + small)
    stream = b"".join(frag)
    run(
        "fragmented 64 B frames + pings (general path)",
        chunks(stream),
        len(stream),
        100_000,
        masked=True,
    )


if __name__ == "__main__":
    main()
