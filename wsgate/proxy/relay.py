"""The bidirectional relay after a 101: bytes both ways, flow control, clean close frames.

Each direction is a pair (reader transport → writer transport). The writer transport is the
reader's consumer with the reader as a streaming producer, so a slow reader on one side pauses
reading on the other and memory stays bounded by Twisted's write buffer high-water mark.

A frame tracker on each direction follows frame boundaries without copying payloads. When one
side goes away without a WebSocket close, the other side is sent a close frame at a frame
boundary (1014 to the client when the backend is lost, 1001 to the backend when the client is
lost) before its TCP connection is closed, instead of a bare TCP cut that peers see as 1006.

The router's session policy (its ``wsgate`` section) runs here too: idleTimeout, pingInterval
and pingTimeout, maxLifetime, maxMessageSize and maxMessagesPerSecond. Each direction has a
mode. In the common one (``_FAST``) a chunk is fed to the tracker in one call and written on
as it is; only while there is something to watch (a pong answering the proxy's ping, a message
budget that the chunk could exhaust, a close frame waiting for a boundary) does a direction go
through :class:`~wsgate.websocket.cutter.FrameCutter`, one frame at a time. Timers never touch
the per-chunk path: the idle timer compares byte counters a few times per idleTimeout.
"""

from __future__ import annotations

import os
import random
from typing import TYPE_CHECKING, Any, Callable

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOProtocol
from zope.interface import implementer

from wsgate.proxy import splice
from wsgate.proxy.sockets import splice_capable
from wsgate.websocket import (
    CloseCode,
    FrameError,
    FrameTracker,
    build_close_frame,
    build_ping_frame,
)
from wsgate.websocket.cutter import Cut, FrameCutter

if TYPE_CHECKING:
    from wsgate.config.dynamic import RouterExtension

log = Logger()

#: How long a draining close waits for a frame boundary in each direction and for the peers to
#: take their close frames; then the TCP connections still open are cut.
CLOSE_TIMEOUT = 2.0
#: maxLifetime is spread by ±10%, so that sessions opened together do not all end together.
LIFETIME_JITTER = 0.1
#: The idle check looks at the byte counters this many times per idleTimeout: a session is
#: closed between idleTimeout and 1.25 × idleTimeout after its last frame.
IDLE_CHECKS = 4
#: Bytes of the proxy's ping payloads (random, so a pong is matched to the proxy's own ping).
PING_PAYLOAD_BYTES = 8
#: A chunk at least this large may be the start of a frame worth splicing (wsgate/proxy/splice.py);
#: smaller chunks never look.
SPLICE_HINT = 16 * 1024

# The mode of one direction.
_FAST = 0  # frames tracked, each chunk written on whole: the common case
_WATCH = 1  # a pong to cut, a message budget, or a close frame waiting for a boundary
_BLIND = 2  # the stream broke the protocol: bytes are written on untracked
_DROP = 3  # nothing more goes this way (its close frame was written, or the receiver is gone)


class RelayStats:
    """Per-direction counters, read by metrics and the access log."""

    __slots__ = (
        "backend_bytes",
        "backend_messages",
        "client_bytes",
        "client_messages",
        "close_code",
        "closed_by",
    )

    def __init__(self) -> None:
        self.client_bytes = 0
        self.backend_bytes = 0
        self.client_messages = 0
        self.backend_messages = 0
        self.close_code: int | None = None
        self.closed_by = ""


@implementer(IPushProducer)
class _ReadSide:
    """A transport's reading side as a producer for the other transport.

    Registering the bare transport would let Twisted close it (stopProducing) when the other
    side goes away, before the relay had the chance to send a close frame. ``pauses`` tells
    the ping timeout whether the client could not be read (backpressure from the backend).
    """

    __slots__ = ("paused", "pauses", "transport")

    def __init__(self, transport: Any) -> None:
        self.transport = transport
        self.paused = False
        self.pauses = 0

    def pauseProducing(self) -> None:
        self.paused = True
        self.pauses += 1
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self.paused = False
        self.transport.resumeProducing()

    def stopProducing(self) -> None:
        """The relay ends each side itself (see WebSocketRelay.side_lost)."""


class WebSocketRelay:
    """Joins a client transport and a backend transport after a successful upgrade.

    ``policy``: the router's ``wsgate`` section (None: no limits, Traefik's behaviour).
    ``clock``: the reactor's IReactorTime for the policy timers and close timeouts (a
    ``task.Clock`` in tests); the global reactor when not given. ``rng`` spreads maxLifetime.
    ``name`` (the router) is for log lines.
    """

    __slots__ = (
        "__weakref__",
        "_allow",
        "_backend_closed",
        "_backend_lingering",
        "_backend_lost",
        "_backend_read_closed",
        "_backend_side",
        "_burst",
        "_charged",
        "_client_closed",
        "_client_lingering",
        "_client_lost",
        "_client_read_closed",
        "_client_side",
        "_clock",
        "_close_call",
        "_close_to_backend",
        "_close_to_client",
        "_close_wait",
        "_closing",
        "_control_bytes",
        "_cutter",
        "_down_blind",
        "_down_close_sent",
        "_down_done",
        "_down_failed",
        "_down_mode",
        "_down_pump",
        "_finished",
        "_idle_bytes",
        "_idle_call",
        "_idle_since",
        "_idle_timeout",
        "_lifetime_call",
        "_ping_bytes",
        "_ping_call",
        "_ping_interval",
        "_ping_pauses",
        "_ping_pending",
        "_ping_timeout",
        "_pong_call",
        "_rate",
        "_splice_ok",
        "_tokens",
        "_tokens_at",
        "_up_blind",
        "_up_close_sent",
        "_up_done",
        "_up_failed",
        "_up_mode",
        "_up_pump",
        "backend",
        "client",
        "close_timeout",
        "downstream",
        "name",
        "on_done",
        "stats",
        "upstream",
    )

    def __init__(self, client: Any, backend: Any, *, deflate: bool = False,
                 on_done: Callable[[WebSocketRelay], None] | None = None,
                 policy: RouterExtension | None = None, clock: Any = None,
                 rng: random.Random | None = None, close_timeout: float = CLOSE_TIMEOUT,
                 name: str = "") -> None:
        self.client = client
        self.backend = backend
        self.name = name
        max_size = None
        if policy is not None and policy.max_message_size > 0:
            max_size = int(policy.max_message_size)
        # client → backend frames are masked; backend → client frames are not.
        self.upstream = FrameTracker(masked=True, allow_rsv1=deflate,
                                     max_message_size=max_size, message_events=False)
        self.downstream = FrameTracker(masked=False, allow_rsv1=deflate,
                                       max_message_size=max_size, message_events=False)
        self._cutter = FrameCutter(self.upstream)
        self.stats = RelayStats()
        self.on_done = on_done
        self.close_timeout = close_timeout
        self._clock = clock
        self._up_mode = _FAST
        self._down_mode = _FAST
        self._up_blind = False
        self._down_blind = False
        #: The tracker of that direction failed (a limit): its frames cannot be followed.
        self._up_failed = False
        self._down_failed = False
        #: A close frame went to the backend / to the client (ours or the peer's).
        self._up_close_sent = False
        self._down_close_sent = False
        #: loseConnection was called on the client / backend transport.
        self._client_closed = False
        self._backend_closed = False
        self._client_lingering = False
        self._backend_lingering = False
        #: Nothing more will be written to the backend / to the client.
        self._up_done = False
        self._down_done = False
        #: Close frames waiting for a frame boundary of their direction.
        self._close_to_backend: bytes | None = None
        self._close_to_client: bytes | None = None
        self._closing = False
        self._close_wait = close_timeout
        self._client_read_closed = False
        self._backend_read_closed = False
        self._client_lost = False
        self._backend_lost = False
        self._finished = False
        # Policy state (see _start_policy).
        self._idle_timeout = 0.0
        self._idle_bytes = 0
        self._idle_since = 0.0
        self._ping_interval = 0.0
        self._ping_timeout = 0.0
        self._ping_pending: bytes | None = None
        self._ping_bytes = 0
        self._ping_pauses = 0
        self._rate = 0.0
        self._burst = 0.0
        self._tokens = 0.0
        self._tokens_at = 0.0
        self._charged = 0
        self._allow = 0
        #: Bytes the proxy cut out (pongs to its own pings): not traffic for idleTimeout.
        self._control_bytes = 0
        self._idle_call: Any = None
        self._ping_call: Any = None
        self._pong_call: Any = None
        self._lifetime_call: Any = None
        self._close_call: Any = None
        self._client_side = _ReadSide(client)
        self._backend_side = _ReadSide(backend)
        #: Large frame payloads may be spliced in the kernel (plain TCP on both sides).
        self._splice_ok = splice.available() and splice_capable(client) and \
            splice_capable(backend)
        self._up_pump: splice.SplicePump | None = None
        self._down_pump: splice.SplicePump | None = None
        client.registerProducer(self._backend_side, True)
        backend.registerProducer(self._client_side, True)
        if policy is not None:
            self._start_policy(policy, rng)

    # -- policy ---------------------------------------------------------------------------------
    def _start_policy(self, policy: RouterExtension, rng: random.Random | None) -> None:
        rate = float(policy.max_messages_per_second)
        idle = float(policy.idle_timeout)
        interval = float(policy.ping_interval)
        lifetime = float(policy.max_lifetime)
        if rate <= 0 and idle <= 0 and interval <= 0 and lifetime <= 0:
            return
        clock = self._reactor()
        now = clock.seconds()
        if rate > 0:
            self._rate = rate
            # A token bucket holding one second's worth (at least one message).
            self._burst = max(1.0, rate)
            self._tokens = self._burst
            self._tokens_at = now
            self._allow = int(self._burst)
            self._update_up()
        if idle > 0:
            self._idle_timeout = idle
            self._idle_since = now
            self._idle_call = clock.callLater(idle / IDLE_CHECKS, self._idle_check)
        if interval > 0:
            self._ping_interval = interval
            self._ping_timeout = float(policy.ping_timeout) or interval
            self._ping_call = clock.callLater(interval, self._ping_tick)
        if lifetime > 0:
            spread = (rng or random).uniform(-LIFETIME_JITTER, LIFETIME_JITTER)
            self._lifetime_call = clock.callLater(lifetime * (1.0 + spread),
                                                  self._lifetime_reached)

    def _reactor(self) -> Any:
        if self._clock is None:
            from twisted.internet import reactor
            self._clock = reactor
        return self._clock

    def _idle_check(self) -> None:
        self._idle_call = None
        now = self._clock.seconds()
        stats = self.stats
        seen = stats.client_bytes + stats.backend_bytes - self._control_bytes
        if seen != self._idle_bytes:
            self._idle_bytes = seen
            self._idle_since = now
        elif now - self._idle_since >= self._idle_timeout - 1e-9:
            log.info("WebSocket{name}: no frame either way for {t:g}s (idleTimeout); closing "
                     "with 1001", name=self._label(), t=self._idle_timeout)
            self._begin_close(CloseCode.GOING_AWAY, "idle timeout")
            return
        delay = min(self._idle_timeout / IDLE_CHECKS,
                    self._idle_since + self._idle_timeout - now)
        self._idle_call = self._clock.callLater(max(delay, 0.0), self._idle_check)

    def _lifetime_reached(self) -> None:
        self._lifetime_call = None
        log.info("WebSocket{name}: maxLifetime reached; closing with 1001", name=self._label())
        self._begin_close(CloseCode.GOING_AWAY, "session lifetime reached")

    def _ping_tick(self) -> None:
        self._ping_call = self._clock.callLater(self._ping_interval, self._ping_tick)
        if self._cutter.expected_pong is not None or self._ping_pending is not None:
            return  # one probe at a time; its own deadline decides
        if not self._can_ping():
            self._stop_pings()
            return
        payload = os.urandom(PING_PAYLOAD_BYTES)
        if self._down_mode == _FAST and self.downstream.at_frame_boundary:
            self._write_ping(payload)
        else:
            self._ping_pending = payload
            self._update_down()

    def _can_ping(self) -> bool:
        return (not self._closing and self._up_mode in (_FAST, _WATCH)
                and self._down_mode in (_FAST, _WATCH)
                and self.upstream.close is None and self.downstream.close is None)

    def _write_ping(self, payload: bytes) -> None:
        self.client.write(build_ping_frame(payload, mask=False))
        self._cutter.expected_pong = payload
        self._ping_bytes = self.stats.client_bytes
        self._ping_pauses = self._client_side.pauses
        self._pong_call = self._clock.callLater(self._ping_timeout, self._pong_overdue)
        self._update_up()

    def _pong_arrived(self) -> None:
        self._pong_call = _cancel(self._pong_call)

    def _pong_overdue(self) -> None:
        self._pong_call = None
        if self._cutter.expected_pong is None or self._closing:
            return
        side = self._client_side
        sending = (self.stats.client_bytes != self._ping_bytes
                   and not self.upstream.at_frame_boundary)
        if side.paused or side.pauses != self._ping_pauses or sending:
            # The client could not be read (the backend is slow), or it is in the middle of
            # a frame it is still sending and can answer only after it: it is alive.
            self._ping_bytes = self.stats.client_bytes
            self._ping_pauses = side.pauses
            self._pong_call = self._clock.callLater(self._ping_timeout, self._pong_overdue)
            return
        log.info("WebSocket{name}: no pong within {t:g}s (pingTimeout); closing with 1011",
                 name=self._label(), t=self._ping_timeout)
        self._begin_close(CloseCode.INTERNAL_ERROR, "ping timeout")

    def _stop_pings(self) -> None:
        self._ping_call = _cancel(self._ping_call)
        self._pong_call = _cancel(self._pong_call)
        self._ping_pending = None
        self._cutter.expected_pong = None

    def _refill(self) -> int:
        """Charge the messages since the last look, refill the bucket; the new allowance."""
        now = self._clock.seconds()
        count = self.upstream.messages
        tokens = self._tokens - (count - self._charged)
        tokens = min(self._burst, tokens + (now - self._tokens_at) * self._rate)
        self._charged = count
        self._tokens = tokens
        self._tokens_at = now
        self._allow = count + max(0, int(tokens))
        return self._allow

    def _label(self) -> str:
        return f" on router {self.name}" if self.name else ""

    # -- modes ----------------------------------------------------------------------------------
    def _update_up(self) -> None:
        if self._up_done or self._backend_lost:
            self._up_mode = _DROP
        elif self._up_blind:
            self._up_mode = _BLIND
        elif self._close_to_backend is not None or self._rate or not self._cutter.idle():
            self._up_mode = _WATCH
        else:
            self._up_mode = _FAST
        if self._up_mode and self._up_pump is not None:
            self._up_pump.disarm()  # the rest of the frame goes through the relay

    def _update_down(self) -> None:
        if self._down_done or self._client_lost:
            self._down_mode = _DROP
        elif self._down_blind:
            self._down_mode = _BLIND
        elif self._close_to_client is not None or self._ping_pending is not None:
            self._down_mode = _WATCH
        else:
            self._down_mode = _FAST
        if self._down_mode and self._down_pump is not None:
            self._down_pump.disarm()

    # -- splicing large payloads ----------------------------------------------------------------
    def _splice_up(self) -> None:
        if self._up_pump is None:
            self._up_pump = self._new_pump(self.upstream, self.client, self.backend,
                                           self._client_side, self._spliced_up)
        self._arm(self._up_pump)

    def _splice_down(self) -> None:
        if self._down_pump is None:
            self._down_pump = self._new_pump(self.downstream, self.backend, self.client,
                                             self._backend_side, self._spliced_down)
        self._arm(self._down_pump)

    @staticmethod
    def _new_pump(tracker: FrameTracker, src: Any, dst: Any, side: _ReadSide,
                  count: Callable[[int], None]) -> splice.SplicePump | None:
        remaining = tracker.bytes_until_boundary
        if remaining is None or remaining < splice.SPLICE_MIN:
            return None  # created at the first frame worth splicing
        return splice.SplicePump(src, dst, tracker, side, count)

    @staticmethod
    def _arm(pump: splice.SplicePump | None) -> None:
        if pump is None:
            return
        remaining = pump.tracker.bytes_until_boundary
        if remaining is not None and remaining >= splice.SPLICE_MIN:
            pump.arm()

    def _spliced_up(self, n: int) -> None:
        self.stats.client_bytes += n

    def _spliced_down(self, n: int) -> None:
        self.stats.backend_bytes += n

    # -- data: client → backend -----------------------------------------------------------------
    def from_client(self, data: bytes) -> None:
        self.stats.client_bytes += len(data)
        if not self._up_mode:
            try:
                self.upstream.feed(data)
            except FrameError as exc:
                self._fast_error_up(data, exc)
                return
            self.backend.write(data)
            if len(data) >= SPLICE_HINT and self._splice_ok:
                self._splice_up()
            return
        self._client_data(data)

    def _client_data(self, data: bytes) -> None:
        mode = self._up_mode
        if mode == _DROP:
            if self._closing:
                self._watch_client_close(data)
            return
        if mode == _BLIND:
            self.backend.write(data)
            return
        cutter = self._cutter
        if self._close_to_backend is not None:
            cut = cutter.feed(data, stop_at_boundary=True)
        else:
            limit = None
            if self._rate:
                if cutter.idle() and self.upstream.messages + 1 + len(data) // 2 <= self._allow:
                    # The budget cannot run out in this chunk: no clock, no frame walk.
                    try:
                        self.upstream.feed(data)
                    except FrameError as exc:
                        self._fast_error_up(data, exc)
                        return
                    self.backend.write(data)
                    return
                limit = self._refill()
            cut = cutter.feed(data, message_limit=limit)
        self._apply_cut(cut, data)

    def _apply_cut(self, cut: Cut, data: bytes) -> None:
        error = cut.error
        if error is not None and error.code != CloseCode.MESSAGE_TOO_BIG and cut.unsent:
            # Blind from here: what passes and what follows go in one write (_fast_error_up).
            if not self._backend_lost:
                self.backend.writeSequence([*cut.forward, cut.unsent])
            cut = cut._replace(forward=[], unsent=b"")
        if cut.forward:
            self.backend.writeSequence(cut.forward)
        if cut.dropped:
            self._control_bytes += cut.dropped
        if cut.answered:
            self._pong_arrived()
        if cut.error is not None:
            self._upstream_error(cut.error, cut.clean, cut.unsent)
        elif cut.over_limit:
            log.info("WebSocket{name}: client over maxMessagesPerSecond ({rate:g}); closing "
                     "with 1008", name=self._label(), rate=self._rate)
            self._begin_close(CloseCode.POLICY_VIOLATION, "message rate limit exceeded")
        elif cut.stopped and self._close_to_backend is not None:
            frame, self._close_to_backend = self._close_to_backend, None
            self.backend.write(frame)
            self._cutter.held = b""
            self._up_done = self._up_close_sent = True
            self._maybe_end_close()
        self._update_up()
        if cut.error is None and cut.consumed < len(data) and self._up_mode == _DROP and \
                self._closing:
            self._watch_client_close(data[cut.consumed:])

    def _watch_client_close(self, data: bytes) -> None:
        """After the proxy's close frame went to the backend, the client's stream is no longer
        relayed, only followed until the client's own close frame (its answer)."""
        up = self.upstream
        if up.close is not None or self._up_failed or self._up_blind:
            return
        try:
            up.feed(data)
        except FrameError:
            self._up_failed = True
        if up.close is not None or self._up_failed:
            self._maybe_end_close()

    def _fast_error_up(self, data: bytes, exc: FrameError) -> None:
        at = exc.offset
        if exc.code != CloseCode.MESSAGE_TOO_BIG:
            # Relayed blind from the offending frame on: the chunk goes on whole, in one write.
            # Split in two, a peer that closes after a close frame finds the rest unread and
            # resets the connection, losing what it still had to send (Autobahn case 7.1.6).
            if not self._backend_lost:
                self.backend.write(data)
            self._upstream_error(exc, at >= 0, b"")
            return
        if at > 0:
            self.backend.write(data[:at])
        self._upstream_error(exc, at >= 0, data[max(at, 0):])

    def _upstream_error(self, exc: FrameError, clean: bool, unsent: bytes) -> None:
        """The client broke a rule; the valid bytes before the offending frame are written."""
        if exc.code == CloseCode.MESSAGE_TOO_BIG:
            log.info("WebSocket{name}: client message over maxMessageSize; closing with 1009 "
                     "({exc})", name=self._label(), exc=exc)
            self._cutter.held = b""
            self._up_failed = True
            if clean and not self._backend_lost:
                self.backend.write(build_close_frame(CloseCode.MESSAGE_TOO_BIG,
                                                     "message too big", mask=True))
                self._up_close_sent = True
            elif not self._backend_lost:
                log.info("WebSocket{name}: the offending frame's header was already partly "
                         "relayed; the backend's connection is closed without a close frame",
                         name=self._label())
            self._up_done = True
            self._close_to_backend = None
            self._update_up()
            self._begin_close(CloseCode.MESSAGE_TOO_BIG, "message too big")
            self._maybe_end_close()  # when a close was already under way
            return
        # The endpoints own protocol enforcement; the proxy only stops tracking frames so that
        # it never injects a frame into a stream it no longer understands.
        log.info("WebSocket frame error from the client{name}: {exc}; relaying its bytes "
                 "without frame tracking", name=self._label(), exc=exc)
        self._up_blind = True
        self._stop_pings()
        self._cutter.held = b""
        if unsent and not self._backend_lost:
            self.backend.write(unsent)
        if self._close_to_backend is not None:
            self._close_to_backend = None
            self._up_done = True
        self._update_up()
        self._update_down()
        self._maybe_end_close()

    # -- data: backend → client -----------------------------------------------------------------
    def from_backend(self, data: bytes) -> None:
        self.stats.backend_bytes += len(data)
        if not self._down_mode:
            try:
                self.downstream.feed(data)
            except FrameError as exc:
                self._fast_error_down(data, exc)
                return
            self.client.write(data)
            if len(data) >= SPLICE_HINT and self._splice_ok:
                self._splice_down()
            return
        self._backend_data(data)

    def _backend_data(self, data: bytes) -> None:
        mode = self._down_mode
        if mode == _DROP:
            if self._closing:
                self._watch_backend_close(data)
            return
        if mode == _BLIND:
            self.client.write(data)
            return
        # A ping or a close frame waits for the end of the frame in progress.
        down = self.downstream
        try:
            k, _ = down.feed_to_boundary(data)
        except FrameError as exc:
            self._fast_error_down(data, exc)
            return
        n = len(data)
        if k:
            self.client.write(data if k == n else data[:k])
        if not down.at_frame_boundary:
            return
        self._at_client_boundary()
        if k < n:
            rest = data[k:]
            if not self._down_mode:
                try:
                    down.feed(rest)
                except FrameError as exc:
                    self._fast_error_down(rest, exc)
                    return
                self.client.write(rest)
            else:
                self._backend_data(rest)

    def _watch_backend_close(self, data: bytes) -> None:
        """After the proxy's close frame went to the client, the backend's stream is no longer
        relayed, only followed until the backend's own close frame (its answer)."""
        down = self.downstream
        if down.close is not None or self._down_failed or self._down_blind:
            return
        try:
            down.feed(data)
        except FrameError:
            self._down_failed = True
        if down.close is not None or self._down_failed:
            self._maybe_end_close()

    def _at_client_boundary(self) -> None:
        """What waited for a boundary toward the client is written now."""
        if self._close_to_client is not None:
            frame, self._close_to_client = self._close_to_client, None
            self.client.write(frame)
            self._down_done = self._down_close_sent = True
            self._ping_pending = None
            self._update_down()
            self._maybe_end_close()
            return
        if self._ping_pending is not None:
            payload, self._ping_pending = self._ping_pending, None
            self._update_down()
            if self._can_ping():
                self._write_ping(payload)

    def _fast_error_down(self, data: bytes, exc: FrameError) -> None:
        at = exc.offset
        if exc.code != CloseCode.MESSAGE_TOO_BIG:
            at = 0  # blind from here: the chunk goes on whole, in one write (_fast_error_up)
        elif at > 0:
            self.client.write(data[:at])
        clean = at >= 0
        if exc.code == CloseCode.MESSAGE_TOO_BIG:
            log.info("WebSocket{name}: backend message over maxMessageSize; closing with 1009 "
                     "({exc})", name=self._label(), exc=exc)
            self._down_failed = True
            if clean and not self._client_lost:
                self.client.write(build_close_frame(CloseCode.MESSAGE_TOO_BIG,
                                                    "message too big", mask=False))
                self._down_close_sent = True
            elif not self._client_lost:
                log.info("WebSocket{name}: the offending frame's header was already partly "
                         "relayed; the client's connection is closed without a close frame",
                         name=self._label())
            self._down_done = True
            self._close_to_client = None
            self._ping_pending = None
            self._update_down()
            self._begin_close(CloseCode.MESSAGE_TOO_BIG, "message too big")
            self._maybe_end_close()  # when a close was already under way
            return
        log.info("WebSocket frame error from the backend{name}: {exc}; relaying its bytes "
                 "without frame tracking", name=self._label(), exc=exc)
        self._down_blind = True
        self._stop_pings()
        if not self._client_lost:
            self.client.write(data[max(at, 0):])
        if self._close_to_client is not None:
            self._close_to_client = None
            self._down_done = True
        self._update_down()
        self._update_up()
        self._maybe_end_close()

    # -- ends -----------------------------------------------------------------------------------
    def client_read_closed(self) -> None:
        """The client will send nothing more (FIN, or the connection is gone)."""
        if self._client_read_closed:
            return
        self._client_read_closed = True
        self._stop_pings()  # no pong can come any more
        if not self._backend_lost and not self._up_done:
            if self._up_mode in (_FAST, _WATCH) and self.upstream.close is None and \
                    ((self.downstream.close is None and not self._down_blind)
                     or self._close_to_backend is not None) and \
                    self._cutter.at_boundary:
                frame = self._close_to_backend or build_close_frame(
                    CloseCode.GOING_AWAY, "client went away", mask=True)
                self.backend.write(frame)
                self._up_close_sent = True
                self._note_close(CloseCode.GOING_AWAY, "proxy")
            self._close_to_backend = None
            self._up_done = True
            self._update_up()
            if not self._backend_closed:
                _half_close(self.backend)
        self._maybe_close_both()

    def backend_read_closed(self) -> None:
        """The backend will send nothing more (FIN, or the connection is gone)."""
        if self._backend_read_closed:
            return
        self._backend_read_closed = True
        if not self._client_lost and not self._down_done:
            # Only when no closing handshake is under way: after the client's close frame a
            # backend that drops TCP has answered in its way, and the client sees just that.
            if self._down_mode in (_FAST, _WATCH) and self.downstream.close is None and \
                    ((self.upstream.close is None and not self._up_blind
                      and not self._up_failed) or self._close_to_client is not None) and \
                    self.downstream.at_frame_boundary:
                frame = self._close_to_client or build_close_frame(
                    CloseCode.BAD_GATEWAY, "backend went away", mask=False)
                self.client.write(frame)
                self._down_close_sent = True
                self._note_close(CloseCode.BAD_GATEWAY, "proxy")
            self._close_to_client = None
            self._ping_pending = None
            self._down_done = True
            self._update_down()
            if not self._client_closed:
                _half_close(self.client)
        self._maybe_close_both()

    def side_lost(self, side: str) -> None:
        """A transport is closed for good: nothing more can go either way on it."""
        if side == "client":
            self._client_lost = True
            self._down_done = True
            self._close_to_client = self._ping_pending = None
            self._update_down()
            self.client_read_closed()
            if self._closing:
                self._maybe_end_close()  # the backend may still owe its close answer
            else:
                self._close_backend()
        else:
            self._backend_lost = True
            self._up_done = True
            self._close_to_backend = None
            self._update_up()
            self.backend_read_closed()
            if self._closing:
                self._maybe_end_close()
            else:
                self._close_client()
        if self._client_lost and self._backend_lost:
            self._finish()

    @property
    def client_gone(self) -> bool:
        """The client's connection is closed while the backend's is still closing."""
        return self._client_lost and not self._finished

    def abort(self) -> None:
        """Cut whatever is still open (a drain's graceTimeOut is over)."""
        if not self._client_lost:
            self.client.abortConnection()
        if not self._backend_lost:
            self.backend.abortConnection()

    def _maybe_close_both(self) -> None:
        if self._client_read_closed and self._backend_read_closed:
            self._close_client()
            self._close_backend()
        else:
            self._maybe_end_close()

    def _close_client(self) -> None:
        if not self._client_closed:
            self._client_closed = True
            _close(self.client)

    def _close_backend(self) -> None:
        if not self._backend_closed:
            self._backend_closed = True
            _close(self.backend)

    def close(self, code: int, reason: str = "", *, timeout: float | None = None) -> None:
        """Close both sides with ``code`` at frame boundaries (shutdown, policy, a removed or
        unhealthy server).

        A direction that is in the middle of a frame is let through to the end of that frame,
        then gets its close frame; whatever follows is dropped, except that each side's stream
        is still followed for its answer: a side's TCP connection is closed once it answered
        with its own close frame or EOF. Whatever is left after ``timeout`` seconds
        (``close_timeout``, 2 s by default: no boundary reached, no answer, or a peer that does
        not read) is cut. The first close wins.
        """
        self._begin_close(code, reason, timeout)

    def _begin_close(self, code: int, reason: str, timeout: float | None = None) -> None:
        if self._closing or self._finished:
            return
        self._closing = True
        self._note_close(code, "proxy")
        self._idle_call = _cancel(self._idle_call)
        self._lifetime_call = _cancel(self._lifetime_call)
        self._stop_pings()
        if self.downstream.close is not None:
            self._down_close_sent = True  # the backend's own close went to the client
        if self.upstream.close is not None:
            self._up_close_sent = True
        if not self._down_done:
            if self._down_mode in (_FAST, _WATCH) and self.downstream.close is None:
                frame = build_close_frame(code, reason, mask=False)
                if self.downstream.at_frame_boundary:
                    self.client.write(frame)
                    self._down_done = self._down_close_sent = True
                else:
                    self._close_to_client = frame
            else:
                self._down_done = True
        if not self._up_done:
            if self._up_mode in (_FAST, _WATCH) and self.upstream.close is None:
                frame = build_close_frame(code, reason, mask=True)
                if self._cutter.at_boundary:
                    self.backend.write(frame)
                    self._cutter.held = b""
                    self._up_done = self._up_close_sent = True
                else:
                    self._close_to_backend = frame
            else:
                self._up_done = True
        self._update_up()
        self._update_down()
        self._close_wait = self.close_timeout if timeout is None else timeout
        self._close_call = self._reactor().callLater(self._close_wait, self._close_expired)
        self._maybe_end_close()

    def _maybe_end_close(self) -> None:
        """Each side's TCP connection is closed once it got its close frame and answered it
        (its own close frame, or EOF), as the closing handshake of RFC 6455 §7.1 wants.

        A side whose answer cannot be seen (its stream is no longer tracked) or that could not
        be sent a close frame gets a FIN instead and is read (and discarded) until its EOF:
        closing a socket with unread data would send a RST, which can destroy the close frame
        before the peer reads it.
        """
        if not self._closing:
            return
        if self._down_done and not self._client_closed:
            if self._down_close_sent and (self._client_read_closed
                                          or self.upstream.close is not None):
                self._close_client()
            elif self._client_read_closed or self._client_lost:
                self._close_client()
            elif not self._down_close_sent or self._up_failed or self._up_blind:
                self._linger(self.client)
        if self._up_done and not self._backend_closed:
            if self._up_close_sent and (self._backend_read_closed
                                        or self.downstream.close is not None):
                self._close_backend()
            elif self._backend_read_closed or self._backend_lost:
                self._close_backend()
            elif not self._up_close_sent or self._down_failed or self._down_blind:
                self._linger(self.backend)

    def _linger(self, transport: Any) -> None:
        """FIN after what is buffered; reading goes on until the peer's EOF (or the close
        timeout)."""
        if transport is self.client:
            if self._client_lingering:
                return
            self._client_lingering = True
        else:
            if self._backend_lingering:
                return
            self._backend_lingering = True
        _half_close(transport)

    def _close_expired(self) -> None:
        self._close_call = None
        if self._finished:
            return
        waiting = [what for what, pending in (("the backend", self._close_to_backend),
                                              ("the client", self._close_to_client)) if pending]
        log.info("WebSocket{name}: close not completed within {t:g}s{why}; cutting TCP",
                 name=self._label(), t=self._close_wait,
                 why=f" (no frame boundary toward {' and '.join(waiting)})" if waiting else "")
        self._close_to_backend = self._close_to_client = None
        self._up_done = self._down_done = True
        self._update_up()
        self._update_down()
        if not self._client_lost:
            self.client.abortConnection()
        if not self._backend_lost:
            self.backend.abortConnection()

    def _note_close(self, code: int, by: str) -> None:
        if self.stats.close_code is None:
            self.stats.close_code = code
            self.stats.closed_by = by

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        for name in ("_idle_call", "_ping_call", "_pong_call", "_lifetime_call",
                     "_close_call"):
            setattr(self, name, _cancel(getattr(self, name)))
        for pump in (self._up_pump, self._down_pump):
            if pump is not None:
                pump.close()
        self._up_pump = self._down_pump = None
        if self.stats.close_code is None:
            if self.upstream.close is not None:
                self.stats.close_code = self.upstream.close.code
                self.stats.closed_by = "client"
            elif self.downstream.close is not None:
                self.stats.close_code = self.downstream.close.code
                self.stats.closed_by = "backend"
        self.stats.client_messages = self.upstream.messages
        self.stats.backend_messages = self.downstream.messages
        if self.on_done is not None:
            self.on_done(self)


def _cancel(call: Any) -> Any:
    """Cancel a pending DelayedCall, if any; returns None, for ``self.x = _cancel(self.x)``."""
    if call is not None and call.active():
        call.cancel()
    return None


def _half_close(transport: Any) -> None:
    """Send FIN after what is buffered, keeping the reading side open."""
    transport.unregisterProducer()
    # TLS cannot half-close: looked up on a TLS transport, loseWriteConnection would reach the
    # TCP transport underneath and cut the TLS stream (wsgate.tls); close it whole instead.
    lose_write = None if isinstance(transport, TLSMemoryBIOProtocol) else \
        getattr(transport, "loseWriteConnection", None)
    if lose_write is not None:
        lose_write()
    else:
        transport.loseConnection()


def _close(transport: Any) -> None:
    # A registered, paused producer would keep Twisted from finishing the close.
    transport.unregisterProducer()
    transport.loseConnection()
