"""Forwarding rewrites: X-Forwarded-*, X-Real-Ip, hop-by-hop headers, Host, target."""

from __future__ import annotations

import ipaddress

import pytest

from wsgate.http import (
    RequestHead,
    forward_target,
    is_managed_x_header,
    is_trusted,
    parse_request_head,
    parse_trusted_ips,
    rewrite_request_head,
    rewrite_response_headers,
    serialize_request,
)

CLIENT = "203.0.113.7"


def head(
    fields: str = "", *, line: str = "GET /ws HTTP/1.1", host: str | None = "example.com"
) -> RequestHead:
    raw = line + "\r\n"
    if host is not None:
        raw += f"Host: {host}\r\n"
    raw += fields.replace("\n", "\r\n")
    return parse_request_head((raw + "\r\n").encode("latin-1"))


def rewrite(h: RequestHead, **kw: object) -> list[tuple[str, str]]:
    args: dict[str, object] = {
        "client_ip": CLIENT,
        "tls": False,
        "trusted": False,
        "server_name": "gw1",
        "backend_hostport": "10.0.0.5:8080",
    }
    args.update(kw)
    return rewrite_request_head(h, **args)  # type: ignore[arg-type]


def values(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for n, v in headers if n.lower() == name.lower()]


def names(headers: list[tuple[str, str]]) -> list[str]:
    return [n for n, _ in headers]


WS = (
    "Connection: keep-alive, Upgrade\n"
    "Upgrade: websocket\n"
    "Origin: http://example.com\n"
    "Authorization: Basic dHJhZWZpa2VyOnNlY3JldA==\n"
    "Cookie: a=1; B=2\n"
    "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\n"
    "Sec-WebSocket-Version: 13\n"
    "Sec-WebSocket-Protocol: chat, superchat\n"
    "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\n"
    "X-Token: t0k3n\n"
)


# -- the forwarded headers ----------------------------------------------------------------------


def test_websocket_upgrade_untrusted() -> None:
    out = rewrite(head(WS))
    assert out == [
        ("Host", "example.com"),
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("Origin", "http://example.com"),
        ("Authorization", "Basic dHJhZWZpa2VyOnNlY3JldA=="),
        ("Cookie", "a=1; B=2"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Protocol", "chat, superchat"),
        ("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits"),
        ("X-Token", "t0k3n"),
        ("X-Real-Ip", CLIENT),
        ("X-Forwarded-Proto", "ws"),
        ("X-Forwarded-Port", "80"),
        ("X-Forwarded-Host", "example.com"),
        ("X-Forwarded-Server", "gw1"),
        ("X-Forwarded-For", CLIENT),
    ]


@pytest.mark.parametrize(
    ("fields", "tls", "proto", "port"),
    [
        (WS, False, "ws", "80"),
        (WS, True, "wss", "443"),
        ("", False, "http", "80"),
        ("", True, "https", "443"),
        ("Connection: upgrade\nUpgrade: h2c\n", False, "http", "80"),
        ("Upgrade: websocket\n", False, "http", "80"),  # no Connection: upgrade
        ("Connection: Upgrade\nUpgrade: WebSocket\n", True, "wss", "443"),
    ],
)
def test_proto_and_port(fields: str, tls: bool, proto: str, port: str) -> None:
    out = rewrite(head(fields), tls=tls)
    assert values(out, "X-Forwarded-Proto") == [proto]
    assert values(out, "X-Forwarded-Port") == [port]


def test_port_from_host() -> None:
    assert values(rewrite(head(host="example.com:8000"), tls=True), "X-Forwarded-Port") == ["8000"]
    assert values(rewrite(head(host="[::1]:9000")), "X-Forwarded-Port") == ["9000"]
    assert values(rewrite(head(host="[::1]")), "X-Forwarded-Port") == ["80"]
    assert values(rewrite(head(host="example.com:")), "X-Forwarded-Port") == ["80"]


SPOOFED = (
    "X-Forwarded-For: 1.1.1.1\n"
    "X-Forwarded-Proto: https\n"
    "X-Forwarded-Host: evil.example\n"
    "X-Forwarded-Port: 4443\n"
    "X-Forwarded-Server: evil\n"
    "X-Forwarded-Prefix: /evil\n"
    "X-Forwarded-Uri: /evil\n"
    "X-Forwarded-Method: DELETE\n"
    "X-Forwarded-Tls-Client-Cert: x\n"
    "X-Forwarded-Tls-Client-Cert-Info: x\n"
    "X-Forwarded-Scheme: https\n"
    "X-Scheme: https\n"
    "X-Real-Ip: 1.1.1.1\n"
    "x-forwarded-for: 2.2.2.2\n"
    "X_Forwarded_For: 3.3.3.3\n"
    "x_real_ip: 3.3.3.3\n"
    "X_FORWARDED_PROTO: https\n"
    "X-Forwarded-Foo: kept\n"
    "X_Custom: kept\n"
)


def test_untrusted_client_loses_every_managed_header() -> None:
    out = rewrite(head(SPOOFED))
    assert out == [
        ("Host", "example.com"),
        ("X-Forwarded-Foo", "kept"),
        ("X_Custom", "kept"),
        ("X-Real-Ip", CLIENT),
        ("X-Forwarded-Proto", "http"),
        ("X-Forwarded-Port", "80"),
        ("X-Forwarded-Host", "example.com"),
        ("X-Forwarded-Server", "gw1"),
        ("X-Forwarded-For", CLIENT),
    ]


def test_trusted_client_keeps_its_values() -> None:
    out = rewrite(head(SPOOFED), trusted=True)
    # Kept where they were, server name overwritten, XFF folded then appended.
    assert values(out, "X-Forwarded-For") == [f"1.1.1.1, 2.2.2.2, {CLIENT}"]
    assert names(out).count("X-Forwarded-For") == 1
    assert names(out).index("X-Forwarded-For") == 1
    assert values(out, "X-Forwarded-Proto") == ["https"]
    assert values(out, "X-Forwarded-Host") == ["evil.example"]
    assert values(out, "X-Forwarded-Port") == ["4443"]
    assert values(out, "X-Forwarded-Server") == ["gw1"]
    assert values(out, "X-Real-Ip") == ["1.1.1.1"]
    assert values(out, "X-Forwarded-Prefix") == ["/evil"]
    # Underscore variants pass through untouched when trusted.
    assert ("X_Forwarded_For", "3.3.3.3") in out
    assert ("x_real_ip", "3.3.3.3") in out
    assert ("X_FORWARDED_PROTO", "https") in out


def test_trusted_port_from_forwarded_proto() -> None:
    out = rewrite(head("X-Forwarded-Proto: wss\n"), trusted=True)
    assert values(out, "X-Forwarded-Port") == ["443"]


def test_empty_values_count_as_absent() -> None:
    out = rewrite(head("X-Real-Ip:\nX-Forwarded-Proto:\nX-Forwarded-Host:\n"), trusted=True)
    assert values(out, "X-Real-Ip") == [CLIENT]
    assert values(out, "X-Forwarded-Proto") == ["http"]
    assert values(out, "X-Forwarded-Host") == ["example.com"]


def test_not_append_x_forwarded_for() -> None:
    assert values(rewrite(head(), not_append_xff=True), "X-Forwarded-For") == []
    out = rewrite(head("X-Forwarded-For: 1.1.1.1\n"), trusted=True, not_append_xff=True)
    assert values(out, "X-Forwarded-For") == ["1.1.1.1"]
    out = rewrite(
        head("X-Forwarded-For: 1.1.1.1\nX-Forwarded-For: 2.2.2.2\n"),
        trusted=True,
        not_append_xff=True,
    )
    assert values(out, "X-Forwarded-For") == ["1.1.1.1, 2.2.2.2"]


def test_scheme_headers() -> None:
    out = rewrite(head(WS), tls=True, add_scheme_headers=True)
    assert values(out, "X-Forwarded-Scheme") == ["wss"] and values(out, "X-Scheme") == ["wss"]
    assert values(rewrite(head()), "X-Scheme") == []


def test_ipv6_zone_dropped_from_real_ip_only() -> None:
    out = rewrite(head(), client_ip="fe80::1%eth0")
    assert values(out, "X-Real-Ip") == ["fe80::1"]
    assert values(out, "X-Forwarded-For") == ["fe80::1%eth0"]


def test_no_server_name() -> None:
    assert values(rewrite(head(), server_name=""), "X-Forwarded-Server") == []


# -- hop-by-hop ---------------------------------------------------------------------------------


def test_hop_by_hop_removed() -> None:
    out = rewrite(
        head(
            "Connection: keep-alive, X-Private, x-forwarded-for, Content-Length, Host\n"
            "Keep-Alive: timeout=5\n"
            "Proxy-Connection: keep-alive\n"
            "Proxy-Authenticate: Basic\n"
            "Proxy-Authorization: Basic abc\n"
            "TE: gzip\n"
            "Trailer: X-T\n"
            "Upgrade: websocket\n"
            "X-Private: secret\n"
            "x-private: secret2\n"
            "Content-Length: 3\n"
            "X-Forwarded-For: 1.1.1.1\n",
            line="POST / HTTP/1.1",
        ),
        trusted=True,
    )
    assert names(out) == [
        "Host",
        "Content-Length",
        "X-Forwarded-For",
        "X-Real-Ip",
        "X-Forwarded-Proto",
        "X-Forwarded-Port",
        "X-Forwarded-Host",
        "X-Forwarded-Server",
    ]
    assert values(out, "X-Forwarded-For") == [f"1.1.1.1, {CLIENT}"]


def test_te_trailers_survives() -> None:
    out = rewrite(head("TE: gzip, Trailers\n"))
    assert ("TE", "trailers") in out and values(out, "te") == ["trailers"]


def test_chunked_framing_is_kept() -> None:
    out = rewrite(head("transfer-encoding: chunked\nX-A: 1\n", line="POST / HTTP/1.1"))
    assert out[1:3] == [("transfer-encoding", "chunked"), ("X-A", "1")]


def test_upgrade_restored_with_the_first_upgrade_value() -> None:
    out = rewrite(head("connection: upgrade\nUpgrade: websocket\nupgrade: other\n"))
    assert ("connection", "Upgrade") in out
    assert values(out, "Upgrade") == ["websocket"]


def test_upgrade_is_dropped_without_connection_upgrade() -> None:
    out = rewrite(head("Upgrade: websocket\n"))
    assert values(out, "Upgrade") == [] and values(out, "Connection") == []


def test_upgrade_ignored_for_http10() -> None:
    out = rewrite(head("Connection: Upgrade\nUpgrade: websocket\n", line="GET / HTTP/1.0"))
    assert values(out, "Upgrade") == [] and values(out, "Connection") == []


# -- Host ---------------------------------------------------------------------------------------


def test_pass_host_header() -> None:
    assert values(rewrite(head()), "Host") == ["example.com"]
    out = rewrite(head(host="example.com"), pass_host_header=False)
    assert out[0] == ("Host", "10.0.0.5:8080")
    out = rewrite(head(host="example.com"), pass_host_header=False, backend_hostport="backend")
    assert values(out, "Host") == ["backend"]
    # X-Forwarded-Host still names what the client asked for.
    assert values(out, "X-Forwarded-Host") == ["example.com"]


def test_host_casing_kept() -> None:
    h = parse_request_head(b"GET / HTTP/1.1\r\nhOsT: example.com\r\n\r\n")
    assert rewrite(h, pass_host_header=False)[0] == ("hOsT", "10.0.0.5:8080")


def test_absolute_form_host_and_target() -> None:
    h = head(line="GET http://real.example:81/a%2Fb?x=1 HTTP/1.1", host="ignored")
    out = rewrite(h)
    assert values(out, "Host") == ["real.example:81"]
    assert values(out, "X-Forwarded-Host") == ["real.example:81"]
    assert values(out, "X-Forwarded-Port") == ["81"]
    assert forward_target(h) == "/a%2Fb?x=1"


def test_http10_without_host_gets_the_backend() -> None:
    out = rewrite(head(line="GET / HTTP/1.0", host=None))
    assert out[0] == ("Host", "10.0.0.5:8080")
    assert values(out, "X-Forwarded-Host") == []


# -- target -------------------------------------------------------------------------------------


def test_target_byte_for_byte() -> None:
    h = head(line="GET /ws/http%3A%2F%2Ftest?a=%2F;b HTTP/1.1")
    assert forward_target(h) == "/ws/http%3A%2F%2Ftest?a=%2F;b"
    assert forward_target(h, query_semicolons="ampersand") == "/ws/http%3A%2F%2Ftest?a=%2F&b"
    assert forward_target(h, query_semicolons="encode") == "/ws/http%3A%2F%2Ftest?a=%2F%3Bb"
    h = head(line="GET /a;b HTTP/1.1")
    assert forward_target(h, query_semicolons="ampersand") == "/a;b"


def test_serialized_request_round_trips() -> None:
    h = head(WS)
    out = rewrite(h)
    raw = serialize_request(h.method, forward_target(h), out)
    again = parse_request_head(raw)
    assert list(again.headers) == out
    assert again.target == h.target and again.is_upgrade


# -- trust --------------------------------------------------------------------------------------


def test_is_trusted() -> None:
    nets = parse_trusted_ips(["10.0.0.0/8", "192.168.1.7", "2001:db8::/32", " 127.0.0.1/32 "])
    assert nets[1] == ipaddress.ip_network("192.168.1.7/32")
    assert is_trusted("10.1.2.3", nets)
    assert is_trusted("192.168.1.7", nets)
    assert not is_trusted("192.168.1.8", nets)
    assert is_trusted("2001:db8::1", nets)
    assert is_trusted("[2001:db8::1]", nets)
    assert is_trusted("::ffff:10.0.0.1", nets)
    assert is_trusted("127.0.0.1", nets)
    assert not is_trusted("::1", nets)
    assert not is_trusted("not-an-ip", nets)
    assert not is_trusted("10.1.2.3", ())


def test_bad_trusted_entry() -> None:
    with pytest.raises(ValueError):
        parse_trusted_ips(["10.0.0.0/33"])


@pytest.mark.parametrize(
    ("name", "managed"),
    [
        ("X-Forwarded-For", True),
        ("x_forwarded_for", True),
        ("X-Real-IP", True),
        ("X_Real_Ip", True),
        ("X-Forwarded-Tls-Client-Cert-Info", True),
        ("X-Scheme", True),
        ("X-Forwarded-Foo", False),
        ("Forwarded", False),
        ("XForwardedFor", False),
    ],
)
def test_managed_names(name: str, managed: bool) -> None:
    assert is_managed_x_header(name) is managed


# -- responses ----------------------------------------------------------------------------------


def test_response_hop_by_hop() -> None:
    out = rewrite_response_headers(
        [
            ("Content-Type", "text/plain"),
            ("Connection", "keep-alive, X-Hop"),
            ("Keep-Alive", "timeout=5"),
            ("X-Hop", "1"),
            ("Transfer-Encoding", "chunked"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
        ]
    )
    assert out == [("Content-Type", "text/plain"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")]
