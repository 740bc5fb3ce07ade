"""Micro benchmark: request-head parsing, wsgate's pure-Python parser against httptools (llhttp).

Not a test. Run: python bench/micro_http_head.py

The httptools variant collects what llhttp reports and derives the same RequestHead with the same
framing/Host/target checks (build_request_head); it is still a lower bound for that design, as it
lacks the field-level strictness llhttp leaves to us or enforces differently.
"""

from __future__ import annotations

import timeit

import httptools

from wsgate.http.forwarding import rewrite_request_head
from wsgate.http.head import RequestHead
from wsgate.http.parser import RequestHeadParser, build_request_head
from wsgate.http.serialize import serialize_request

WS_HEAD = (
    b"GET /ws/chat?room=42 HTTP/1.1\r\n"
    b"Host: app.example.com\r\n"
    b"Connection: Upgrade\r\n"
    b"Pragma: no-cache\r\n"
    b"Cache-Control: no-cache\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    b"Chrome/124.0.0.0 Safari/537.36\r\n"
    b"Upgrade: websocket\r\n"
    b"Origin: https://app.example.com\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"Accept-Encoding: gzip, deflate, br, zstd\r\n"
    b"Accept-Language: en-GB,en-US;q=0.9,en;q=0.8\r\n"
    b"Cookie: session=4f1c2a9e8b7d6c5e4f3a2b1c0d9e8f7a; theme=dark\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    b"\r\n"
)

GET_HEAD = (
    b"GET /api/v1/items?limit=20 HTTP/1.1\r\n"
    b"Host: api.example.com\r\n"
    b"User-Agent: curl/8.5.0\r\n"
    b"Accept: */*\r\n"
    b"\r\n"
)


class _Collector:
    __slots__ = ("done", "headers", "url")

    def __init__(self) -> None:
        self.headers: list[tuple[str, str]] = []
        self.url = b""
        self.done = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.done = True


def httptools_parse(data: bytes) -> tuple[RequestHead, bytes]:
    end = data.find(b"\r\n\r\n")
    c = _Collector()
    p = httptools.HttpRequestParser(c)
    try:
        p.feed_data(data[: end + 4])
    except httptools.HttpParserUpgrade:
        pass
    version = p.get_http_version()
    head = build_request_head(
        p.get_method().decode("latin-1"),
        c.url.decode("latin-1"),
        "1.0" if version == "1.0" else "1.1",
        tuple(c.headers),
    )
    return head, data[end + 4 :]


def ours(data: bytes) -> tuple[RequestHead, bytes] | None:
    return RequestHeadParser().feed(data)


def main() -> None:
    n = 100_000
    parsed = ours(WS_HEAD)
    assert parsed is not None and parsed[0] == httptools_parse(WS_HEAD)[0]
    for label, raw in (("websocket upgrade (14 headers)", WS_HEAD), ("small GET (3)", GET_HEAD)):
        print(f"{label}, {len(raw)} bytes:")
        for name, fn in (
            ("wsgate pure Python", ours),
            ("httptools + same checks", httptools_parse),
        ):
            best = min(timeit.repeat(lambda fn=fn, raw=raw: fn(raw), number=n, repeat=5))  # type: ignore[misc]
            print(f"  {name:28s} {best / n * 1e6:6.2f} us/head  {n / best:10,.0f} heads/s")
    head = parsed[0]

    def forward() -> bytes:
        headers = rewrite_request_head(
            head,
            client_ip="203.0.113.7",
            tls=False,
            trusted=False,
            server_name="gw1",
            backend_hostport=None,
        )
        return serialize_request(head.method, head.target, headers)

    best = min(timeit.repeat(forward, number=n, repeat=5))
    print(f"rewrite + serialize (websocket head): {best / n * 1e6:6.2f} us")


if __name__ == "__main__":
    main()
