"""FrameTracker against an independent reference encoder (tests/wsframes.py): any chunking,
same answers."""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import wsframes
from wsgate.websocket import CloseFrame, FrameError, FrameTracker, MessageEnd, Ping, Pong

#: The reference encoder (independent of wsgate.websocket), unmasked unless a test asks.
enc = functools.partial(wsframes.enc, masked=False)


@dataclass
class Expected:
    stream: bytearray = field(default_factory=bytearray)
    events: list[object] = field(default_factory=list)
    frames: int = 0
    control: int = 0
    messages: int = 0
    data_bytes: int = 0
    # (header start, payload start, frame end) per frame
    spans: list[tuple[int, int, int]] = field(default_factory=list)

    def add(self, raw: bytes, payload_len: int) -> None:
        start = len(self.stream)
        self.stream += raw
        end = len(self.stream)
        self.spans.append((start, end - payload_len, end))
        self.frames += 1

    def boundaries(self) -> set[int]:
        return {0} | {end for _, _, end in self.spans}


SIZES = st.one_of(
    st.integers(min_value=0, max_value=130),
    st.sampled_from([125, 126, 127, 0xFFFF, 0x10000, 0x10001]),
)
CONTROL = st.tuples(st.sampled_from([0x9, 0xA]), st.binary(max_size=125))
MESSAGE = st.tuples(
    st.sampled_from([0x1, 0x2]),
    st.lists(st.tuples(SIZES, st.lists(CONTROL, max_size=2)), min_size=1, max_size=4),
)
CLOSE = st.one_of(
    st.none(),
    st.just((None, "")),
    st.tuples(
        st.sampled_from([1000, 1001, 1002, 1003, 1007, 1008, 1009, 1011, 1012, 1014, 3000, 4999]),
        st.text(max_size=20),
    ),
)


def build(
    messages: list, close: tuple[int | None, str] | None, masked: bool, rsv1: bool = False
) -> Expected:
    exp = Expected()
    for opcode, fragments in messages:
        total = 0
        for i, (size, controls) in enumerate(fragments):
            last = i == len(fragments) - 1
            rsv = 0b100 if (rsv1 and i == 0) else 0
            op = opcode if i == 0 else 0
            exp.add(enc(op, b"\xa5" * size, fin=last, rsv=rsv, masked=masked, xor=False), size)
            exp.data_bytes += size
            total += size
            if last:
                exp.messages += 1
                exp.events.append(MessageEnd(opcode, total, len(fragments), rsv1))
            for cop, payload in controls:
                exp.add(enc(cop, payload, masked=masked), len(payload))
                exp.control += 1
                exp.events.append(Ping(payload) if cop == 0x9 else Pong(payload))
    if close is not None:
        code, reason = close
        payload = b"" if code is None else struct.pack(">H", code) + reason.encode()
        exp.add(enc(0x8, payload, masked=masked), len(payload))
        exp.control += 1
        exp.events.append(CloseFrame(code, reason))
    return exp


def check_counts(t: FrameTracker, exp: Expected) -> None:
    assert t.frames == exp.frames
    assert t.control_frames == exp.control
    assert t.messages == exp.messages
    assert t.data_bytes == exp.data_bytes
    assert t.at_frame_boundary


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({min(c, len(data)) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


def expected_until_boundary(exp: Expected, offset: int) -> int | None:
    for start, payload, end in exp.spans:
        if start < offset < payload:
            return None
        if payload <= offset < end:
            return end - offset
    return 0


@settings(max_examples=150, deadline=None)
@given(
    st.lists(MESSAGE, max_size=5),
    CLOSE,
    st.booleans(),
    st.lists(st.integers(min_value=0, max_value=200_000), max_size=15),
)
def test_any_chunking_gives_the_same_answers(
    messages: list, close: tuple[int | None, str] | None, masked: bool, cuts: list[int]
) -> None:
    exp = build(messages, close, masked)
    data = bytes(exp.stream)

    whole = FrameTracker(masked=masked)
    assert list(whole.feed(data)) == exp.events
    check_counts(whole, exp)

    t = FrameTracker(masked=masked)
    events: list[object] = []
    offset = 0
    bounds = exp.boundaries()
    for part in split(data, cuts):
        events += t.feed(part)
        offset += len(part)
        assert t.at_frame_boundary == (offset in bounds), offset
        assert t.bytes_until_boundary == expected_until_boundary(exp, offset), offset
    assert events == exp.events
    check_counts(t, exp)
    assert t.close == (exp.events[-1] if close is not None else None)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(MESSAGE, min_size=1, max_size=4),
    st.booleans(),
    st.lists(st.integers(min_value=0, max_value=200_000), max_size=10),
)
def test_feed_to_boundary_stops_at_each_frame_end(
    messages: list, masked: bool, cuts: list[int]
) -> None:
    exp = build(messages, None, masked)
    data = bytes(exp.stream)
    ends = sorted(exp.boundaries() - {0})
    t = FrameTracker(masked=masked)
    offset = 0
    events: list[object] = []
    for part in split(data, cuts):
        while part:
            if t.at_frame_boundary:
                assert t.feed_to_boundary(part) == (0, ())
                events += t.feed(part[:1])  # one byte never completes a frame
                consumed = 1
            else:
                nxt = min(e for e in ends if e > offset)
                consumed, evs = t.feed_to_boundary(part)
                events += evs
                assert consumed == min(len(part), nxt - offset)
                assert t.at_frame_boundary == (offset + consumed == nxt)
            offset += consumed
            part = part[consumed:]
    assert offset == len(data)
    assert events == exp.events
    check_counts(t, exp)


def test_feed_to_boundary_simple() -> None:
    a = enc(0x2, b"x" * 10)
    b = enc(0x1, b"y" * 3)
    t = FrameTracker()
    assert t.feed_to_boundary(a + b) == (0, ())
    t.feed(a[:5])
    consumed, events = t.feed_to_boundary(a[5:] + b)
    assert consumed == len(a) - 5
    assert list(events) == [MessageEnd(2, 10, 1, False)]
    assert t.at_frame_boundary
    assert list(t.feed(b)) == [MessageEnd(1, 3, 1, False)]


def test_rsv1_with_permessage_deflate() -> None:
    exp = build([(0x1, [(10, []), (5, [])]), (0x2, [(3, [])])], None, True, rsv1=True)
    t = FrameTracker(masked=True, allow_rsv1=True)
    assert list(t.feed(bytes(exp.stream))) == exp.events
    assert all(e.compressed for e in exp.events)  # type: ignore[attr-defined]


def test_big_frame_chunks_are_o1() -> None:
    t = FrameTracker(masked=True)
    t.feed(enc(0x2, masked=True, length=1 << 30)[:14])
    block = b"\0" * 65536
    for _ in range(100):
        assert t.feed(block) == ()
    assert t.bytes_until_boundary == (1 << 30) - 100 * 65536
    assert t.message_opcode == 2 and t.message_length == 1 << 30 and t.message_frames == 1
    assert t.data_bytes == 100 * 65536


def test_state_accessors_between_fragments() -> None:
    t = FrameTracker()
    t.feed(enc(0x1, b"ab", fin=False))
    assert t.message_opcode == 1 and t.message_length == 2 and t.at_frame_boundary
    t.feed(enc(0x0, b"cd", fin=False) + enc(0x9, b"p"))
    assert t.message_length == 4 and t.message_frames == 2
    assert list(t.feed(enc(0x0, b"e"))) == [MessageEnd(1, 5, 3, False)]
    assert t.message_opcode is None and t.message_length == 0


def test_header_split_reports_partial_bytes() -> None:
    frame = enc(0x2, b"z" * 300, masked=True, xor=False)  # 2 + 2 + 4 header bytes
    t = FrameTracker()
    t.feed(frame[:5])
    assert t.partial_header_bytes == 5 and t.bytes_until_boundary is None
    assert not t.at_frame_boundary
    t.feed(frame[5:9])
    assert t.partial_header_bytes == 0 and t.bytes_until_boundary == 299


def test_message_events_can_be_turned_off() -> None:
    t = FrameTracker(message_events=False)
    events = t.feed(enc(0x1, b"a") + enc(0x1, b"b", fin=False) + enc(0x0, b"c") + enc(0x9))
    assert list(events) == [Ping(b"")]
    assert t.messages == 2


# -- close frames -------------------------------------------------------------------------------


@pytest.mark.parametrize("masked", [True, False])
def test_close_code_and_reason(masked: bool) -> None:
    payload = struct.pack(">H", 1001) + "going away ✓".encode()
    frame = enc(0x8, payload, masked=masked)
    for i in range(len(frame) + 1):
        t = FrameTracker(masked=masked)
        events = list(t.feed(frame[:i])) + list(t.feed(frame[i:]))
        assert events == [CloseFrame(1001, "going away ✓")], i
        assert t.close == CloseFrame(1001, "going away ✓")


def test_empty_close() -> None:
    t = FrameTracker()
    assert list(t.feed(enc(0x8))) == [CloseFrame(None, "")]


def test_ping_pong_payloads_are_unmasked() -> None:
    t = FrameTracker(masked=True)
    events = t.feed(enc(0x9, b"hello", masked=True) + enc(0xA, b"world", masked=True))
    assert list(events) == [Ping(b"hello"), Pong(b"world")]


# -- violations ---------------------------------------------------------------------------------

OK = enc(0x2, b"ok")

VIOLATIONS = [
    (enc(0x3, b"x"), 1002, "reserved opcode"),
    (enc(0x7), 1002, "reserved opcode"),
    (enc(0xB), 1002, "reserved opcode"),
    (enc(0xF), 1002, "reserved opcode"),
    (enc(0x9, b"x" * 126), 1002, "control frame payload"),
    (enc(0x8, b"\x03\xe8" + b"x" * 124), 1002, "control frame payload"),
    (enc(0x9, b"x", fin=False), 1002, "fragmented control frame"),
    (enc(0x0, b"x"), 1002, "continuation frame without a message"),
    (enc(0x1, b"a", fin=False) + enc(0x2, b"b"), 1002, "new data frame"),
    (enc(0x1, b"a", fin=False) + enc(0x1, b"b"), 1002, "new data frame"),
    (enc(0x2, length=1 << 63), 1002, "top bit"),
    (enc(0x2, b"x", rsv=0b100), 1002, "RSV"),
    (enc(0x2, b"x", rsv=0b010), 1002, "RSV"),
    (enc(0x2, b"x", rsv=0b001), 1002, "RSV"),
    (enc(0x9, rsv=0b100), 1002, "RSV bit set on a control frame"),
    (enc(0x8, b"\x03"), 1002, "1-byte payload"),
    (enc(0x8, struct.pack(">H", 999)), 1002, "invalid close code"),
    (enc(0x8, struct.pack(">H", 1004)), 1002, "invalid close code"),
    (enc(0x8, struct.pack(">H", 1005)), 1002, "invalid close code"),
    (enc(0x8, struct.pack(">H", 1006)), 1002, "invalid close code"),
    (enc(0x8, struct.pack(">H", 1015)), 1002, "invalid close code"),
    (enc(0x8, struct.pack(">H", 1016)), 1002, "invalid close code"),
    (enc(0x8, struct.pack(">H", 2999)), 1002, "invalid close code"),
    (enc(0x8, struct.pack(">H", 5000)), 1002, "invalid close code"),
    (enc(0x8, struct.pack(">H", 1000) + b"\xff\xfe"), 1007, "UTF-8"),
    (enc(0x8, struct.pack(">H", 1000)) + enc(0x2, b"late"), 1002, "after a close"),
    (enc(0x8) + enc(0x9), 1002, "after a close"),
]


@pytest.mark.parametrize(("frames", "code", "reason"), VIOLATIONS)
def test_violations(frames: bytes, code: int, reason: str) -> None:
    data = OK + frames
    # The offending frame is the last one; everything before it may be forwarded.
    for parts in ([data], [data[i : i + 1] for i in range(len(data))]):
        t = FrameTracker()
        offset = 0
        with pytest.raises(FrameError) as info:
            for part in parts:
                t.feed(part)
                offset += len(part)
        err = info.value
        assert err.code == code
        assert reason.lower() in err.reason.lower(), err.reason
        frame_start = len(data) - len(_last_frame(frames))
        assert offset + err.offset == frame_start
        with pytest.raises(FrameError):
            t.feed(OK)


def _last_frame(frames: bytes) -> bytes:
    """The last frame of a concatenation (parsed with the reference layout)."""
    pos, last = 0, b""
    while pos < len(frames):
        b1 = frames[pos + 1]
        n = b1 & 0x7F
        hlen = 2 + (2 if n == 126 else 8 if n == 127 else 0) + (4 if b1 & 0x80 else 0)
        if n == 126:
            n = int.from_bytes(frames[pos + 2 : pos + 4], "big")
        elif n == 127:
            n = int.from_bytes(frames[pos + 2 : pos + 10], "big")
            if n >> 63:
                return frames[pos:]
        last = frames[pos : pos + hlen + n]
        pos += hlen + n
    return last


def test_mask_direction_enforced_only_when_asked() -> None:
    masked, plain = enc(0x2, b"a", masked=True), enc(0x2, b"a")
    FrameTracker().feed(masked + plain)
    with pytest.raises(FrameError, match="unmasked frame from the client") as info:
        FrameTracker(masked=True).feed(masked + plain)
    assert info.value.code == 1002 and info.value.offset == len(masked)
    with pytest.raises(FrameError, match="masked frame from the server"):
        FrameTracker(masked=False).feed(plain + masked)


def test_rsv1_rules_with_deflate() -> None:
    t = FrameTracker(allow_rsv1=True)
    t.feed(enc(0x1, b"a", rsv=0b100))
    with pytest.raises(FrameError, match="continuation"):
        FrameTracker(allow_rsv1=True).feed(
            enc(0x1, b"a", fin=False, rsv=0b100) + enc(0x0, b"b", rsv=0b100)
        )
    with pytest.raises(FrameError, match="RSV"):
        FrameTracker(allow_rsv1=True).feed(enc(0x1, b"a", rsv=0b010))
    with pytest.raises(FrameError, match="control"):
        FrameTracker(allow_rsv1=True).feed(enc(0xA, rsv=0b100))


def test_max_message_size() -> None:
    t = FrameTracker(max_message_size=10)
    t.feed(enc(0x2, b"x" * 10))
    t.feed(enc(0x1, b"x" * 6, fin=False))
    first = enc(0x0, b"x" * 4, fin=False)
    second = enc(0x0, b"x")
    t.feed(first)
    with pytest.raises(FrameError) as info:
        t.feed(enc(0x9) + second)
    assert info.value.code == 1009 and info.value.offset == 2
    with pytest.raises(FrameError) as info:
        FrameTracker(max_message_size=100).feed(OK + enc(0x2, b"", masked=True, length=101))
    assert info.value.code == 1009 and info.value.offset == len(OK)


def test_error_offset_negative_when_the_frame_began_earlier() -> None:
    bad = enc(0x8, struct.pack(">H", 1000) + b"\xff")
    t = FrameTracker()
    t.feed(OK + bad[:3])
    with pytest.raises(FrameError) as info:
        t.feed(bad[3:])
    assert info.value.code == 1007 and info.value.offset == -3


# -- a second, third-party encoder ---------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["text", "binary", "ping"]), st.binary(max_size=300)),
        max_size=8,
    ),
    st.booleans(),
    st.lists(st.integers(min_value=0, max_value=5000), max_size=8),
)
def test_websockets_library_frames(
    items: list[tuple[str, bytes]], mask: bool, cuts: list[int]
) -> None:
    frames_mod = pytest.importorskip("websockets.frames")
    Frame, WsOpcode, Close = frames_mod.Frame, frames_mod.Opcode, frames_mod.Close
    data = b""
    expected: list[object] = []
    for kind, payload in items:
        if kind == "ping":
            payload = payload[:125]
            data += Frame(WsOpcode.PING, payload).serialize(mask=mask)
            expected.append(Ping(payload))
        else:
            op = WsOpcode.TEXT if kind == "text" else WsOpcode.BINARY
            data += Frame(op, payload).serialize(mask=mask)
            expected.append(MessageEnd(int(op), len(payload), 1, False))
    data += Frame(WsOpcode.CLOSE, Close(4001, "done").serialize()).serialize(mask=mask)
    expected.append(CloseFrame(4001, "done"))
    t = FrameTracker(masked=mask)
    events: list[object] = []
    for part in split(data, cuts):
        events += t.feed(part)
    assert events == expected
    assert t.at_frame_boundary and t.frames == len(items) + 1
