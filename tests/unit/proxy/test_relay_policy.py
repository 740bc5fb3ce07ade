"""WebSocketRelay's session policy and draining close, on fake transports and a task.Clock:
pings to the client and their pongs cut out, idle timeout, lifetime, message size and rate
limits, and closes that wait for frame boundaries."""

from __future__ import annotations

import random
from typing import Any

import pytest
from twisted.internet.task import Clock

from tests.wsframes import BINARY, CLOSE, CONT, PING, PONG, TEXT, Frame, close_payload, enc, parse
from wsgate.config.dynamic import RouterExtension
from wsgate.config.schema import Duration
from wsgate.proxy.relay import CLOSE_TIMEOUT, WebSocketRelay


class FakeTransport:
    """What the relay uses of a Twisted transport, recording everything."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.producer: Any = None
        self.paused = False
        self.closing = False
        self.write_closed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        assert isinstance(data, bytes)
        assert not (self.closing or self.aborted or self.write_closed), "write after close"
        self.data += data

    def writeSequence(self, seq: list[bytes]) -> None:
        for data in seq:
            self.write(data)

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False

    def loseConnection(self) -> None:
        self.closing = True

    def loseWriteConnection(self) -> None:
        self.write_closed = True

    def abortConnection(self) -> None:
        self.aborted = True

    def frames(self, partial: bool = False) -> list[Frame]:
        return parse(bytes(self.data), partial=partial)

    def take(self) -> list[Frame]:
        got = self.frames()
        self.data.clear()
        return got


class Session:
    def __init__(self, clock: Clock | None = None, **policy: Any) -> None:
        self.clock = clock or Clock()
        self.client = FakeTransport()
        self.backend = FakeTransport()
        self.done: list[WebSocketRelay] = []
        settings = {k: Duration(float(v)) if k in _DURATIONS else v for k, v in policy.items()}
        self.relay = WebSocketRelay(self.client, self.backend, on_done=self.done.append,
                                    policy=RouterExtension(**settings) if policy else None,
                                    clock=self.clock, rng=random.Random(7), name="r@file")

    def run(self, seconds: float) -> None:
        """Let time pass as a reactor does, in small steps (task.Clock runs every call of
        one big advance at its end time). Steps of 1/16 s keep the sums exact."""
        for _ in range(round(seconds / STEP)):
            self.clock.advance(STEP)

    def lose_both(self) -> None:
        self.relay.side_lost("client")
        self.relay.side_lost("backend")


STEP = 1 / 16
_DURATIONS = {"idle_timeout", "ping_interval", "ping_timeout", "max_lifetime"}


def c2b(opcode: int, payload: bytes = b"", fin: bool = True) -> bytes:
    return enc(opcode, payload, masked=True, fin=fin)


def b2c(opcode: int, payload: bytes = b"", fin: bool = True) -> bytes:
    return enc(opcode, payload, masked=False, fin=fin)


def closes(frames: list[Frame]) -> list[int]:
    return [f.close_code for f in frames if f.opcode == CLOSE]


# -- no policy: bytes pass as they are ------------------------------------------------------------


def test_without_policy_bytes_pass_unchanged_and_no_timer_runs() -> None:
    s = Session()
    up = c2b(TEXT, b"hello") + c2b(PING, b"p") + c2b(PONG, b"q")
    down = b2c(BINARY, b"x" * 300)
    s.relay.from_client(up[:5])
    s.relay.from_client(up[5:])
    s.relay.from_backend(down)
    assert bytes(s.backend.data) == up and bytes(s.client.data) == down
    assert s.clock.getDelayedCalls() == []


# -- pings to the client ----------------------------------------------------------------------


def ping_payload(s: Session) -> bytes:
    pings = [f for f in s.client.take() if f.opcode == PING]
    assert len(pings) == 1 and not pings[0].masked
    return pings[0].payload


def test_ping_every_interval_and_the_pong_is_not_forwarded() -> None:
    s = Session(ping_interval=10)
    s.clock.advance(9.9)
    assert s.client.data == b""
    s.clock.advance(0.1)
    token = ping_payload(s)
    data = c2b(TEXT, b"a") + c2b(PONG, token) + c2b(BINARY, b"b" * 200)
    s.relay.from_client(data)
    assert [(f.opcode, f.payload) for f in s.backend.take()] == [(TEXT, b"a"),
                                                                 (BINARY, b"b" * 200)]
    s.clock.advance(10)  # the next ping; the first one's deadline was cancelled
    token2 = ping_payload(s)
    assert token2 != token
    s.relay.from_client(c2b(PONG, token2))
    s.clock.advance(25)
    assert closes(s.client.frames()) == [] and not s.client.closing


def test_pong_split_byte_by_byte_is_cut_and_other_pongs_pass() -> None:
    s = Session(ping_interval=5)
    s.clock.advance(5)
    token = ping_payload(s)
    theirs = c2b(PONG, b"unsolicited")
    stream = c2b(TEXT, b"1") + theirs + c2b(PONG, token) + c2b(TEXT, b"2")
    for i in range(len(stream)):
        s.relay.from_client(stream[i:i + 1])
    assert [(f.opcode, f.payload) for f in s.backend.take()] == [
        (TEXT, b"1"), (PONG, b"unsolicited"), (TEXT, b"2")]
    s.clock.advance(5)  # answered: no close, a new ping
    assert ping_payload(s)


def test_ping_waits_for_a_boundary_toward_the_client() -> None:
    s = Session(ping_interval=5)
    big = b2c(BINARY, b"B" * 1000)
    s.relay.from_backend(big[:400])
    s.clock.advance(5)
    assert bytes(s.client.data) == big[:400]  # no ping inside a frame
    nxt = b2c(TEXT, b"after")
    s.relay.from_backend(big[400:] + nxt)
    got = s.client.take()
    assert [f.opcode for f in got] == [BINARY, PING, TEXT]
    assert got[0].payload == b"B" * 1000 and got[2].payload == b"after"


def test_no_pong_closes_1011_both_ways() -> None:
    s = Session(ping_interval=10, ping_timeout=3)
    s.clock.advance(10)
    ping_payload(s)
    s.clock.advance(2.9)
    assert s.client.data == b""
    s.clock.advance(0.1)
    assert closes(s.client.frames()) == [1011]
    assert closes(s.backend.frames()) == [1011] and s.backend.frames()[0].masked
    # Each side's TCP connection closes once it answered with its own close frame.
    assert not s.client.closing and not s.backend.closing
    s.relay.from_backend(b2c(TEXT, b"crossed the close") + b2c(CLOSE, b"\x03\xf3"))
    assert s.backend.closing and not s.client.closing
    s.relay.from_client(c2b(CLOSE, b"\x03\xf3"))
    assert s.client.closing
    assert closes(s.client.frames()) == [1011]  # nothing after the proxy's close
    s.lose_both()
    assert s.done and s.relay.stats.close_code == 1011 and s.relay.stats.closed_by == "proxy"


def test_ping_timeout_defaults_to_the_interval() -> None:
    s = Session(ping_interval=4)
    s.clock.advance(4)
    ping_payload(s)
    s.clock.advance(3.9)
    assert closes(s.client.frames()) == []
    s.clock.advance(0.1)
    assert closes(s.client.frames()) == [1011]


def test_client_that_cannot_be_read_is_given_more_time() -> None:
    s = Session(ping_interval=10, ping_timeout=2)
    s.clock.advance(10)
    token = ping_payload(s)
    # The backend's buffer is full: it pauses reading from the client.
    s.backend.producer.pauseProducing()
    assert s.client.paused
    s.clock.advance(2)
    assert closes(s.client.frames()) == []
    s.backend.producer.resumeProducing()
    s.relay.from_client(c2b(PONG, token))
    s.clock.advance(5)
    assert closes(s.client.frames()) == []


def test_client_in_the_middle_of_a_frame_is_given_more_time() -> None:
    s = Session(ping_interval=10, ping_timeout=2)
    big = c2b(BINARY, b"u" * 3000)
    s.relay.from_client(big[:1000])
    s.clock.advance(10)
    token = ping_payload(s)
    s.relay.from_client(big[1000:2000])  # still sending its frame: it cannot pong yet
    s.clock.advance(2)
    assert closes(s.client.frames()) == []
    s.clock.advance(2)  # no progress in the last 2 s: dead
    assert closes(s.client.frames()) == [1011]
    assert token


def test_pings_stop_once_the_client_sent_its_close() -> None:
    s = Session(ping_interval=5)
    s.relay.from_client(c2b(CLOSE, b"\x03\xe8"))
    s.clock.advance(20)
    assert [f.opcode for f in s.client.frames()] == []


# -- idle timeout -------------------------------------------------------------------------------


def test_idle_timeout_closes_1001_after_no_traffic() -> None:
    s = Session(idle_timeout=8)
    s.run(6)
    s.relay.from_client(c2b(TEXT, b"still here"))
    s.run(8)
    assert closes(s.client.frames()) == []
    s.run(2)  # 10 s since the last frame (detected within idleTimeout / 4)
    assert closes(s.client.frames()) == [1001]
    assert closes(s.backend.frames(partial=True)) == [1001]


@pytest.mark.parametrize("last", [0.0, 0.125, 1.875, 2.0, 3.25])
def test_idle_timeout_precision(last: float) -> None:
    s = Session(idle_timeout=8)
    s.run(last)
    s.relay.from_backend(b2c(TEXT, b"x"))
    s.client.data.clear()
    closed_at = None
    for _ in range(300):
        s.clock.advance(STEP)
        if s.client.data:
            closed_at = s.clock.seconds()
            break
    assert closed_at is not None
    # Within idleTimeout / 4 of the deadline (plus the test's own step).
    assert 8 <= closed_at - last <= 8 * 1.25 + STEP


def test_proxy_pings_do_not_keep_an_idle_session_open() -> None:
    s = Session(idle_timeout=10, ping_interval=3)
    for _ in range(3):
        s.run(3)
        s.relay.from_client(c2b(PONG, ping_payload(s)))
    assert closes(s.client.frames()) == []
    s.run(1)
    assert closes(s.client.frames()) == [1001]


# -- lifetime -----------------------------------------------------------------------------------


def test_max_lifetime_closes_1001_with_jitter() -> None:
    spread = random.Random(7).uniform(-0.1, 0.1)
    s = Session(max_lifetime=100)
    s.relay.from_client(c2b(TEXT, b"x"))
    s.clock.advance(100 * (1 + spread) - 0.01)
    assert closes(s.client.frames()) == []
    s.clock.advance(0.02)
    assert closes(s.client.frames()) == [1001]
    assert abs(spread) <= 0.1


def test_lifetimes_are_spread() -> None:
    ends = set()
    for seed in range(20):
        clock = Clock()
        relay = WebSocketRelay(FakeTransport(), FakeTransport(), clock=clock,
                               policy=RouterExtension(max_lifetime=Duration(100.0)),
                               rng=random.Random(seed))
        ends.add(round(clock.getDelayedCalls()[0].getTime(), 3))
        assert relay
    assert len(ends) == 20 and min(ends) >= 90 and max(ends) <= 110


# -- message size -------------------------------------------------------------------------------


def test_too_big_client_message_closes_1009_after_the_valid_frames() -> None:
    s = Session(max_message_size=100)
    ok = c2b(TEXT, b"ok" * 50)
    s.relay.from_client(ok + c2b(BINARY, b"z" * 101) + c2b(TEXT, b"never"))
    got = s.backend.frames()
    assert [(f.opcode, f.payload) for f in got[:1]] == [(TEXT, b"ok" * 50)]
    assert closes(got) == [1009] and len(got) == 2
    assert closes(s.client.frames()) == [1009]
    # The client's stream cannot be followed any more: it gets a FIN and is read until its
    # EOF; the backend's connection closes once it answered.
    assert s.client.write_closed and not s.client.closing and not s.backend.closing
    s.relay.from_client(c2b(TEXT, b"dropped"))
    assert len(s.backend.frames()) == 2
    s.relay.backend_read_closed()
    assert s.backend.closing
    s.relay.client_read_closed()
    assert s.client.closing


def test_too_big_fragmented_message_counts_all_fragments() -> None:
    s = Session(max_message_size=100)
    s.relay.from_client(c2b(TEXT, b"a" * 60, fin=False))
    s.relay.from_client(c2b(CONT, b"b" * 60))
    got = s.backend.frames()
    assert [f.opcode for f in got] == [TEXT, CLOSE] and got[1].close_code == 1009


def test_too_big_client_message_while_the_backend_is_mid_frame() -> None:
    s = Session(max_message_size=1000)
    down = b2c(BINARY, b"d" * 900)
    s.relay.from_backend(down[:100])
    s.relay.from_client(c2b(BINARY, b"z" * 2000))
    assert closes(s.backend.frames()) == [1009]
    assert bytes(s.client.data) == down[:100]  # the client's close waits for the boundary
    s.relay.from_backend(down[100:] + b2c(TEXT, b"late"))
    assert [f.opcode for f in s.client.frames()] == [BINARY, CLOSE]
    assert closes(s.client.frames()) == [1009] and s.client.write_closed


def test_too_big_backend_message_closes_1009_both_ways() -> None:
    s = Session(max_message_size=10)
    s.relay.from_backend(b2c(TEXT, b"0123456789") + b2c(TEXT, b"0123456789X"))
    got = s.client.frames()
    assert [f.opcode for f in got] == [TEXT, CLOSE] and got[1].close_code == 1009
    assert closes(s.backend.frames()) == [1009]


def test_too_big_header_split_across_reads_cannot_close_cleanly_on_that_side() -> None:
    s = Session(max_message_size=10)
    frame = c2b(BINARY, b"z" * 200)
    s.relay.from_client(frame[:1])  # the fast path passed the first header byte on
    s.relay.from_client(frame[1:])
    assert bytes(s.backend.data) == frame[:1]  # no close frame inside a frame
    assert s.backend.write_closed
    assert closes(s.client.frames()) == [1009]


# -- message rate -------------------------------------------------------------------------------


def test_rate_limit_closes_1008_and_forwards_only_the_allowed_messages() -> None:
    s = Session(max_messages_per_second=5)
    msgs = [c2b(TEXT, f"m{i}".encode()) for i in range(8)]
    s.relay.from_client(b"".join(msgs))
    got = s.backend.frames()
    assert [f.payload for f in got if f.opcode == TEXT] == [f"m{i}".encode() for i in range(5)]
    assert closes(got) == [1008] and closes(s.client.frames()) == [1008]


def test_rate_limit_refills_over_time() -> None:
    s = Session(max_messages_per_second=5)
    for second in range(10):
        for i in range(5):
            s.relay.from_client(c2b(TEXT, f"{second}.{i}".encode()))
        s.clock.advance(1.0)
    got = s.backend.frames()
    assert closes(got) == [] and len(got) == 50
    for _ in range(6):
        s.relay.from_client(c2b(TEXT, b"burst"))
    assert closes(s.backend.frames()) == [1008]


def test_rate_limit_burst_is_one_second_of_messages() -> None:
    s = Session(max_messages_per_second=100)
    s.relay.from_client(c2b(TEXT, b"m") * 100)
    s.clock.advance(0.5)
    s.relay.from_client(c2b(TEXT, b"m") * 50)
    assert closes(s.backend.frames()) == []
    s.relay.from_client(c2b(TEXT, b"m") * 2)
    assert closes(s.backend.frames()) == [1008]
    assert len([f for f in s.backend.frames() if f.opcode == TEXT]) == 150


def test_rate_limit_counts_messages_not_control_frames() -> None:
    s = Session(max_messages_per_second=2)
    s.relay.from_client(c2b(PING, b"1") + c2b(PING, b"2") + c2b(PING, b"3") + c2b(TEXT, b"a")
                        + c2b(TEXT, b"b"))
    assert closes(s.backend.frames()) == []


def test_fractional_rate_allows_one_message_then_waits() -> None:
    s = Session(max_messages_per_second=0.5)
    s.relay.from_client(c2b(TEXT, b"one"))
    s.clock.advance(2.0)
    s.relay.from_client(c2b(TEXT, b"two"))
    assert closes(s.backend.frames()) == []
    s.clock.advance(1.0)
    s.relay.from_client(c2b(TEXT, b"three"))
    assert closes(s.backend.frames()) == [1008]


# -- draining close -----------------------------------------------------------------------------


def test_close_at_boundaries_is_immediate() -> None:
    s = Session()
    s.relay.from_client(c2b(TEXT, b"x"))
    s.relay.close(1001, "server shutting down")
    assert closes(s.client.frames()) == [1001]
    assert closes(s.backend.frames()) == [1001]
    s.relay.from_client(c2b(CLOSE, b"\x03\xe9"))
    s.relay.from_backend(b2c(CLOSE, b"\x03\xe9"))
    assert s.client.closing and s.backend.closing
    s.lose_both()
    assert s.clock.getDelayedCalls() == []


def test_close_waits_for_the_end_of_the_frame_in_each_direction() -> None:
    s = Session()
    up = c2b(BINARY, b"u" * 5000)
    down = b2c(BINARY, b"d" * 5000)
    s.relay.from_client(up[:10])
    s.relay.from_backend(down[:10])
    s.relay.close(1001, "bye")
    assert not s.client.closing and not s.backend.closing
    s.relay.from_client(up[10:3000])
    s.relay.from_client(up[3000:] + c2b(TEXT, b"after the boundary"))
    assert [f.opcode for f in s.backend.frames()] == [BINARY, CLOSE]
    assert not s.backend.closing  # the client's direction is done, the backend's is not
    s.relay.from_backend(down[10:] + b2c(CLOSE, b"\x03\xe9"))
    assert [f.opcode for f in s.client.frames()] == [BINARY, CLOSE]
    assert s.backend.closing and not s.client.closing
    s.relay.client_read_closed()  # the client answers with EOF: as good as a close frame
    assert s.client.closing
    s.relay.from_backend(b2c(TEXT, b"dropped"))
    assert [f.opcode for f in s.client.frames()] == [BINARY, CLOSE]


def test_close_cuts_tcp_when_no_boundary_comes() -> None:
    s = Session()
    s.relay.from_client(c2b(BINARY, b"u" * 5000)[:10])
    s.relay.close(1001, "bye")
    assert closes(s.client.frames()) == [1001]
    s.clock.advance(CLOSE_TIMEOUT)
    assert s.client.aborted and s.backend.aborted
    assert s.backend.frames(partial=True) == []


def test_close_timeout_can_be_given() -> None:
    s = Session()
    s.relay.from_backend(b2c(BINARY, b"d" * 100)[:5])
    s.relay.close(1001, timeout=10)
    s.clock.advance(9)
    assert not s.client.aborted
    s.clock.advance(1)
    assert s.client.aborted


def test_first_close_wins() -> None:
    s = Session()
    s.relay.close(1001, "first")
    s.relay.close(1011, "second")
    assert closes(s.client.frames()) == [1001]
    assert s.relay.stats.close_code == 1001


def test_close_drops_a_held_pong() -> None:
    s = Session(ping_interval=1)
    s.clock.advance(1)
    token = ping_payload(s)
    s.relay.from_client(c2b(PONG, token)[:3])
    s.relay.close(1001)
    assert closes(s.backend.frames()) == [1001]  # nothing of the pong went before it


def test_client_fin_during_close_gives_up_on_that_direction() -> None:
    s = Session()
    s.relay.from_client(c2b(BINARY, b"u" * 100)[:10])
    s.relay.close(1001)
    s.relay.client_read_closed()
    assert s.backend.write_closed or s.backend.closing
    assert s.client.closing


def test_backend_close_frame_already_relayed_is_not_followed_by_another() -> None:
    s = Session()
    s.relay.from_backend(b2c(CLOSE, b"\x03\xe8"))
    s.relay.close(1001)
    assert closes(s.client.frames()) == [1000]
    assert closes(s.backend.frames()) == [1001]


def test_timers_stop_when_the_session_ends() -> None:
    s = Session(idle_timeout=5, ping_interval=2, max_lifetime=60, max_messages_per_second=3)
    s.clock.advance(2)
    s.lose_both()
    assert s.clock.getDelayedCalls() == []
    assert s.done


# -- existing behaviour kept --------------------------------------------------------------------


def test_protocol_error_turns_tracking_off_for_that_direction_only() -> None:
    s = Session(ping_interval=5)
    bad = enc(TEXT, b"unmasked from the client", masked=False)
    s.relay.from_client(bad + c2b(TEXT, b"more"))
    assert bytes(s.backend.data).startswith(bad)  # relayed as is, untracked
    s.clock.advance(5)
    assert s.client.data == b""  # no ping: a pong could not be found any more
    s.relay.from_backend(b2c(TEXT, b"down"))
    s.relay.close(1001)
    assert closes(s.client.frames()) == [1001]
    assert closes(s.backend.frames(partial=True)) == []


def test_client_gone_gives_1001_to_the_backend() -> None:
    s = Session(ping_interval=5)
    s.relay.side_lost("client")
    assert closes(s.backend.frames()) == [1001]
    s.relay.side_lost("backend")
    assert s.done and s.clock.getDelayedCalls() == []


def test_close_answer_split_across_reads_and_after_dropped_frames() -> None:
    s = Session()
    s.relay.close(1001)
    answer = c2b(BINARY, b"late" * 100) + c2b(CLOSE, b"\x03\xe9")
    for i in range(0, len(answer), 7):
        assert not s.client.closing
        s.relay.from_client(answer[i:i + 7])
    assert s.client.closing
    assert closes(s.backend.frames()) == [1001]


def test_close_without_answers_is_cut_after_the_timeout() -> None:
    s = Session()
    s.relay.close(1001)
    s.clock.advance(CLOSE_TIMEOUT - 0.01)
    assert not s.client.aborted and not s.backend.aborted
    s.clock.advance(0.01)
    assert s.client.aborted and s.backend.aborted



# -- a stream that breaks the protocol goes on untracked, each chunk in one write ----------------
class CountingTransport(FakeTransport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        super().write(data)
        self.writes.append(data)

    def writeSequence(self, seq: list[bytes]) -> None:
        joined = b"".join(seq)
        FakeTransport.write(self, joined)
        self.writes.append(joined)


@pytest.mark.parametrize("policy", [{}, {"max_messages_per_second": 100}],
                         ids=["fast path", "watched (rate limit)"])
def test_a_chunk_with_a_frame_after_close_goes_on_in_one_write(policy: dict[str, Any]) -> None:
    """Split at the offending frame, the pieces can reach a peer as two segments; a peer that
    closes after the close frame then finds the rest unread and resets the connection, losing
    what it still had to send (Autobahn case 7.1.6 through wsgate)."""
    s = Session()
    s.backend = CountingTransport()
    s.relay = WebSocketRelay(s.client, s.backend, clock=s.clock, name="r@file",
                             policy=RouterExtension(**policy) if policy else None)
    chunk = (c2b(TEXT, b"hello") + c2b(CLOSE, close_payload(1000)) + c2b(PING, b""))
    s.relay.from_client(chunk)
    assert s.backend.writes == [chunk]


def test_a_backend_chunk_with_a_frame_after_close_goes_on_in_one_write() -> None:
    s = Session()
    s.client = CountingTransport()
    s.relay = WebSocketRelay(s.client, s.backend, clock=s.clock, name="r@file")
    chunk = b2c(TEXT, b"hello") + b2c(CLOSE, close_payload(1000)) + b2c(PING, b"")
    s.relay.from_backend(chunk)
    assert s.client.writes == [chunk]
