"""Following WebSocket frame boundaries in a relayed byte stream, without touching payloads.

The relay passes every chunk of one direction through a FrameTracker before writing it on. The
tracker reads only frame headers (2–14 bytes, possibly split across chunks at any byte) and skips
payloads by arithmetic: a chunk inside a large frame costs O(1), and a chunk of many small frames
runs a tight loop whose common case (an unfragmented text/binary frame) is handled inline. Only
control-frame payloads (at most 125 bytes) are ever copied, to read close codes and pings.

What the relay gets: counts, message and close events, protocol violations with the close code to
send, and the frame boundaries it needs to write a close frame of its own between two frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from wsgate.websocket.errors import FrameError
from wsgate.websocket.frames import CloseCode, mask_payload, parse_close_payload

_MAX_LENGTH = (1 << 63) - 1


class MessageEnd(NamedTuple):
    """A data message completed. ``length`` is its payload size over all frames (compressed
    size when ``compressed``, i.e. RSV1 under permessage-deflate)."""

    opcode: int
    length: int
    frames: int
    compressed: bool


class CloseFrame(NamedTuple):
    """A close frame; ``code`` is None for an empty payload (the peer reports 1005)."""

    code: int | None
    reason: str


class Ping(NamedTuple):
    payload: bytes


class Pong(NamedTuple):
    payload: bytes


Event = MessageEnd | CloseFrame | Ping | Pong

#: What the tracker is fed: bytes, or a memoryview of them (to walk a chunk without copies).
Chunk = bytes | memoryview

_NO_EVENTS: Sequence[Event] = ()
_new: Any = tuple.__new__  # builds a NamedTuple without its Python-level __new__ (3x cheaper)

# Header length by the second header byte: 2, +2 or +8 for extended lengths, +4 with a mask.
_HEADER_LENGTH = tuple(
    (2 if b & 0x7F < 126 else 4 if b & 0x7F == 126 else 10) + (4 if b & 0x80 else 0)
    for b in range(256)
)


class FrameTracker:
    """Frame boundaries, counts and violations for one direction of a WebSocket connection.

    ``masked``: True when frames must be masked (client to server), False when they must not
    be (server to client), None to accept both. ``allow_rsv1``: permessage-deflate was
    negotiated. ``max_message_size``: declared payload bytes per message before a 1009 error.
    ``message_events``: emit a MessageEnd per message (counts are kept either way).

    After a FrameError the tracker stays failed and raises it again.
    """

    __slots__ = (
        "_closed",
        "_ctl",
        "_ctl_key",
        "_ctl_op",
        "_error",
        "_fin",
        "_frame_start",
        "_hdr",
        "_mask_expect",
        "_max_size",
        "_msg_compressed",
        "_msg_frames",
        "_msg_len",
        "_msg_op",
        "_remaining",
        "allow_rsv1",
        "close",
        "control_frames",
        "data_bytes",
        "frames",
        "message_events",
        "messages",
    )

    def __init__(
        self,
        *,
        masked: bool | None = None,
        allow_rsv1: bool = False,
        max_message_size: int | None = None,
        message_events: bool = True,
    ) -> None:
        self._mask_expect = -1 if masked is None else (0x80 if masked else 0)
        self.allow_rsv1 = allow_rsv1
        self._max_size = _MAX_LENGTH if max_message_size is None else max_message_size
        self.message_events = message_events
        self.frames = 0
        """Frames whose header has been read (data and control)."""
        self.control_frames = 0
        self.messages = 0
        """Completed data messages."""
        self.data_bytes = 0
        """Payload bytes of data frames passed so far (as on the wire: masked, compressed)."""
        self.close: CloseFrame | None = None
        """The close frame seen in this direction, if any."""
        self._remaining = 0
        self._hdr = b""
        self._ctl: bytearray | None = None
        self._ctl_op = 0
        self._ctl_key: bytes | None = None
        self._fin = True
        self._frame_start = 0
        self._msg_op = 0
        self._msg_len = 0
        self._msg_frames = 0
        self._msg_compressed = False
        self._closed = False
        self._error: FrameError | None = None

    # -- state the relay reads -----------------------------------------------------------------

    @property
    def at_frame_boundary(self) -> bool:
        """True when the bytes fed so far end exactly between two frames."""
        return not self._remaining and not self._hdr

    @property
    def bytes_until_boundary(self) -> int | None:
        """Payload bytes still to come in the current frame; 0 at a boundary; None while a
        frame header is incomplete (its length is not known yet)."""
        if self._hdr:
            return None
        return self._remaining

    @property
    def partial_header_bytes(self) -> int:
        """How many trailing bytes of what was fed are an incomplete frame header (0–13)."""
        return len(self._hdr)

    @property
    def message_opcode(self) -> int | None:
        """Opcode (1 text, 2 binary) of the data message in progress, if any."""
        return self._msg_op or None

    @property
    def message_length(self) -> int:
        """Declared payload bytes of the message in progress so far."""
        return self._msg_len if self._msg_op else 0

    @property
    def message_frames(self) -> int:
        return self._msg_frames if self._msg_op else 0

    # -- feeding -------------------------------------------------------------------------------

    def feed(self, data: Chunk) -> Sequence[Event]:
        """Account for ``data``, the next bytes of this direction (bytes or a memoryview of
        them; never copied beyond header and control-frame bytes); return its events."""
        return self._feed(data, False)[1]

    def feed_to_boundary(self, data: Chunk) -> tuple[int, Sequence[Event]]:
        """Account for ``data`` only up to the end of the first frame that ends in it.

        Returns how many bytes were consumed (all of ``data`` when no frame ends in it; 0 when
        already at a boundary) and the events. With ``data[:consumed]`` forwarded, the tracker is
        at a boundary iff ``at_frame_boundary``: the moment to write the proxy's own close frame.
        """
        if self.at_frame_boundary:
            if self._error is not None:
                raise self._error
            return 0, _NO_EVENTS
        return self._feed(data, True)

    def feed_frame(self, data: Chunk) -> tuple[int, Sequence[Event]]:
        """Account for ``data`` up to the end of the next frame that ends in it: the frame in
        progress, or (at a boundary) the one starting at ``data[0]``.

        Returns how many bytes were consumed (all of ``data`` when no frame ends in it) and the
        events; called repeatedly it walks a chunk one frame at a time, which is how the relay
        cuts a frame out of a stream or stops between two frames.
        """
        return self._feed(data, True)

    def feed_to_control(self, data: Chunk) -> tuple[int, Sequence[Event]]:
        """Account for ``data`` up to the start of the first control frame that begins in it
        (all of ``data`` when none does; 0 when one begins at ``data[0]``).

        The tracker's fast path runs over the data frames before it: this is how the relay
        looks for a pong without walking every frame. The frame in progress, if any, is
        finished first whatever it is.
        """
        return self._feed(data, False, True)

    def _feed(self, data: Chunk, stop: bool, ctl: bool = False
              ) -> tuple[int, Sequence[Event]]:
        if self._error is not None:
            raise self._error
        n = len(data)
        events: list[Event] = []
        frames = messages = data_bytes = 0
        pos = 0
        try:
            # The frame in progress: its payload, or the rest of its header.
            if self._remaining:
                pos = self._payload(data, 0, n, events)
                if self._remaining:
                    self._frame_start -= n
                    return n, events or _NO_EVENTS
                if stop:
                    return pos, events or _NO_EVENTS
            elif self._hdr:
                pos = self._held_header(data, n, events)
                if self._hdr or self._remaining:
                    if self._remaining:
                        pos = self._payload(data, pos, n, events)
                    if self._hdr or self._remaining:
                        self._frame_start -= n
                        return n, events or _NO_EVENTS
                if stop:
                    return pos, events or _NO_EVENTS

            me = self._mask_expect
            maxsize = self._max_size
            emit = self.message_events
            append = events.append
            hlens = _HEADER_LENGTH
            # The fast path is off while a fragmented message is open or after a close.
            fast = not self._msg_op and not self._closed
            while pos < n:
                avail = n - pos
                if avail < 2:
                    if ctl and data[pos] & 0x08:
                        break
                    self._hold(data, pos, n)
                    return n, events or _NO_EVENTS
                b0 = data[pos]
                b1 = data[pos + 1]
                hlen = hlens[b1]
                if avail < hlen:
                    if ctl and b0 & 0x08:
                        break
                    self._hold(data, pos, n)
                    return n, events or _NO_EVENTS
                ln = b1 & 0x7F
                if ln >= 126:
                    if ln == 126:
                        ln = (data[pos + 2] << 8) | data[pos + 3]
                    else:
                        ln = int.from_bytes(data[pos + 2 : pos + 10], "big")
                # Fast path: a whole unfragmented text/binary message, nothing unusual.
                if (
                    fast
                    and (b0 == 0x82 or b0 == 0x81)
                    and (me < 0 or (b1 & 0x80) == me)
                    and ln <= maxsize
                ):
                    frames += 1
                    end = pos + hlen + ln
                    if end <= n:
                        data_bytes += ln
                        messages += 1
                        if emit:
                            append(_new(MessageEnd, (b0 & 0x0F, ln, 1, False)))
                        pos = end
                        if stop:
                            break
                        continue
                    self._msg_op = b0 & 0x0F
                    self._msg_len = ln
                    self._msg_frames = 1
                    self._msg_compressed = False
                    self._fin = True
                    self._ctl = None
                    data_bytes += n - pos - hlen
                    self._remaining = end - n
                    self._frame_start = pos - n
                    return n, events or _NO_EVENTS
                # General path: validation, fragments, control frames.
                if ctl and b0 & 0x08:
                    break
                key = bytes(data[pos + hlen - 4 : pos + hlen]) if b1 & 0x80 else None
                frames += 1
                self._start_frame(b0, b1 & 0x80, ln, key, pos, events)
                pos += hlen
                if self._remaining:
                    pos = self._payload(data, pos, n, events)
                    if self._remaining:
                        self._frame_start -= n
                        return n, events or _NO_EVENTS
                fast = not self._msg_op and not self._closed
                if stop:
                    break
            return pos, events or _NO_EVENTS
        except FrameError as exc:
            self._error = exc
            raise
        finally:
            self.frames += frames
            self.messages += messages
            self.data_bytes += data_bytes

    def skip_payload(self, n: int) -> None:
        """Account for ``n`` payload bytes of the data frame in progress that were relayed
        without passing through Python (spliced from socket to socket in the kernel).

        Only payload bytes of a data frame can be skipped: control frames and headers must be
        seen. ``n`` may not exceed ``bytes_until_boundary``.
        """
        if self._error is not None:
            raise self._error
        if n <= 0 or self._hdr or self._ctl is not None or n > self._remaining:
            kind = "control" if self._ctl is not None else "data"
            raise ValueError(f"cannot skip {n} payload bytes: {self._remaining} remain in "
                             f"the {kind} frame in progress")
        self._remaining -= n
        self.data_bytes += n
        self._frame_start -= n
        if not self._remaining:
            self._end_data_frame([])

    def _hold(self, data: Chunk, pos: int, n: int) -> None:
        """Keep an incomplete header (at most 13 bytes) for the next feed."""
        self._hdr = bytes(data[pos:n])
        self._frame_start = pos - n

    def _held_header(self, data: Chunk, n: int, events: list[Event]) -> int:
        """Complete a header split across feeds; return where its payload starts in ``data``."""
        held = self._hdr
        buf = held + bytes(data[:14])
        have = len(buf)
        if have < 2:
            self._hdr = buf
            return n
        b1 = buf[1]
        ln = b1 & 0x7F
        hlen = _HEADER_LENGTH[b1]
        if have < hlen:
            # Only when all of ``data`` fitted in ``buf``.
            self._hdr = buf
            return n
        if ln == 126:
            ln = (buf[2] << 8) | buf[3]
        elif ln == 127:
            ln = int.from_bytes(buf[2:10], "big")
        key = buf[hlen - 4 : hlen] if b1 & 0x80 else None
        self._hdr = b""
        self.frames += 1
        self._start_frame(buf[0], b1 & 0x80, ln, key, self._frame_start, events)
        return hlen - len(held)

    def _start_frame(
        self, b0: int, masked: int, ln: int, key: bytes | None, start: int, events: list[Event]
    ) -> None:
        """Validate a frame header and set up its payload (RFC 6455 §5.2, §5.4, §5.5)."""
        self._frame_start = start
        if self._closed:
            raise FrameError(CloseCode.PROTOCOL_ERROR, "frame after a close frame", start)
        me = self._mask_expect
        if me >= 0 and masked != me:
            reason = "unmasked frame from the client" if me else "masked frame from the server"
            raise FrameError(CloseCode.PROTOCOL_ERROR, reason, start)
        if ln > _MAX_LENGTH:
            raise FrameError(
                CloseCode.PROTOCOL_ERROR, "64-bit payload length with the top bit set", start
            )
        op = b0 & 0x0F
        rsv = b0 & 0x70
        if op >= 8:
            if op > 10:
                raise FrameError(CloseCode.PROTOCOL_ERROR, f"reserved opcode 0x{op:x}", start)
            if not b0 & 0x80:
                raise FrameError(CloseCode.PROTOCOL_ERROR, "fragmented control frame", start)
            if ln > 125:
                raise FrameError(
                    CloseCode.PROTOCOL_ERROR, f"control frame payload of {ln} bytes", start
                )
            if rsv:
                raise FrameError(CloseCode.PROTOCOL_ERROR, "RSV bit set on a control frame", start)
            self.control_frames += 1
            self._ctl_op = op
            self._ctl_key = key
            self._ctl = bytearray()
            if ln:
                self._remaining = ln
            else:
                self._end_control(events)
            return
        if op == 0:
            if not self._msg_op:
                raise FrameError(
                    CloseCode.PROTOCOL_ERROR, "continuation frame without a message", start
                )
            if rsv:
                raise FrameError(
                    CloseCode.PROTOCOL_ERROR, "RSV bit set on a continuation frame", start
                )
        elif op <= 2:
            if self._msg_op:
                raise FrameError(
                    CloseCode.PROTOCOL_ERROR,
                    "new data frame while a fragmented message is open",
                    start,
                )
            if rsv & 0x30 or (rsv and not self.allow_rsv1):
                raise FrameError(
                    CloseCode.PROTOCOL_ERROR, "RSV bit set without a negotiated extension", start
                )
            self._msg_op = op
            self._msg_len = 0
            self._msg_frames = 0
            self._msg_compressed = bool(rsv)
        else:
            raise FrameError(CloseCode.PROTOCOL_ERROR, f"reserved opcode 0x{op:x}", start)
        self._msg_len += ln
        self._msg_frames += 1
        if self._msg_len > self._max_size:
            raise FrameError(
                CloseCode.MESSAGE_TOO_BIG,
                f"message of at least {self._msg_len} bytes over the {self._max_size} limit",
                start,
            )
        self._fin = bool(b0 & 0x80)
        self._ctl = None
        if ln:
            self._remaining = ln
        else:
            self._end_data_frame(events)

    def _payload(self, data: Chunk, pos: int, n: int, events: list[Event]) -> int:
        """Consume the current frame's payload from ``pos``; return the new position."""
        rem = self._remaining
        take = n - pos
        ctl = self._ctl
        if ctl is None:
            if take < rem:
                self._remaining = rem - take
                self.data_bytes += take
                return n
            self._remaining = 0
            self.data_bytes += rem
            self._end_data_frame(events)
            return pos + rem
        if take < rem:
            ctl += data[pos:n]
            self._remaining = rem - take
            return n
        ctl += data[pos : pos + rem]
        self._remaining = 0
        self._end_control(events)
        return pos + rem

    def _end_data_frame(self, events: list[Event]) -> None:
        if self._fin:
            self.messages += 1
            if self.message_events:
                events.append(
                    MessageEnd(self._msg_op, self._msg_len, self._msg_frames, self._msg_compressed)
                )
            self._msg_op = 0

    def _end_control(self, events: list[Event]) -> None:
        payload = bytes(self._ctl or b"")
        self._ctl = None
        if self._ctl_key is not None and payload:
            payload = mask_payload(payload, self._ctl_key)
        op = self._ctl_op
        if op == 8:
            try:
                code, reason = parse_close_payload(payload)
            except FrameError as exc:
                exc.offset = self._frame_start
                raise
            self._closed = True
            self.close = CloseFrame(code, reason)
            events.append(self.close)
        elif op == 9:
            events.append(Ping(payload))
        else:
            events.append(Pong(payload))
