"""compress: the choices of the compress middleware; the data path compresses.

- :meth:`CompressMiddleware.encoding_for` (request side): the encoding to use for this
  request, from ``Accept-Encoding`` (q-values; ties go to the order of ``encodings``; ``*``
  means ``defaultEncoding`` or the first encoding), or none: HEAD requests, requests whose own
  Content-Type is excluded, requests without Accept-Encoding (unless ``defaultEncoding``).
- :meth:`CompressMiddleware.compresses` (response side): whether that response is
  compressed: never a 1xx (so never a 101: a WebSocket is not compressed here), 204 or 304,
  nor a response that already has a Content-Encoding, an unparsable Content-Type, an excluded
  (or not included) Content-Type, or a known length under ``minResponseBodyBytes``.

gzip is always available; ``br`` needs the ``brotli`` package and ``zstd`` the
``zstandard`` package: a listed encoding that cannot be produced is left out (with a warning).
``application/grpc`` is always excluded.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

from wsgate.config.dynamic import Compress
from wsgate.middlewares.base import HeaderList, Middleware, RequestContext
from wsgate.middlewares.errors import MiddlewareError

__all__ = ["CompressMiddleware", "available_encodings", "parse_media_type"]

SUPPORTED = ("gzip", "br", "zstd")
DEFAULT_MIN_SIZE = 1024
_MODULES = {"br": "brotli", "zstd": "zstandard"}


def available_encodings() -> set[str]:
    found = {"gzip"}
    for encoding, module in _MODULES.items():
        if importlib.util.find_spec(module) is not None:
            found.add(encoding)
    return found


def parse_media_type(value: str) -> tuple[str, dict[str, str]]:
    """Go's ``mime.ParseMediaType`` (simplified): lower-cased type and parameters; raises
    ValueError when the type is not ``type/subtype`` or a parameter is malformed."""
    parts = value.split(";")
    media = parts[0].strip().lower()
    if media.count("/") != 1 or not all(media.split("/")) or " " in media:
        raise ValueError(f"invalid media type {value!r}")
    params: dict[str, str] = {}
    for part in parts[1:]:
        part = part.strip()
        if not part:
            continue
        key, sep, val = part.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"invalid media type parameter {part!r}")
        params[key.strip().lower()] = val.strip().strip('"')
    return media, params


class _MediaType:
    __slots__ = ("media", "params")

    def __init__(self, value: str) -> None:
        self.media, self.params = parse_media_type(value)

    def equals(self, media: str, params: dict[str, str]) -> bool:
        if self.media != media:
            return False
        if not self.params:
            return True
        return self.params == params


def _header(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    lname = name.lower()
    for n, v in headers:
        if n.lower() == lname:
            return v
    return None


class CompressMiddleware(Middleware):
    kind = "compress"

    def __init__(self, name: str, config: Compress, *,
                 available: set[str] | None = None) -> None:
        super().__init__(name)
        if config.excluded_content_types and config.included_content_types:
            raise MiddlewareError(name, "compress.includedContentTypes",
                                  "excludedContentTypes and includedContentTypes options are "
                                  "mutually exclusive")
        self.excludes = [_MediaType("application/grpc")]
        self.includes: list[_MediaType] = []
        for field, values, target in (
                ("compress.excludedContentTypes", config.excluded_content_types, self.excludes),
                ("compress.includedContentTypes", config.included_content_types, self.includes)):
            for i, value in enumerate(values):
                try:
                    target.append(_MediaType(value))
                except ValueError as exc:
                    raise MiddlewareError(name, f"{field}[{i}]", str(exc)) from None
        self.min_size = (config.min_response_body_bytes if config.min_response_body_bytes > 0
                         else DEFAULT_MIN_SIZE)
        if not config.encodings:
            raise MiddlewareError(name, "compress.encodings",
                                  "at least one encoding must be specified")
        for i, encoding in enumerate(config.encodings):
            if encoding not in SUPPORTED:
                raise MiddlewareError(name, f"compress.encodings[{i}]",
                                      f"unsupported encoding: {encoding}")
        if config.default_encoding and config.default_encoding not in config.encodings:
            raise MiddlewareError(name, "compress.defaultEncoding",
                                  f"unsupported default encoding: {config.default_encoding}")
        have = available_encodings() if available is None else available
        missing = [e for e in config.encodings if e not in have]
        for encoding in missing:
            self.warnings.append(f"{encoding} needs the Python package {_MODULES[encoding]}: "
                                 "it is not offered")
        self.encodings = [e for e in config.encodings if e in have]
        if not self.encodings:
            raise MiddlewareError(name, "compress.encodings",
                                  "none of the encodings can be produced: "
                                  + ", ".join(f"{e} needs {_MODULES[e]}" for e in missing))
        default = config.default_encoding
        self.default_encoding = default if default in self.encodings else ""
        self.priority = {"*": -1, "identity": len(self.encodings)}
        for i, encoding in enumerate(self.encodings):
            self.priority[encoding] = i

    # -- request side ---------------------------------------------------------------------------
    def encoding_for(self, ctx: RequestContext) -> str | None:
        """The encoding this request's response may get, or None."""
        if ctx.method == "HEAD":
            return None
        content_type = ctx.get("Content-Type")
        if content_type:
            try:
                media, _ = parse_media_type(content_type)
            except ValueError:
                media = ""
            if any(e.media == media for e in self.excludes):
                return None
        values = ctx.get_all("Accept-Encoding")
        if not values:
            return self.default_encoding or None
        chosen = self.negotiate(values)
        return chosen if chosen in self.encodings else None

    def negotiate(self, accept_encoding: Sequence[str]) -> str:
        """Traefik's choice among ``Accept-Encoding`` values: an encoding, ``identity`` or
        ``not_acceptable``."""
        if len(accept_encoding) == 1 and accept_encoding[0] == "":
            return "identity"
        found: list[tuple[float, int, str]] = []
        for line in accept_encoding:
            for item in line.replace(" ", "").split(","):
                name, _, param = item.partition(";")
                if name not in self.priority:
                    continue
                weight = 1.0
                if param.startswith("q="):
                    try:
                        weight = float(param[2:])
                    except ValueError:
                        weight = 0.0
                    if weight == 0:
                        continue
                found.append((-weight, self.priority[name], name))
        if not found:
            return "not_acceptable"
        best = min(found)[2]
        if best == "*":
            return self.default_encoding or self.encodings[0]
        return best

    # -- response side --------------------------------------------------------------------------
    def compresses(self, status: int, headers: HeaderList, length: int | None) -> bool:
        """Whether the response (head ``status``/``headers``, body ``length`` when known)
        is compressed with the encoding chosen for its request."""
        if status < 200 or status in (204, 304):
            return False
        if _header(headers, "Content-Encoding"):
            return False
        content_type = _header(headers, "Content-Type")
        if content_type:
            try:
                media, params = parse_media_type(content_type)
            except ValueError:
                return False
            if self.includes and not any(i.equals(media, params) for i in self.includes):
                return False
            if any(e.equals(media, params) for e in self.excludes):
                return False
        return length is None or length >= self.min_size
