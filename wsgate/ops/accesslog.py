"""Traefik's access log: the same fields, the same ``common``/``genericCLF`` lines and JSON.

One entry per HTTP exchange (:meth:`AccessLog.request_done`) and one per WebSocket session,
written when the session ends (:meth:`AccessLog.websocket_closed`), as Traefik does. A session's
entry has status 101, ``Duration`` from the request to the end of the session,
``RequestContentSize``/``DownstreamContentSize`` the bytes each way after the 101, and, in
JSON, wsgate's ``WS*`` fields: messages and bytes each way, the close code and the side that
closed. The ``common`` and ``genericCLF`` lines keep Traefik's exact shape (log parsers depend
on it), so they carry no WebSocket extras.

Building an entry is pure (:func:`core_fields`, :func:`select_fields`, :func:`keep_entry`,
the ``format_*`` functions); :class:`AccessLog` is the observer that writes the lines, with
``bufferingSize`` lines held and written together.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import IO, TYPE_CHECKING, Any

from twisted.logger import Logger

from wsgate.ops.observer import Observer, RequestRecord, SessionRecord
from wsgate.ops.scope import Scope

if TYPE_CHECKING:
    from wsgate.config.runtime import RuntimeConfig
    from wsgate.config.static import AccessLog as AccessLogConfig
    from wsgate.config.static import StaticConfig

log = Logger()

COMMON = "common"
GENERIC_CLF = "genericCLF"
JSON = "json"
KEEP = "keep"
DROP = "drop"
REDACT = "redact"
REDACTED = "REDACTED"
#: Seconds a buffered line may wait before it is written (``bufferingSize`` > 0).
FLUSH_DELAY = 1.0

# Traefik's field names.
START_UTC = "StartUTC"
START_LOCAL = "StartLocal"
DURATION = "Duration"
ROUTER_NAME = "RouterName"
SERVICE_NAME = "ServiceName"
SERVICE_URL = "ServiceURL"
SERVICE_ADDR = "ServiceAddr"
CLIENT_ADDR = "ClientAddr"
CLIENT_HOST = "ClientHost"
CLIENT_PORT = "ClientPort"
CLIENT_USERNAME = "ClientUsername"
REQUEST_ADDR = "RequestAddr"
REQUEST_HOST = "RequestHost"
REQUEST_PORT = "RequestPort"
REQUEST_METHOD = "RequestMethod"
REQUEST_PATH = "RequestPath"
REQUEST_PROTOCOL = "RequestProtocol"
REQUEST_SCHEME = "RequestScheme"
REQUEST_CONTENT_SIZE = "RequestContentSize"
ORIGIN_DURATION = "OriginDuration"
ORIGIN_CONTENT_SIZE = "OriginContentSize"
ORIGIN_STATUS = "OriginStatus"
DOWNSTREAM_STATUS = "DownstreamStatus"
DOWNSTREAM_CONTENT_SIZE = "DownstreamContentSize"
REQUEST_COUNT = "RequestCount"
OVERHEAD = "Overhead"
RETRY_ATTEMPTS = "RetryAttempts"
TLS_VERSION = "TLSVersion"
TLS_CIPHER = "TLSCipher"
ENTRY_POINT_NAME = "entryPointName"
# wsgate's fields for a WebSocket session (JSON only).
WS_CLIENT_MESSAGES = "WSClientMessages"
WS_BACKEND_MESSAGES = "WSBackendMessages"
WS_CLIENT_BYTES = "WSClientBytes"
WS_BACKEND_BYTES = "WSBackendBytes"
WS_CLOSE_CODE = "WSCloseCode"
WS_CLOSED_BY = "WSClosedBy"
WS_DURATION = "WSDuration"
WS_HANDSHAKE_DURATION = "WSHandshakeDuration"

_NS = 1_000_000_000


# =========================================================================== settings

@dataclass(frozen=True)
class AccessLogSettings:
    """The ``accessLog`` options in the form the formatting functions use."""

    format: str = COMMON
    file_path: str = ""
    buffering_size: int = 0
    status_ranges: tuple[tuple[int, int], ...] = ()
    retry_attempts: bool = False
    min_duration: float = 0.0
    default_mode: str = KEEP
    #: Field name (lower case) -> keep | drop.
    names: Mapping[str, str] = field(default_factory=dict)
    header_default_mode: str = DROP
    #: Canonical header name -> keep | drop | redact.
    header_names: Mapping[str, str] = field(default_factory=dict)
    keep_query: bool = True

    @classmethod
    def from_config(cls, config: AccessLogConfig) -> AccessLogSettings:
        fields = config.fields
        return cls(
            format=config.format if config.format in (COMMON, GENERIC_CLF, JSON) else COMMON,
            file_path=config.file_path, buffering_size=max(0, config.buffering_size),
            status_ranges=parse_status_ranges(config.filters.status_codes),
            retry_attempts=config.filters.retry_attempts,
            min_duration=float(config.filters.min_duration),
            default_mode=fields.default_mode,
            names={k.lower(): v for k, v in fields.names.items()},
            header_default_mode=fields.headers.default_mode,
            header_names={canonical_header(k): v for k, v in fields.headers.names.items()},
            keep_query=fields.query_parameters.default_mode != DROP)

    @property
    def has_filters(self) -> bool:
        return bool(self.status_ranges) or self.retry_attempts or self.min_duration > 0

    def keep_field(self, name: str) -> bool:
        mode = self.names.get(name.lower(), self.default_mode)
        return mode != DROP

    def header_mode(self, canonical: str) -> str:
        return self.header_names.get(canonical, self.header_default_mode)

    @property
    def keeps_every_field(self) -> bool:
        return self.default_mode != DROP and all(m != DROP for m in self.names.values())

    @property
    def drops_every_header(self) -> bool:
        return self.header_default_mode == DROP and all(
            m == DROP for m in self.header_names.values())


def parse_status_ranges(codes: Iterable[str]) -> tuple[tuple[int, int], ...]:
    """``["200", "300-302"]`` -> ``((200, 200), (300, 302))``; bad items raise ValueError."""
    out = []
    for item in codes:
        low, sep, high = item.strip().partition("-")
        start = int(low.strip())
        end = int(high.strip()) if sep else start
        if end < start:
            raise ValueError(f"status code range {item!r} ends before it starts")
        out.append((start, end))
    return tuple(out)


def keep_entry(settings: AccessLogSettings, status: int, retry_attempts: int,
               duration: float) -> bool:
    """Traefik's filters: with none set every entry is kept, else any match keeps it."""
    if not settings.has_filters:
        return True
    if any(low <= status <= high for low, high in settings.status_ranges):
        return True
    if settings.retry_attempts and retry_attempts > 0:
        return True
    return settings.min_duration > 0 and duration > settings.min_duration


# =========================================================================== fields

@functools.lru_cache(maxsize=4096)
def canonical_header(name: str) -> str:
    """Go's canonical MIME header key: ``x-forwarded-for`` -> ``X-Forwarded-For``."""
    if not name or any(c in name for c in " \t\r\n:"):
        return name
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def _split_host_port(value: str) -> tuple[str, str]:
    """Like Go's net.SplitHostPort, with Traefik's fallback: (value, "-") when no port."""
    if value.startswith("["):
        end = value.find("]")
        if end != -1 and value[end + 1:end + 2] == ":":
            return value[1:end], value[end + 2:]
        return value, "-"
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        return host, port
    return value, "-"


def _join_host_port(host: str, port: int | str) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _service_addr(url: str) -> str:
    rest = url.split("://", 1)[1] if "://" in url else url
    return rest.split("/", 1)[0].rsplit("@", 1)[-1]


def _drop_query(path: str) -> str:
    return path.partition("?")[0]


def core_fields(record: RequestRecord, settings: AccessLogSettings, *, request_count: int,
                duration: float | None = None) -> dict[str, Any]:
    """Every field Traefik computes for a request (before ``fields`` keeps or drops them).

    Durations are integer nanoseconds, as Traefik writes them.
    """
    total = record.duration if duration is None else duration
    total_ns = round(total * _NS)
    start = record.start
    fields: dict[str, Any] = {
        START_UTC: start,
        START_LOCAL: start,
        DURATION: total_ns,
        REQUEST_METHOD: record.method,
        REQUEST_PATH: record.path if settings.keep_query else _drop_query(record.path),
        REQUEST_PROTOCOL: f"HTTP/{record.http_version}",
        REQUEST_SCHEME: "https" if record.tls else "http",
        REQUEST_CONTENT_SIZE: record.request_bytes,
        DOWNSTREAM_STATUS: record.status,
        DOWNSTREAM_CONTENT_SIZE: record.response_bytes,
        RETRY_ATTEMPTS: record.retry_attempts,
        REQUEST_COUNT: request_count,
        CLIENT_USERNAME: record.username or "-",
        ENTRY_POINT_NAME: record.entrypoint,
    }
    if record.client_ip:
        fields[CLIENT_ADDR] = (_join_host_port(record.client_ip, record.client_port)
                               if record.client_port else record.client_ip)
        fields[CLIENT_HOST] = record.client_ip
        fields[CLIENT_PORT] = str(record.client_port) if record.client_port else "-"
    if record.forwarded_for:
        # Traefik logs a trusted client's X-Forwarded-For as ClientHost.
        fields[CLIENT_HOST] = record.forwarded_for
    if record.host:
        fields[REQUEST_ADDR] = record.host
        fields[REQUEST_HOST], fields[REQUEST_PORT] = _split_host_port(record.host)
    if record.router:
        fields[ROUTER_NAME] = record.router
    if record.service:
        fields[SERVICE_NAME] = record.service
    if record.server_url:
        fields[SERVICE_URL] = record.server_url
        fields[SERVICE_ADDR] = _service_addr(record.server_url)
    if record.tls:
        if record.tls_version:
            fields[TLS_VERSION] = record.tls_version
        if record.tls_cipher:
            fields[TLS_CIPHER] = record.tls_cipher
    overhead = total_ns
    if record.origin_status:
        fields[ORIGIN_STATUS] = record.origin_status
    if record.origin_duration is not None:
        origin_ns = round(record.origin_duration * _NS)
        fields[ORIGIN_DURATION] = origin_ns
        overhead = total_ns - origin_ns
    if record.origin_bytes is not None:
        fields[ORIGIN_CONTENT_SIZE] = record.origin_bytes
    fields[OVERHEAD] = overhead
    return fields


def session_fields(session: SessionRecord, settings: AccessLogSettings, *,
                   request_count: int) -> dict[str, Any]:
    """The entry of a WebSocket session that ended."""
    record = session.request
    total = max(record.duration, 0.0) + max(session.duration, 0.0)
    fields = core_fields(record, settings, request_count=request_count, duration=total)
    fields[DOWNSTREAM_STATUS] = record.status or 101
    fields[REQUEST_CONTENT_SIZE] = session.client_bytes
    fields[DOWNSTREAM_CONTENT_SIZE] = session.backend_bytes
    fields[WS_CLIENT_MESSAGES] = session.client_messages
    fields[WS_BACKEND_MESSAGES] = session.backend_messages
    fields[WS_CLIENT_BYTES] = session.client_bytes
    fields[WS_BACKEND_BYTES] = session.backend_bytes
    fields[WS_CLOSE_CODE] = session.close_code if session.close_code is not None else 1006
    fields[WS_CLOSED_BY] = session.closed_by or "unknown"
    fields[WS_DURATION] = round(max(session.duration, 0.0) * _NS)
    fields[WS_HANDSHAKE_DURATION] = round(max(record.duration, 0.0) * _NS)
    return fields


def _grouped_headers(headers: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in headers:
        out.setdefault(canonical_header(key), []).append(value)
    return out


def select_fields(core: Mapping[str, Any], settings: AccessLogSettings, *,
                  request_headers: Sequence[tuple[str, str]] = (),
                  response_headers: Sequence[tuple[str, str]] = ()) -> dict[str, Any]:
    """Apply ``fields``: keep or drop each field, keep, drop or redact each header.

    Headers become ``request_<Name>`` and ``downstream_<Name>`` fields, values joined by ",".
    """
    if settings.keeps_every_field:
        out = dict(core)
    else:
        out = {k: v for k, v in core.items() if settings.keep_field(k)}
    if settings.drops_every_header:
        return out
    for prefix, headers in (("request_", request_headers),
                            ("downstream_", response_headers)):
        if not headers:
            continue
        for name, values in _grouped_headers(headers).items():
            mode = settings.header_mode(name)
            if mode == KEEP:
                out[prefix + name] = ",".join(values)
            elif mode == REDACT:
                out[prefix + name] = REDACTED
    return out


# =========================================================================== formats

def clf_time(ts: float) -> str:
    """``02/Jan/2006:15:04:05 +0000`` in UTC, as Traefik prints StartUTC."""
    return time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(ts))


def rfc3339_nano(ts: float, *, local: bool = False) -> str:
    """Go's RFC3339Nano for a Unix time: trailing zeros of the fraction trimmed, ``Z`` for
    UTC (also for a local zone at offset zero), else ``+hh:mm``. A float Unix time holds
    about a microsecond of precision, so the fraction is rounded to microseconds."""
    ns = round(ts * 1_000_000) * 1_000
    seconds, frac = divmod(ns, _NS)
    whole, zone = _seconds_text(seconds, local)
    if frac:
        return f"{whole}.{frac:09d}".rstrip("0") + zone
    return whole + zone


@functools.lru_cache(maxsize=16)
def _seconds_text(seconds: int, local: bool) -> tuple[str, str]:
    moment = datetime.fromtimestamp(seconds, UTC)
    if local:
        moment = moment.astimezone()
    return moment.strftime("%Y-%m-%dT%H:%M:%S"), _zone(moment.utcoffset())


def rfc3339(ts: float) -> str:
    """Go's RFC3339 (whole seconds) in local time: logrus's ``time`` field."""
    return _rfc3339_second(int(ts))


@functools.lru_cache(maxsize=8)
def _rfc3339_second(second: int) -> str:
    moment = datetime.fromtimestamp(second, UTC).astimezone()
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + _zone(moment.utcoffset())


def _zone(offset: timedelta | None) -> str:
    if not offset:
        return "Z"
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    minutes = abs(minutes)
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _plain(fields: Mapping[str, Any], key: str) -> str:
    value = fields.get(key)
    if value is None or value == "":
        return "-"
    return str(value)


def _quoted(fields: Mapping[str, Any], key: str) -> str:
    value = fields.get(key)
    if value is None or value == "":
        return '"-"'
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    return str(value)


def _clf_head(fields: Mapping[str, Any]) -> str:
    start = fields.get(START_UTC, fields.get(START_LOCAL))
    stamp = clf_time(start) if isinstance(start, (int, float)) else "-"
    return (f"{_plain(fields, CLIENT_HOST)} - {_plain(fields, CLIENT_USERNAME)} [{stamp}] "
            f'"{_plain(fields, REQUEST_METHOD)} {_plain(fields, REQUEST_PATH)} '
            f'{_plain(fields, REQUEST_PROTOCOL)}" {_quoted(fields, DOWNSTREAM_STATUS)} '
            f"{_quoted(fields, DOWNSTREAM_CONTENT_SIZE)} "
            f"{_quoted(fields, 'request_Referer')} {_quoted(fields, 'request_User-Agent')}")


def format_common(fields: Mapping[str, Any]) -> str:
    """Traefik's common line: CLF, then the request count, router, server URL and duration::

        <client> - <user> [<time>] "<method> <path> <proto>" <status> <size> "<referer>"
        "<user agent>" <count> "<router>" "<server URL>" <duration>ms
    """
    duration = fields.get(DURATION)
    millis = int(duration) // 1_000_000 if isinstance(duration, int) else 0
    return (f"{_clf_head(fields)} {_quoted(fields, REQUEST_COUNT)} "
            f"{_quoted(fields, ROUTER_NAME)} {_quoted(fields, SERVICE_URL)} {millis}ms")


def format_generic_clf(fields: Mapping[str, Any]) -> str:
    """The plain Combined Log Format line (``genericCLF``)."""
    return _clf_head(fields)


def format_json(fields: Mapping[str, Any], *, now: float) -> str:
    """One JSON object, keys sorted, with logrus's ``level``, ``msg`` and ``time``."""
    out: dict[str, Any] = {}
    for key, value in fields.items():
        if key == START_UTC and isinstance(value, (int, float)):
            value = rfc3339_nano(value)
        elif key == START_LOCAL and isinstance(value, (int, float)):
            value = rfc3339_nano(value, local=True)
        out[key] = value
    out["level"] = "info"
    out["msg"] = ""
    out["time"] = rfc3339(now)
    return json.dumps(out, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def format_entry(fields: Mapping[str, Any], settings: AccessLogSettings, *,
                 now: float) -> str:
    if settings.format == JSON:
        return format_json(fields, now=now)
    if settings.format == GENERIC_CLF:
        return format_generic_clf(fields)
    return format_common(fields)


# =========================================================================== writer

class AccessLog(Observer):
    """Writes one line per exchange and per WebSocket session to a file or standard output.

    With ``bufferingSize`` N > 0, up to N lines are held and written together, and a held
    line waits at most :data:`FLUSH_DELAY` seconds. ``reopen()`` reopens the file (after
    rotation, e.g. on SIGUSR1 as Traefik does).
    """

    keeps_session_headers = True  # header fields and the common format's referer and agent

    def __init__(self, settings: AccessLogSettings, *, scope: Scope | None = None,
                 stream: IO[str] | None = None, reactor: Any = None,
                 clock: Any = time.time) -> None:
        self.settings = settings
        self.scope = scope or Scope({}, add_internals=False, switch="access_logs")
        self.clock = clock
        self.reactor = reactor
        self._own_stream = stream is None and bool(settings.file_path)
        self.stream: IO[str] = stream if stream is not None else self._open()
        self.count = itertools.count(1)
        self.pending: list[str] = []
        self._timer: Any = None
        self._failed = False

    @classmethod
    def from_static(cls, static: StaticConfig, **kwargs: Any) -> AccessLog | None:
        config = static.access_log
        if config is None:
            return None
        scope = Scope.from_static(static, add_internals=config.add_internals,
                                  switch="access_logs")
        return cls(AccessLogSettings.from_config(config), scope=scope, **kwargs)

    def _open(self) -> IO[str]:
        path = self.settings.file_path
        if not path:
            return sys.stdout
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, mode=0o755, exist_ok=True)
        return open(path, "a", encoding="utf-8")

    def reopen(self) -> None:
        self.flush()
        if self._own_stream:
            self.stream.close()
            self.stream = self._open()

    # -- observer -------------------------------------------------------------------------------
    def request_done(self, record: RequestRecord) -> None:
        count = next(self.count)
        if not self.scope.records(record.entrypoint, record.router, record.service):
            return
        if not keep_entry(self.settings, record.status, record.retry_attempts,
                          record.duration):
            return
        core = core_fields(record, self.settings, request_count=count)
        self._emit(core, record)

    def websocket_closed(self, session: SessionRecord) -> None:
        count = next(self.count)
        record = session.request
        if not self.scope.records(record.entrypoint, record.router, record.service):
            return
        total = max(record.duration, 0.0) + max(session.duration, 0.0)
        if not keep_entry(self.settings, record.status or 101, record.retry_attempts, total):
            return
        core = session_fields(session, self.settings, request_count=count)
        self._emit(core, record)

    def runtime_changed(self, runtime: RuntimeConfig) -> None:
        self.scope.runtime_changed(runtime)

    def close(self) -> None:
        self.flush()
        if self._own_stream:
            self.stream.close()

    # -- writing --------------------------------------------------------------------------------
    def _emit(self, core: Mapping[str, Any], record: RequestRecord) -> None:
        fields = select_fields(core, self.settings, request_headers=record.headers,
                               response_headers=record.response_headers)
        line = format_entry(fields, self.settings, now=self.clock())
        if self.settings.buffering_size <= 0:
            self._write([line])
            return
        self.pending.append(line)
        if len(self.pending) >= self.settings.buffering_size:
            self.flush()
        elif self._timer is None and self.reactor is not None:
            self._timer = self.reactor.callLater(FLUSH_DELAY, self._flush_later)

    def _flush_later(self) -> None:
        self._timer = None
        self.flush()

    def flush(self) -> None:
        if self._timer is not None:
            if self._timer.active():
                self._timer.cancel()
            self._timer = None
        if self.pending:
            lines, self.pending = self.pending, []
            self._write(lines)

    def _write(self, lines: list[str]) -> None:
        try:
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()
        except (OSError, ValueError) as exc:
            # Logged once per failure streak, so a full disk does not flood wsgate's own log.
            if not self._failed:
                log.error("cannot write the access log to {where}: {exc}",
                          where=self.settings.file_path or "standard output", exc=exc)
            self._failed = True
            return
        self._failed = False


__all__ = [
    "COMMON", "GENERIC_CLF", "JSON", "AccessLog", "AccessLogSettings", "canonical_header",
    "clf_time", "core_fields", "format_common", "format_entry", "format_generic_clf",
    "format_json", "keep_entry", "parse_status_ranges", "rfc3339", "rfc3339_nano",
    "select_fields", "session_fields",
]
