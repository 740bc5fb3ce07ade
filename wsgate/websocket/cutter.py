"""Cutting frames out of a relayed stream, and stopping a stream between two frames.

The relay's fast path feeds whole chunks to a :class:`FrameTracker` and passes them on as they
are. While it has something to watch in a direction (a pong that answers the proxy's own ping,
a message budget that this chunk could exhaust, a close frame waiting for a boundary), it feeds
the chunk through a :class:`FrameCutter` instead, which walks it one frame at a time and says
which bytes to pass on. As soon as nothing is left to watch the rest of the chunk is fed in one
call, so the per-frame walk is paid only around the event it waits for.

A pong is at most 131 bytes on the wire (2 header bytes, a 4-byte mask key, 125 payload
bytes). When one begins in a chunk and ends in a later one, its bytes are held back (never more
than that) until it is whole: only then is it known whether it answers the proxy's ping (cut
out) or must be passed on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from wsgate.websocket.errors import FrameError
from wsgate.websocket.tracker import Event, FrameTracker, Pong

_PONG = 0x0A


class Cut(NamedTuple):
    """What to do with one chunk.

    ``forward``: the bytes to pass on, in order. ``consumed``: how much of the chunk the tracker
    accounted for (the rest, when ``stopped``, was not looked at). ``stopped``: the output is
    at a frame boundary and the caller asked to stop there (``stop_at_boundary``), or the
    message limit was passed (``over_limit``). ``answered``: the expected pong arrived.
    ``dropped``: bytes cut out (the pong). ``error``: a protocol violation; ``forward`` then
    holds the valid bytes before the offending frame, ``clean`` says whether the output ends at
    a frame boundary, and ``unsent`` holds the bytes from the offending frame on.
    """

    forward: list[bytes]
    consumed: int
    stopped: bool = False
    answered: bool = False
    over_limit: bool = False
    dropped: int = 0
    error: FrameError | None = None
    clean: bool = True
    unsent: bytes = b""


class FrameCutter:
    """Walks one direction of a WebSocket stream frame by frame over its FrameTracker.

    ``expected_pong``: the payload of the proxy's outstanding ping; the pong that carries it is
    cut out of the stream (once), any other pong passes. The tracker must be the one this
    direction is fed through on the fast path, so that both see every byte exactly once.
    """

    __slots__ = ("expected_pong", "held", "tracker")

    def __init__(self, tracker: FrameTracker) -> None:
        self.tracker = tracker
        self.expected_pong: bytes | None = None
        #: The start of a pong not passed on yet (fed to the tracker, not to the output).
        self.held = b""

    @property
    def at_boundary(self) -> bool:
        """The bytes passed on so far end between two frames (a held pong is not passed)."""
        return bool(self.held) or self.tracker.at_frame_boundary

    def idle(self) -> bool:
        """Nothing to watch or hold: the caller may feed the tracker directly."""
        return self.expected_pong is None and not self.held

    def feed(self, data: bytes, *, stop_at_boundary: bool = False,
             message_limit: int | None = None) -> Cut:
        """Account for ``data``, the next bytes of this direction.

        ``stop_at_boundary``: stop as soon as the output is between two frames (at once if it
        already is). ``message_limit``: stop when the tracker's message count would pass it;
        the frame that completed the message over the limit is left out when it began in
        this chunk (or was held), so that the output still ends at a boundary.
        """
        t = self.tracker
        n = len(data)
        mv = memoryview(data)
        out: list[bytes] = []
        pos = run = 0
        answered = False
        dropped = 0
        base = 0
        try:
            if self.held:
                if stop_at_boundary:
                    return Cut(out, 0, stopped=True)
                held = self.held
                k, events = t.feed_frame(mv)
                if not t.at_frame_boundary:
                    self.held = held + data
                    return Cut(out, n)
                self.held = b""
                pos = run = k
                if self._answers(events):
                    answered = True
                    dropped = len(held) + k
                else:
                    out.append(held + data[:k])
            while pos < n:
                expected = self.expected_pong
                if expected is None and not stop_at_boundary and (
                        message_limit is None
                        or t.messages + 1 + (n - pos) // 2 <= message_limit):
                    # Nothing this chunk can trigger any more: the tracker's fast path.
                    base = pos
                    t.feed(mv[pos:])
                    pos = n
                    break
                boundary = t.at_frame_boundary
                if boundary and expected is not None and not stop_at_boundary and \
                        message_limit is None and not data[pos] & 0x08:
                    # Only a control frame can be the pong: the data frames before the next
                    # one go through the tracker's fast path in one call.
                    base = pos
                    k, _ = t.feed_to_control(mv[pos:])
                    pos += k
                    continue
                if boundary and stop_at_boundary:
                    if pos > run:
                        out.append(data[run:pos])
                    return Cut(out, pos, stopped=True, answered=answered, dropped=dropped)
                start = pos if boundary else -1
                is_pong = boundary and expected is not None and data[pos] & 0x0F == _PONG
                base = pos
                k, events = t.feed_frame(mv[pos:])
                pos += k
                if not t.at_frame_boundary:
                    # The frame goes on in the next chunk (k == n - start).
                    if is_pong:
                        if start > run:
                            out.append(data[run:start])
                        self.held = bytes(data[start:])
                        run = n
                    break
                if events and self._answers(events):
                    answered = True
                    if is_pong:
                        if start > run:
                            out.append(data[run:start])
                        run = pos
                        dropped += pos - start
                    continue
                if message_limit is not None and t.messages > message_limit:
                    cut_at = start if start >= 0 else pos
                    if cut_at > run:
                        out.append(data[run:cut_at])
                    return Cut(out, pos, stopped=True, answered=answered, over_limit=True,
                               dropped=dropped)
        except FrameError as exc:
            at = base + exc.offset
            if at >= run:
                if at > run:
                    out.append(data[run:at])
                return Cut(out, n, answered=answered, dropped=dropped, error=exc,
                           unsent=bytes(data[at:]))
            if self.held and at == -len(self.held):
                # The offending frame is the held one: nothing of it was passed on.
                unsent = self.held + data
                self.held = b""
                return Cut(out, n, error=exc, unsent=unsent)
            return Cut(out, n, answered=answered, dropped=dropped, error=exc, clean=False,
                       unsent=bytes(data[run:]))
        if pos > run:
            out.append(data[run:pos])
        return Cut(out, pos, answered=answered, dropped=dropped)

    def _answers(self, events: Sequence[Event]) -> bool:
        """Whether ``events`` hold the expected pong (which is then no longer expected)."""
        expected = self.expected_pong
        if expected is None:
            return False
        for event in events:
            if type(event) is Pong and event.payload == expected:
                self.expected_pong = None
                return True
        return False
