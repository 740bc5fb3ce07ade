"""Incremental, strict HTTP/1.1 head parsers (sans-I/O).

Pure Python on purpose: a head is validated with a few C-level passes (``bytes.find``,
``str.count``, one ``re.findall``) rather than per-header callbacks; measured faster than
httptools on realistic heads (bench/micro_http_head.py) and every strictness rule is ours.

Framing is never guessed (RFC 9112 §6.3, §11.2): Content-Length with Transfer-Encoding,
conflicting Content-Length values, obsolete line folding, bare LF or CR, whitespace before the
colon and invalid characters are all rejected with a status and the rule broken.
"""

from __future__ import annotations

import re
from typing import NoReturn

from wsgate.http.errors import HTTPParseError
from wsgate.http.head import BodyKind, Headers, RequestHead, ResponseHead

DEFAULT_MAX_HEAD_BYTES = 1 << 20
"""Traefik's entryPoint ``http.maxHeaderBytes`` default (Go's http.DefaultMaxHeaderBytes)."""

DEFAULT_MAX_HEADERS = 100
"""Header fields per head; Apache's LimitRequestFields default. Browsers send 10–25."""

MAX_CONTENT_LENGTH = (1 << 63) - 1

_TCHAR = "!#$%&'*+\\-.^_`|~0-9A-Za-z"
_REQUEST_LINE = re.compile(f"([{_TCHAR}]+) ([\\x21-\\x7e\\x80-\\xff]+) HTTP/([0-9])\\.([0-9])")
_STATUS_LINE = re.compile("HTTP/([0-9])\\.([0-9]) ([0-9]{3})(?: ([\\t\\x20-\\x7e\\x80-\\xff]*))?")
# One field line: token ":" OWS value CRLF. Anchored at line starts, so a bad line can never be
# matched from its middle; the caller checks that every line matched. Greedy on purpose (a lazy
# value costs 3x) and possessive (no backtracking state): trailing OWS, rare, is stripped after.
_FIELD_LINE = re.compile(
    f"^([{_TCHAR}]++):[ \\t]*+([\\t\\x20-\\x7e\\x80-\\xff]*+)\\r\\n", re.MULTILINE
)
_TOKEN = re.compile(f"[{_TCHAR}]+")
_VALUE = re.compile("[\\t\\x20-\\x7e\\x80-\\xff]*")
_TARGET = re.compile("[\\x21-\\x7e\\x80-\\xff]+")
# Go's httpguts.ValidHostHeader byte set: reg-name, IP literals, port.
_HOST = re.compile("[A-Za-z0-9!$%&'()*+,\\-.:;=\\[\\]_~]*")
_SCHEME = re.compile("[A-Za-z][A-Za-z0-9+.\\-]*://")
_BAD_PERCENT = re.compile("%(?![0-9A-Fa-f]{2})")
_TOKEN_BYTES = frozenset(
    b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

_REQUEST_SPECIAL = frozenset(
    ("host", "content-length", "transfer-encoding", "connection", "upgrade", "expect")
)
_RESPONSE_SPECIAL = frozenset(("content-length", "transfer-encoding", "connection", "upgrade"))


# -- shared helpers ---------------------------------------------------------------------------


def _split_fields(block: str, status: int, max_headers: int) -> Headers:
    """Field lines of a head (each ending in CRLF) as (name, value) pairs, strictly."""
    if not block:
        return ()
    # Every match holds exactly one LF, at its end, and starts at a line start: so all lines are
    # valid (and no LF is bare) exactly when there are as many matches as LFs.
    n = block.count("\n")
    if n > max_headers:
        raise HTTPParseError(
            431 if status == 400 else status, f"more than {max_headers} header fields"
        )
    pairs = _FIELD_LINE.findall(block)
    if len(pairs) != n or block[-1] != "\n":
        _diagnose_fields(block, status)
    if " \r\n" in block or "\t\r\n" in block:
        return tuple([(k, v.rstrip(" \t")) for k, v in pairs])
    return tuple(pairs)


def _diagnose_fields(block: str, status: int) -> NoReturn:
    """Slow path: say which rule the first bad field line breaks."""
    if "\n" in block.replace("\r\n", ""):
        raise HTTPParseError(status, "bare LF line ending (RFC 9112 §2.2: CRLF required)")
    for line in block.split("\r\n"):
        if not line:
            continue
        if line[0] in " \t":
            raise HTTPParseError(status, "obsolete line folding (RFC 9112 §5.2)")
        name, colon, value = line.partition(":")
        if not colon:
            raise HTTPParseError(status, f"header line without a colon: {line[:40]!r}")
        if not name:
            raise HTTPParseError(status, "empty header name")
        if name != name.rstrip(" \t"):
            raise HTTPParseError(
                status, f"whitespace between header name and colon (RFC 9112 §5.1): {name!r}"
            )
        if not _TOKEN.fullmatch(name):
            raise HTTPParseError(status, f"invalid character in header name {name[:40]!r}")
        if not _VALUE.fullmatch(value):
            what = "bare CR" if "\r" in value else "control character"
            raise HTTPParseError(
                status, f"invalid {what} in the value of header {name!r} (RFC 9110 §5.5)"
            )
    raise HTTPParseError(status, "malformed header section")


def _content_length(values: list[str], status: int) -> int:
    """One Content-Length out of possibly repeated fields or a list of identical values."""
    first: str | None = None
    for value in values:
        for part in value.split(","):
            part = part.strip(" \t")
            if not (part.isascii() and part.isdigit()):
                raise HTTPParseError(status, f"invalid Content-Length {value!r}")
            if first is None:
                first = part
            elif part != first:
                raise HTTPParseError(status, f"conflicting Content-Length values {values!r}")
    if first is None:
        raise HTTPParseError(status, "empty Content-Length")
    length = int(first)
    if length > MAX_CONTENT_LENGTH:
        raise HTTPParseError(status, f"Content-Length too large: {first}")
    return length


def _tokens(values: list[str]) -> tuple[str, ...]:
    out = []
    for value in values:
        for part in value.split(","):
            part = part.strip(" \t").lower()
            if part:
                out.append(part)
    return tuple(out)


def _host_from_authority(authority: str) -> str:
    """Host[:port] of a URI authority, userinfo dropped."""
    return authority.rpartition("@")[2]


def _find_head_end(buf: bytearray, scan_from: int, status: int) -> int:
    """Index of the CRLFCRLF ending a buffered head, or -1; rejects bare LF as soon as seen."""
    end = buf.find(b"\r\n\r\n", scan_from)
    stop = end if end != -1 else len(buf)
    i = buf.find(b"\n", scan_from, stop)
    while i != -1:
        if i == 0 or buf[i - 1] != 13:
            raise HTTPParseError(status, "bare LF line ending (RFC 9112 §2.2: CRLF required)")
        i = buf.find(b"\n", i + 1, stop)
    return end


class _HeadBuffer:
    """Accumulates a head across feeds; shared by the request and response parsers."""

    __slots__ = ("_buf", "_error", "max_head_bytes", "max_headers")

    _status = 400
    _too_large_status = 431

    def __init__(
        self, max_head_bytes: int = DEFAULT_MAX_HEAD_BYTES, max_headers: int = DEFAULT_MAX_HEADERS
    ) -> None:
        self.max_head_bytes = max_head_bytes
        self.max_headers = max_headers
        self._buf = bytearray()
        self._error: HTTPParseError | None = None

    @property
    def buffered(self) -> int:
        """Bytes of an incomplete head held so far (0 between messages)."""
        return len(self._buf)

    def _fail(self, exc: HTTPParseError) -> HTTPParseError:
        self._error = exc
        self._buf = bytearray()
        return exc

    def _locate(self, data: bytes) -> tuple[bytes, int, int] | None:
        """Find a complete head: (bytes holding it, start, index of CRLFCRLF) or None."""
        if self._error is not None:
            raise self._error
        buf = self._buf
        if not buf:
            # Fast path: the whole head arrived in this chunk (the usual case), no copy.
            end = data.find(b"\r\n\r\n")
            if end > 0 and data[0] != 13:
                if end + 4 > self.max_head_bytes:
                    raise self._fail(
                        HTTPParseError(self._too_large_status, "head larger than the limit")
                    )
                return data, 0, end
            scan = 0
        else:
            scan = max(0, len(buf) - 3)
        buf += data
        try:
            # Skip empty lines before the start line (RFC 9112 §2.2).
            skip = 0
            while buf.startswith(b"\r\n", skip):
                skip += 2
            if skip:
                del buf[:skip]
                scan = max(0, scan - skip)
            if not buf or buf == b"\r":
                return None
            first = buf[0]
            if first == 13:
                raise HTTPParseError(self._status, "bare CR before the start line")
            if first == 10:
                raise HTTPParseError(
                    self._status, "bare LF line ending (RFC 9112 §2.2: CRLF required)"
                )
            if first not in _TOKEN_BYTES:
                raise HTTPParseError(self._status, self._bad_start(first))
            end = _find_head_end(buf, scan, self._status)
            if end == -1:
                if len(buf) > self.max_head_bytes:
                    raise HTTPParseError(self._too_large_status, "head larger than the limit")
                return None
            if end + 4 > self.max_head_bytes:
                raise HTTPParseError(self._too_large_status, "head larger than the limit")
        except HTTPParseError as exc:
            raise self._fail(exc) from None
        whole = bytes(buf)
        self._buf = bytearray()
        return whole, 0, end

    def _bad_start(self, first: int) -> str:
        if first == 0x16:
            return "TLS handshake received where plain HTTP was expected"
        return f"message does not start with a token (byte 0x{first:02x})"


# -- requests ---------------------------------------------------------------------------------


class RequestHeadParser(_HeadBuffer):
    """Feed bytes from a client; get ``(RequestHead, leftover)`` once a whole head is in.

    ``leftover`` is everything after the head in the bytes fed so far: body, the next pipelined
    request or early WebSocket frames; it is never dropped. The parser resets after each head so
    it can be fed the leftover (once the body is dealt with) for the next request. After an
    error it stays failed.
    """

    __slots__ = ()

    def feed(self, data: bytes) -> tuple[RequestHead, bytes] | None:
        found = self._locate(data)
        if found is None:
            return None
        buf, start, end = found
        try:
            head = parse_request_head(buf[start : end + 2], self.max_headers)
        except HTTPParseError as exc:
            raise self._fail(exc) from None
        return head, buf[end + 4 :]


def parse_request_head(raw: bytes, max_headers: int = DEFAULT_MAX_HEADERS) -> RequestHead:
    """Parse a complete request head: start line and field lines, each ending in CRLF, without
    the final empty line (a trailing ``\\r\\n\\r\\n`` is tolerated)."""
    if raw.endswith(b"\r\n\r\n"):
        raw = raw[:-2]
    text = raw.decode("latin-1")
    eol = text.find("\r\n")
    if eol == -1:
        raise HTTPParseError(400, "request line not terminated by CRLF")
    line = text[:eol]
    m = _REQUEST_LINE.fullmatch(line)
    if m is None:
        _diagnose_request_line(line)
    method, target, major, minor = m.groups()
    if major != "1":
        raise HTTPParseError(505, f"HTTP version {major}.{minor} not supported")
    version = "1.0" if minor == "0" else "1.1"
    return build_request_head(
        method, target, version, _split_fields(text[eol + 2 :], 400, max_headers)
    )


def build_request_head(method: str, target: str, version: str, headers: Headers) -> RequestHead:
    """Validate framing, Host and target of a tokenised request and derive the head."""
    host: str | None = None
    lengths: list[str] | None = None
    codings: list[str] | None = None
    conn: list[str] | None = None
    upgrade: str | None = None
    expect: str | None = None
    special = _REQUEST_SPECIAL
    for name, value in headers:
        lname = name.lower()
        if lname not in special:
            continue
        if lname == "host":
            if host is not None:
                raise HTTPParseError(400, "more than one Host header (RFC 9112 §3.2)")
            host = value
        elif lname == "content-length":
            if lengths is None:
                lengths = [value]
            else:
                lengths.append(value)
        elif lname == "transfer-encoding":
            if codings is None:
                codings = [value]
            else:
                codings.append(value)
        elif lname == "connection":
            if conn is None:
                conn = [value]
            else:
                conn.append(value)
        elif lname == "upgrade":
            upgrade = value if upgrade is None else f"{upgrade}, {value}"
        else:  # expect
            expect = value if expect is None else f"{expect}, {value}"

    # Target form (RFC 9112 §3.2).
    first = target[0]
    if first == "/":
        form = "origin"
        if "%" in target and _BAD_PERCENT.search(target.partition("?")[0]):
            raise HTTPParseError(400, "invalid percent-encoding in the request path")
    elif method == "CONNECT":
        form = "authority"
    elif target == "*":
        if method != "OPTIONS":
            raise HTTPParseError(400, "asterisk-form target is only valid for OPTIONS")
        form = "asterisk"
    elif _SCHEME.match(target):
        form = "absolute"
    else:
        raise HTTPParseError(400, f"invalid request target {target[:60]!r}")

    if host is None:
        if version == "1.1" and form != "authority":
            raise HTTPParseError(400, "missing Host header (RFC 9112 §3.2)")
        host = ""
    elif not _HOST.fullmatch(host):
        raise HTTPParseError(400, f"invalid Host header {host[:60]!r}")
    if form == "absolute":
        rest = target.split("://", 1)[1]
        authority = re.split("[/?#]", rest, maxsplit=1)[0]
        host = _host_from_authority(authority)
        if not host or not _HOST.fullmatch(host):
            raise HTTPParseError(400, f"invalid authority in absolute-form target {target[:60]!r}")
        path = rest[len(authority) :].partition("?")[0]
        if "%" in path and _BAD_PERCENT.search(path):
            raise HTTPParseError(400, "invalid percent-encoding in the request path")
    elif form == "authority":
        if not _HOST.fullmatch(target) or ":" not in target:
            raise HTTPParseError(400, f"invalid CONNECT target {target[:60]!r}")
        host = target

    if "#" in target:
        raise HTTPParseError(400, "fragment in request target")

    content_length: int | None = None
    chunked = False
    if codings is not None:
        if lengths is not None:
            raise HTTPParseError(
                400, "both Content-Length and Transfer-Encoding (RFC 9112 §6.1: smuggling risk)"
            )
        if version == "1.0":
            raise HTTPParseError(400, "Transfer-Encoding in an HTTP/1.0 request (RFC 9112 §6.1)")
        tokens = _tokens(codings)
        if not tokens or tokens[-1] != "chunked":
            raise HTTPParseError(
                400, "Transfer-Encoding whose final coding is not chunked (RFC 9112 §6.3)"
            )
        if "chunked" in tokens[:-1]:
            raise HTTPParseError(400, "chunked applied more than once (RFC 9112 §7)")
        if len(tokens) > 1:
            raise HTTPParseError(501, f"unsupported transfer coding {tokens[0]!r}")
        chunked = True
    elif lengths is not None:
        content_length = _content_length(lengths, 400)

    expects_continue = False
    if expect is not None:
        if expect.strip(" \t").lower() != "100-continue":
            raise HTTPParseError(417, f"unsupported expectation {expect[:60]!r}")
        expects_continue = version == "1.1"

    return RequestHead(
        method,
        target,
        version,
        headers,
        host,
        content_length,
        chunked,
        _tokens(conn) if conn is not None else (),
        upgrade,
        expects_continue,
        form,
    )


def _diagnose_request_line(line: str) -> NoReturn:
    if "\n" in line:
        raise HTTPParseError(400, "bare LF line ending (RFC 9112 §2.2: CRLF required)")
    if "\r" in line:
        raise HTTPParseError(400, "bare CR in request line")
    parts = line.split(" ")
    if len(parts) != 3:
        raise HTTPParseError(
            400, f"request line is not 'method SP target SP version': {line[:80]!r}"
        )
    method, target, version = parts
    if not _TOKEN.fullmatch(method):
        raise HTTPParseError(400, f"invalid method token {method[:40]!r}")
    if not _TARGET.fullmatch(target):
        raise HTTPParseError(400, "invalid character in request target")
    vm = re.fullmatch("HTTP/([0-9]+)\\.([0-9]+)", version)
    if vm is not None and vm.group(1) != "1":
        raise HTTPParseError(505, f"HTTP version {version[5:]} not supported")
    raise HTTPParseError(400, f"malformed HTTP version {version[:20]!r}")


# -- responses --------------------------------------------------------------------------------


class ResponseHeadParser(_HeadBuffer):
    """Feed bytes from a backend; get ``(ResponseHead, leftover)`` for each head.

    Interim 1xx heads (100 Continue, 103 Early Hints) come out one at a time: relay them and feed
    the leftover again for the final head. After a 101 the leftover is the new protocol's bytes.
    Errors carry status 502 (the proxy's answer to a bad backend).
    """

    __slots__ = ("request_method",)

    _status = 502
    _too_large_status = 502

    def __init__(
        self,
        request_method: str = "GET",
        max_head_bytes: int = DEFAULT_MAX_HEAD_BYTES,
        max_headers: int = DEFAULT_MAX_HEADERS,
    ) -> None:
        super().__init__(max_head_bytes, max_headers)
        self.request_method = request_method

    def feed(self, data: bytes) -> tuple[ResponseHead, bytes] | None:
        found = self._locate(data)
        if found is None:
            return None
        buf, start, end = found
        try:
            head = parse_response_head(buf[start : end + 2], self.request_method, self.max_headers)
        except HTTPParseError as exc:
            raise self._fail(exc) from None
        return head, buf[end + 4 :]


def parse_response_head(
    raw: bytes, request_method: str = "GET", max_headers: int = DEFAULT_MAX_HEADERS
) -> ResponseHead:
    """Parse a complete response head (status line and field lines, each ending in CRLF)."""
    if raw.endswith(b"\r\n\r\n"):
        raw = raw[:-2]
    text = raw.decode("latin-1")
    eol = text.find("\r\n")
    if eol == -1:
        raise HTTPParseError(502, "status line not terminated by CRLF")
    line = text[:eol]
    m = _STATUS_LINE.fullmatch(line)
    if m is None:
        if "\n" in line:
            raise HTTPParseError(502, "bare LF line ending in the backend's status line")
        raise HTTPParseError(502, f"malformed status line {line[:80]!r}")
    major, minor, code, reason = m.groups()
    if major != "1":
        raise HTTPParseError(502, f"backend answered with HTTP version {major}.{minor}")
    status = int(code)
    if status < 100:
        raise HTTPParseError(502, f"invalid status code {code}")
    version = "1.0" if minor == "0" else "1.1"
    headers = _split_fields(text[eol + 2 :], 502, max_headers)

    lengths: list[str] | None = None
    codings: list[str] | None = None
    conn: list[str] | None = None
    upgrade: str | None = None
    special = _RESPONSE_SPECIAL
    for name, value in headers:
        lname = name.lower()
        if lname not in special:
            continue
        if lname == "content-length":
            lengths = [value] if lengths is None else [*lengths, value]
        elif lname == "transfer-encoding":
            codings = [value] if codings is None else [*codings, value]
        elif lname == "connection":
            conn = [value] if conn is None else [*conn, value]
        else:
            upgrade = value if upgrade is None else f"{upgrade}, {value}"

    content_length: int | None = None
    chunked = False
    if codings is not None:
        if lengths is not None:
            raise HTTPParseError(502, "backend sent both Content-Length and Transfer-Encoding")
        tokens = _tokens(codings)
        if tokens != ("chunked",):
            raise HTTPParseError(502, f"unsupported Transfer-Encoding from backend {codings!r}")
        chunked = True
    elif lengths is not None:
        content_length = _content_length(lengths, 502)

    if (
        status < 200
        or status == 204
        or status == 304
        or request_method == "HEAD"
        or (request_method == "CONNECT" and 200 <= status < 300)
    ):
        kind = BodyKind.NONE
    elif chunked:
        kind = BodyKind.CHUNKED
    elif content_length is not None:
        kind = BodyKind.LENGTH if content_length else BodyKind.NONE
    else:
        kind = BodyKind.UNTIL_CLOSE

    return ResponseHead(
        status,
        reason or "",
        version,
        headers,
        content_length,
        chunked,
        _tokens(conn) if conn is not None else (),
        upgrade,
        kind,
    )
