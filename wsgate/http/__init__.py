"""Sans-I/O HTTP/1.1 for a proxy: strict head parsing, body framing, forwarding rewrites."""

from wsgate.http.body import BodyReader
from wsgate.http.errors import HTTPParseError
from wsgate.http.forwarding import (
    forward_target,
    is_managed_x_header,
    is_trusted,
    parse_trusted_ips,
    rewrite_request_head,
    rewrite_response_headers,
)
from wsgate.http.head import BodyKind, Headers, RequestHead, ResponseHead
from wsgate.http.parser import (
    DEFAULT_MAX_HEAD_BYTES,
    DEFAULT_MAX_HEADERS,
    RequestHeadParser,
    ResponseHeadParser,
    parse_request_head,
    parse_response_head,
)
from wsgate.http.serialize import error_response, serialize_request, serialize_response
from wsgate.http.target import clean_target, normalize_path, sanitize_path
from wsgate.http.upgrade import check_switching_protocols

__all__ = [
    "DEFAULT_MAX_HEADERS",
    "DEFAULT_MAX_HEAD_BYTES",
    "BodyKind",
    "BodyReader",
    "HTTPParseError",
    "Headers",
    "RequestHead",
    "RequestHeadParser",
    "ResponseHead",
    "ResponseHeadParser",
    "check_switching_protocols",
    "clean_target",
    "error_response",
    "forward_target",
    "is_managed_x_header",
    "is_trusted",
    "normalize_path",
    "parse_request_head",
    "parse_response_head",
    "parse_trusted_ips",
    "rewrite_request_head",
    "rewrite_response_headers",
    "sanitize_path",
    "serialize_request",
    "serialize_response",
]
