"""FrameCutter: cutting the proxy's pong out of a client stream, stopping between frames, and
message budgets, under any chunking."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.wsframes import BINARY, CONT, PING, PONG, TEXT, enc, parse
from wsgate.websocket import FrameTracker
from wsgate.websocket.cutter import FrameCutter

TOKEN = b"\x01wsgate\x02"


def cutter(**kw: object) -> FrameCutter:
    return FrameCutter(FrameTracker(masked=True, message_events=False, **kw))  # type: ignore[arg-type]


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def feed_all(c: FrameCutter, chunks: list[bytes], **kw: object) -> tuple[bytes, int, int]:
    out = bytearray()
    answered = dropped = 0
    for chunk in chunks:
        cut = c.feed(chunk, **kw)  # type: ignore[arg-type]
        assert cut.error is None
        assert cut.consumed == len(chunk)
        out += b"".join(cut.forward)
        answered += cut.answered
        dropped += cut.dropped
    return bytes(out), answered, dropped


# A stream of frames a client may send: data messages (some fragmented), pings, foreign pongs.
frame_st = st.one_of(
    st.builds(lambda p: [enc(BINARY, p, masked=True)], st.binary(max_size=300)),
    st.builds(lambda p: [enc(TEXT, p, masked=True)], st.binary(max_size=130)),
    st.builds(lambda p: [enc(PING, p, masked=True)], st.binary(max_size=125)),
    # Foreign pongs: never one of the tokens below.
    st.builds(lambda p: [enc(PONG, b"f" + p, masked=True)], st.binary(max_size=124)),
    st.builds(lambda a, b: [enc(BINARY, a, masked=True, fin=False),
                            enc(PONG, b"other", masked=True),
                            enc(CONT, b, masked=True)],
              st.binary(max_size=100), st.binary(max_size=100)),
)


@settings(max_examples=300, deadline=None)
@given(before=st.lists(frame_st, max_size=6), after=st.lists(frame_st, max_size=6),
       cuts=st.lists(st.integers(0, 5000), max_size=12),
       token=st.sampled_from([TOKEN, b"", b"x" * 125]))
def test_expected_pong_is_cut_whatever_the_chunking(before: list[list[bytes]],
                                                    after: list[list[bytes]], cuts: list[int],
                                                    token: bytes) -> None:
    head = b"".join(f for group in before for f in group)
    tail = b"".join(f for group in after for f in group)
    pong = enc(PONG, token, masked=True)
    c = cutter()
    c.expected_pong = token
    out, answered, dropped = feed_all(c, split(head + pong + tail, cuts))
    assert out == head + tail
    assert answered == 1 and dropped == len(pong)
    assert c.expected_pong is None and c.idle() and c.tracker.at_frame_boundary


def test_a_second_identical_pong_passes() -> None:
    c = cutter()
    c.expected_pong = TOKEN
    pong = enc(PONG, TOKEN, masked=True)
    data = enc(TEXT, b"hi", masked=True)
    cut = c.feed(data + pong + data + pong + data)
    assert b"".join(cut.forward) == data + data + pong + data
    assert cut.answered and cut.dropped == len(pong)


def test_without_anything_to_watch_the_chunk_passes_as_is() -> None:
    c = cutter()
    chunk = enc(BINARY, b"x" * 1000, masked=True) * 3
    cut = c.feed(chunk[:1500])
    assert cut.forward == [chunk[:1500]] and cut.consumed == 1500
    cut = c.feed(chunk[1500:])
    assert cut.forward[0] is not None and b"".join(cut.forward) == chunk[1500:]


def test_a_pong_split_anywhere_is_held_at_most_its_own_size() -> None:
    pong = enc(PONG, b"p" * 125, masked=True)
    c = cutter()
    c.expected_pong = b"p" * 125
    before = enc(TEXT, b"before", masked=True)
    cut = c.feed(before + pong[:3])
    assert b"".join(cut.forward) == before and c.held == pong[:3]
    assert c.at_boundary  # what was passed on ends between two frames
    for i in range(3, len(pong) - 1):
        cut = c.feed(pong[i:i + 1])
        assert cut.forward == [] and len(c.held) == i + 1
    cut = c.feed(pong[-1:] + before)
    assert b"".join(cut.forward) == before and cut.answered and not c.held


def test_a_held_pong_that_is_not_the_expected_one_is_passed_whole() -> None:
    pong = enc(PONG, b"someone else's", masked=True)
    c = cutter()
    c.expected_pong = TOKEN
    cut = c.feed(pong[:5])
    assert cut.forward == [] and c.held == pong[:5]
    cut = c.feed(pong[5:])
    assert b"".join(cut.forward) == pong and not cut.answered and c.expected_pong == TOKEN


def test_a_pong_begun_before_watching_answers_but_is_not_cut() -> None:
    pong = enc(PONG, TOKEN, masked=True)
    c = cutter()
    assert c.feed(pong[:4]).forward == [pong[:4]]  # not watching yet: passed on
    c.expected_pong = TOKEN
    cut = c.feed(pong[4:])
    assert b"".join(cut.forward) == pong[4:] and cut.answered and cut.dropped == 0


def test_stop_at_boundary() -> None:
    big = enc(BINARY, b"z" * 1000, masked=True)
    nxt = enc(TEXT, b"next", masked=True)
    c = cutter()
    c.feed(big[:100])
    cut = c.feed(big[100:] + nxt, stop_at_boundary=True)
    assert cut.stopped and cut.consumed == len(big) - 100
    assert b"".join(cut.forward) == big[100:]
    cut = c.feed(nxt, stop_at_boundary=True)
    assert cut.stopped and cut.consumed == 0 and cut.forward == []


def test_stop_at_boundary_with_a_held_pong_stops_before_it() -> None:
    c = cutter()
    c.expected_pong = TOKEN
    c.feed(enc(PONG, TOKEN, masked=True)[:3])
    cut = c.feed(b"\x00" * 10, stop_at_boundary=True)
    assert cut.stopped and cut.forward == [] and cut.consumed == 0


def test_message_limit_cuts_before_the_message_over_it() -> None:
    msgs = [enc(TEXT, f"m{i}".encode(), masked=True) for i in range(10)]
    c = cutter()
    cut = c.feed(b"".join(msgs), message_limit=3)
    assert cut.over_limit and cut.stopped
    assert parse(b"".join(cut.forward)) == parse(b"".join(msgs[:3]))


def test_message_limit_counts_messages_not_frames() -> None:
    frags = (enc(TEXT, b"a", masked=True, fin=False) + enc(PING, b"", masked=True)
             + enc(CONT, b"b", masked=True, fin=False) + enc(CONT, b"c", masked=True))
    c = cutter()
    cut = c.feed(frags + frags, message_limit=1)
    assert cut.over_limit
    # The second message's first fragments pass; its final frame is cut.
    assert b"".join(cut.forward) == frags + frags[:len(frags) - len(enc(CONT, b"c",
                                                                         masked=True))]


def test_message_limit_lets_through_a_message_begun_earlier() -> None:
    big = enc(BINARY, b"y" * 500, masked=True)
    c = cutter()
    c.feed(big[:100])
    cut = c.feed(big[100:] + big, message_limit=0)
    assert cut.over_limit
    assert b"".join(cut.forward) == big[100:]  # ends at a boundary all the same


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(0, 200), min_size=1, max_size=30),
       limit=st.integers(0, 30), cuts=st.lists(st.integers(0, 9000), max_size=10))
def test_message_limit_any_chunking(sizes: list[int], limit: int, cuts: list[int]) -> None:
    frames = [enc(BINARY, b"q" * s, masked=True) for s in sizes]
    stream = b"".join(frames)
    c = cutter()
    out = bytearray()
    over = False
    for chunk in split(stream, cuts):
        cut = c.feed(chunk, message_limit=limit)
        out += b"".join(cut.forward)
        if cut.over_limit:
            over = True
            break
    got = parse(bytes(out))  # always ends at a boundary
    assert over == (len(frames) > limit)
    assert len(got) in ((limit, limit + 1) if over else (len(frames),))


def test_too_big_message_forwards_the_valid_bytes_before_it() -> None:
    ok = enc(TEXT, b"fine", masked=True)
    bad = enc(BINARY, b"b" * 200, masked=True)
    c = cutter(max_message_size=100)
    c.expected_pong = TOKEN
    cut = c.feed(ok + bad)
    assert cut.error is not None and cut.error.code == 1009
    assert b"".join(cut.forward) == ok and cut.clean and cut.unsent == bad


def test_error_in_a_held_pong_is_clean() -> None:
    c = cutter()
    c.expected_pong = TOKEN
    ok = enc(TEXT, b"ok", masked=True)
    cut = c.feed(ok + b"\x8a")
    assert b"".join(cut.forward) == ok and c.held == b"\x8a"
    cut = c.feed(b"\xfe\x00\xc8" + b"\x00" * 4)  # a 200-byte control frame
    assert cut.error is not None and cut.error.code == 1002
    assert cut.forward == [] and cut.clean and cut.unsent.startswith(b"\x8a\xfe")


def test_error_in_a_frame_begun_earlier_is_not_clean() -> None:
    c = cutter(max_message_size=100)
    c.feed(b"\x82")  # fast path: the first header byte is passed on
    c.expected_pong = TOKEN
    cut = c.feed(b"\xfe\x00\xc8" + b"\x00" * 4)
    assert cut.error is not None and cut.error.code == 1009 and not cut.clean


@pytest.mark.parametrize("size", [0, 1, 125])
def test_pong_payload_sizes(size: int) -> None:
    token = bytes(range(size))
    c = cutter()
    c.expected_pong = token
    cut = c.feed(enc(PONG, token, masked=True))
    assert cut.answered and cut.forward == []


@settings(max_examples=200, deadline=None)
@given(groups=st.lists(frame_st, max_size=8), cuts=st.lists(st.integers(0, 3000), max_size=8))
def test_feed_to_control_stops_exactly_before_each_control_frame(groups: list[list[bytes]],
                                                                 cuts: list[int]) -> None:
    frames = [f for group in groups for f in group]
    stream = b"".join(frames)
    starts = []
    at = 0
    for f in frames:
        if f[0] & 0x08:
            starts.append(at)
        at += len(f)
    t = FrameTracker(masked=True, message_events=False)
    stops = []
    offset = 0
    for chunk in split(stream, cuts):
        pos = 0
        while pos < len(chunk):
            if t.at_frame_boundary and chunk[pos] & 0x08:
                stops.append(offset + pos)
                k, _ = t.feed_frame(chunk[pos:])
            else:
                k, _ = t.feed_to_control(chunk[pos:])
            assert k > 0
            pos += k
        offset += len(chunk)
    # Every control frame is reached at its start, even when a read splits its header:
    # feed_to_control never takes (holds) the first bytes of a control frame.
    assert stops == starts
    assert t.at_frame_boundary and t.frames == len(frames)
