"""Zero-copy relay of large WebSocket frame payloads: socket → kernel pipe → socket.

A relay has to see frame headers, never payloads. When a plain (non-TLS) direction is inside
a data frame with many payload bytes still to come, those bytes can move between the two TCP
sockets with ``splice(2)`` through a pipe, without being copied into Python and back: the
frame tracker is told how many payload bytes went by (``FrameTracker.skip_payload``) and takes
over again at the next frame header. For 1 MiB messages that removes both user-space copies,
which is most of what a proxy does with them (docs/performance.md).

The pump is installed on the two write-through transports of wsgate/proxy/sockets.py: the
source's ``doRead`` calls :meth:`SplicePump.pump` instead of ``recv`` while armed, and the
destination's ``write``/``doWrite`` let the pipe drain before any other byte, so ordering is
kept. When the destination does not take bytes, the source stops being read until the pipe is
empty again: at most one pipe (1 MiB) is in flight per direction.
"""

from __future__ import annotations

import fcntl
import os
from typing import Any, Callable

from twisted.internet import main, tcp
from twisted.logger import Logger

log = Logger()

#: Payload bytes a frame must still have to come for the relay to splice them.
SPLICE_MIN = 64 * 1024
#: The pipe's capacity, asked of the kernel (the default pipe holds 64 KiB).
PIPE_SIZE = 1024 * 1024
_FLAGS = os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK if hasattr(os, "splice") else 0


def available() -> bool:
    """splice(2) exists here (Linux, Python 3.10+)."""
    return hasattr(os, "splice")


class SplicePump:
    """One direction's payload splicing between two write-through TCP transports.

    ``tracker``: that direction's FrameTracker. ``read_side``: the relay's producer wrapper of
    the source (its ``paused`` says whether the relay's own backpressure holds reading).
    ``count``: called with each number of bytes moved (the relay's byte counters).

    The destination's bytes keep their order in three stages: what Twisted had queued before
    the pump was armed, then the pipe, then whatever was written (or a close asked) while the
    pump held the destination (``after``).
    """

    __slots__ = (
        "_after",
        "_close_after",
        "_pipe_r",
        "_pipe_w",
        "armed",
        "count",
        "dst",
        "pending",
        "read_side",
        "spliced",
        "src",
        "stalled",
        "tracker",
    )

    def __init__(self, src: Any, dst: Any, tracker: Any, read_side: Any,
                 count: Callable[[int], None]) -> None:
        self.src = src
        self.dst = dst
        self.tracker = tracker
        self.read_side = read_side
        self.count = count
        self.armed = False
        self.stalled = False
        #: Bytes in the pipe, not yet written to the destination (-1: the destination failed).
        self.pending = 0
        #: Bytes moved so far (for tests and metrics).
        self.spliced = 0
        self._after: list[bytes] = []
        self._close_after: bool | None = None  # True: half-close; False: close
        self._pipe_r, self._pipe_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            fcntl.fcntl(self._pipe_w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except OSError as exc:  # above /proc/sys/fs/pipe-max-size: the default size works too
            log.debug("pipe size {size} refused ({exc}); splicing with the default size",
                      size=PIPE_SIZE, exc=exc)

    # -- the relay's side ------------------------------------------------------------------------
    def arm(self) -> bool:
        """Take over reading the source until the frame's payload has passed. False when the
        destination is closing or gone."""
        dst = self.dst
        if not dst.connected or dst.disconnecting or dst._writeDisconnecting or \
                (dst._pipe is not None and dst._pipe is not self):
            return False
        self.armed = True
        # An instance attribute shadows the class's doRead: no cost while not splicing.
        self.src.doRead = self.pump
        dst._pipe = self
        return True

    def disarm(self) -> None:
        """Give reading back to the transport. The pipe still drains into the destination
        before anything written later; Twisted's buffer and producer pausing take over flow
        control."""
        if not self.armed:
            return
        self.armed = False
        self._give_back_reading()
        self.stalled = False
        self._resume_source()
        if self.pending == 0:
            self._release()

    def close(self) -> None:
        """The relay is over: release the pipe (both connections are gone)."""
        if self.armed:
            self.armed = False
            self._give_back_reading()
        if self.dst._pipe is self:
            self.dst._pipe = None
        self._after.clear()
        if self._pipe_r >= 0:
            os.close(self._pipe_r)
            os.close(self._pipe_w)
            self._pipe_r = self._pipe_w = -1

    def destination_lost(self) -> None:
        """The destination's connection is gone: drop what waited for it, read the source
        the usual way again (the relay learns of the loss from the transport)."""
        self.pending = 0
        self._after.clear()
        self._close_after = None
        if self.dst._pipe is self:
            self.dst._pipe = None
        self.stalled = False
        self.disarm()
        self._resume_source()

    # -- the source transport's doRead ---------------------------------------------------------
    def pump(self) -> Any:
        """Move payload bytes while the source has them and the destination takes them.

        Returns what ``doRead`` returns: None, or a reason the source connection is over.
        """
        src = self.src
        src_fd = src.fileno()
        tracker = self.tracker
        while True:
            if self.pending and not self._drain():
                self._stall()
                return None
            if not self.armed:
                break
            remaining = tracker.bytes_until_boundary
            if not remaining:
                self.disarm()
                break
            try:
                moved = os.splice(src_fd, self._pipe_w, min(remaining, PIPE_SIZE),
                                  flags=_FLAGS)
            except BlockingIOError:
                return None
            except OSError as exc:
                # splice reports a reset before the bytes still queued in the socket, which
                # recv returns first: the transport's own read gets them, then the error.
                log.debug("splice from {src!r} failed ({exc}); reading it the usual way",
                          src=src, exc=exc)
                self.disarm()
                break
            if moved == 0:  # EOF: the transport's own read reports it
                self.disarm()
                break
            self.pending += moved
            self.spliced += moved
            tracker.skip_payload(moved)
            self.count(moved)
        # Reading is the transport's again: whatever is readable goes the usual way now.
        return tcp.Connection.doRead(src)

    # -- the destination transport -------------------------------------------------------------
    def after(self, data: bytes) -> None:
        """The destination was written to while the pump holds it: after the pipe."""
        self._after.append(data)
        if self.pending == 0 and not self.armed:
            self._release()

    def after_close(self, half: bool) -> None:
        """The destination was asked to close while the pump holds it: after the pipe."""
        if not self.dst.connected or self.dst.disconnected:
            return  # nothing left to close
        if self._close_after is None or not half:
            self._close_after = half
        if self.pending == 0 and not self.armed:
            self._release()
        elif self.pending:
            self.dst.startWriting()

    def writable(self) -> Any:
        """The destination's doWrite, once its own queue is out: empty the pipe. Returns
        None, or a reason the destination connection is lost."""
        if not self._drain():
            if self.pending < 0:
                return main.CONNECTION_LOST
            self.dst.startWriting()  # Twisted's doWrite may have unregistered it
            return None
        if self.stalled:
            self.stalled = False
            self._resume_source()
        if not self.armed:
            self._release()
        elif not self.dst.has_queued():
            self.dst.stopWriting()
        return None

    def _drain(self) -> bool:
        """Pipe → destination. True when the pipe is empty; False while bytes queued before
        it are still out, when the destination is full, or when it failed (``pending`` -1)."""
        if self.pending <= 0:
            return self.pending == 0
        dst = self.dst
        if dst.has_queued():
            return False
        dst_fd = dst.fileno()
        while self.pending > 0:
            try:
                moved = os.splice(self._pipe_r, dst_fd, self.pending, flags=_FLAGS)
            except BlockingIOError:
                return False
            except OSError as exc:
                log.debug("splice into {dst!r} failed: {exc}", dst=dst, exc=exc)
                self.pending = -1
                return False
            self.pending -= moved
        return True

    def _release(self) -> None:
        """Hand the destination back: what waited behind the pipe is written, then the close."""
        dst = self.dst
        if dst._pipe is self:
            dst._pipe = None
        after, self._after = self._after, []
        for data in after:
            dst.write(data)
        close, self._close_after = self._close_after, None
        if close is True:
            dst.loseWriteConnection()
        elif close is False:
            dst.loseConnection()

    def _stall(self) -> None:
        """The destination is full: stop reading the source until the pipe has drained."""
        self.stalled = True
        self.src.stopReading()
        self.dst.startWriting()

    def _give_back_reading(self) -> None:
        # Only our own doRead: an aborted transport has a no-op one of Twisted's in its place.
        if self.src.__dict__.get("doRead") == self.pump:
            del self.src.doRead

    def _resume_source(self) -> None:
        src = self.src
        if self.stalled or self.read_side.paused or not src.connected \
                or src.disconnecting or src.disconnected or getattr(src, "_aborting", False):
            return
        src.startReading()
