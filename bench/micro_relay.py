"""Micro benchmark: WebSocketRelay cost per relayed chunk, per session policy. Not a test.

Run: python bench/micro_relay.py [--baseline PATH] [--rounds N]

The transports are null (``write`` does nothing), so only the relay's own work is timed: the
mode dispatch, the frame tracker, the pong cutter while a ping is outstanding. Two shapes of
client → backend traffic: one 64 B frame per chunk (the per-call cost) and 64 KiB chunks
(Twisted's read size) of 64 B frames (the per-frame cost). Variants are interleaved and the
minimum CPU time (``time.process_time``) over the rounds is kept, which stays stable on a busy
machine. ``--baseline`` times another relay module the same way (for instance an older
``wsgate/proxy/relay.py`` saved to a file: ``git show REV:wsgate/proxy/relay.py > old.py``).
"""

from __future__ import annotations

import argparse
import importlib.util
import struct
import time
from typing import Any, Callable

from twisted.internet.task import Clock

from wsgate.config.dynamic import RouterExtension
from wsgate.config.schema import Duration
from wsgate.proxy import relay as current

CHUNK = 65536
CALLS = 50_000
FRAMES = 20_000


class NullTransport:
    def write(self, data: bytes) -> None:
        pass

    def writeSequence(self, seq: list[bytes]) -> None:
        pass

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        pass

    def unregisterProducer(self) -> None:
        pass

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def loseConnection(self) -> None:
        pass

    def abortConnection(self) -> None:
        pass


def frame(payload: bytes, *, masked: bool, opcode: int = 2) -> bytes:
    n = len(payload)
    mbit = 0x80 if masked else 0
    if n < 126:
        head = bytes((0x80 | opcode, mbit | n))
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, mbit | 127, n)
    return head + (b"\x01\x02\x03\x04" if masked else b"") + payload


def variants(baseline: Any | None) -> dict[str, Callable[[], Any]]:
    timers = RouterExtension(idle_timeout=Duration(300.0), ping_interval=Duration(30.0),
                             max_lifetime=Duration(3600.0), max_message_size=1 << 24)
    rate = RouterExtension(max_messages_per_second=1e9)
    ping = RouterExtension(ping_interval=Duration(1.0), ping_timeout=Duration(1e6))

    def relay(module: Any = current, **kw: Any) -> Any:
        return module.WebSocketRelay(NullTransport(), NullTransport(), **kw)

    def pong_expected() -> Any:
        r = relay(policy=ping, clock=Clock())
        r._clock.advance(1.0)  # the first ping goes out; its pong never comes
        return r

    out: dict[str, Callable[[], Any]] = {}
    if baseline is not None:
        out["baseline, no policy"] = lambda: relay(baseline)
    out["no policy"] = relay
    out["idle+ping+lifetime+size"] = lambda: relay(policy=timers, clock=Clock())
    out["maxMessagesPerSecond (never reached)"] = lambda: relay(policy=rate, clock=Clock())
    out["ping outstanding (pong watched)"] = pong_expected
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", help="another relay.py to time the same way")
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    baseline = None
    if args.baseline:
        spec = importlib.util.spec_from_file_location("baseline_relay", args.baseline)
        assert spec is not None and spec.loader is not None
        baseline = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(baseline)
    one = frame(b"s" * 64, masked=True)
    stream = b"".join(frame(b"s" * 64, masked=True) for _ in range(FRAMES))
    parts = [stream[i:i + CHUNK] for i in range(0, len(stream), CHUNK)]
    makers = variants(baseline)
    per_call = dict.fromkeys(makers, float("inf"))
    per_frame = dict.fromkeys(makers, float("inf"))
    for _ in range(args.rounds):
        for name, make in makers.items():
            feed = make().from_client
            start = time.process_time()
            for _ in range(CALLS):
                feed(one)
            per_call[name] = min(per_call[name], (time.process_time() - start) / CALLS)
            feed = make().from_client
            start = time.process_time()
            for c in parts:
                feed(c)
            per_frame[name] = min(per_frame[name], (time.process_time() - start) / FRAMES)
    print(f"{'':40s} {'1 frame/chunk':>14s} {'64 KiB chunks':>14s}")
    for name in makers:
        print(f"{name:40s} {per_call[name] * 1e9:8.0f} ns/chunk {per_frame[name] * 1e9:6.0f} "
              "ns/frame")


if __name__ == "__main__":
    main()
