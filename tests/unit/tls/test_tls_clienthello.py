"""The ClientHello reader: real hellos from Python's ssl, split every way, and broken ones."""

from __future__ import annotations

import ssl

import pytest

from tests.tlspki import client_hello
from wsgate.tls.clienthello import (
    MAX_HELLO_BYTES,
    NEED_MORE,
    ClientHello,
    Unreadable,
    looks_like_tls,
    read_client_hello,
)


def _client(alpn: list[str] | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def test_server_name_and_alpn_of_a_real_hello() -> None:
    hello = client_hello(_client(["h2", "http/1.1"]), "WSS.Example.COM")
    assert looks_like_tls(hello[0])
    assert read_client_hello(hello) == ClientHello("wss.example.com", ("h2", "http/1.1"))


def test_no_server_name_for_an_ip_address() -> None:
    # Python, like Go and browsers, sends no SNI for an IP address (RFC 6066).
    assert read_client_hello(client_hello(_client(), "127.0.0.1")) == ClientHello("", ())


def test_every_prefix_needs_more_and_the_whole_is_read() -> None:
    hello = client_hello(_client(), "a.example.com")
    for cut in range(len(hello)):
        assert read_client_hello(hello[:cut]) is NEED_MORE, cut
    assert read_client_hello(hello + b"trailing bytes").server_name == "a.example.com"


def test_a_hello_split_over_several_records_is_reassembled() -> None:
    hello = client_hello(_client(["http/1.1"]), "split.example.com")
    body = hello[5:]
    version = hello[1:3]
    pieces = [body[:3], body[3:50], body[50:]]
    records = b"".join(b"\x16" + version + len(p).to_bytes(2, "big") + p for p in pieces)
    assert read_client_hello(records) == ClientHello("split.example.com", ("http/1.1",))
    assert read_client_hello(records[:-1]) is NEED_MORE


def test_plain_http_is_not_tls() -> None:
    assert not looks_like_tls(b"G"[0])
    result = read_client_hello(b"GET / HTTP/1.1\r\n")
    assert isinstance(result, Unreadable)


def test_sslv2_style_hello_counts_as_tls_but_is_not_read() -> None:
    assert looks_like_tls(0x80)
    assert read_client_hello(b"\x80\x2e\x01\x00\x02") == Unreadable("SSLv2-style hello")


@pytest.mark.parametrize(("data", "why"), [
    (b"\x16\x03\x01\x00\x00", "handshake record of 0 bytes"),
    (b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00", "not ClientHello"),
    (b"\x16\x03\x01\x00\x04\x01\x00\x00\x02\x17\x03\x01\x00\x02xx", "record type 23"),
    (b"\x16\x03\x01\x00\x08\x01\x00\x00\x04\x03\x03\x00\x00", "truncated"),
])
def test_malformed_hellos_are_unreadable(data: bytes, why: str) -> None:
    result = read_client_hello(data)
    assert isinstance(result, Unreadable)
    assert why in result.reason


def test_a_hello_announcing_more_than_the_limit_is_not_buffered() -> None:
    size = MAX_HELLO_BYTES + 1
    data = b"\x16\x03\x01\x00\x04\x01" + size.to_bytes(3, "big")
    result = read_client_hello(data)
    assert isinstance(result, Unreadable) and "ClientHello of" in result.reason


def test_bytes_that_never_complete_a_hello_stop_at_the_limit() -> None:
    # A 20 kB hello sent one byte per record: 6 bytes on the wire per byte of hello.
    header = b"\x01" + (20_000).to_bytes(3, "big")
    payload = header + b"\x00" * 20_000
    records = b"".join(b"\x16\x03\x01\x00\x01" + payload[i:i + 1]
                       for i in range(MAX_HELLO_BYTES // 6 + 1))
    assert read_client_hello(records[:MAX_HELLO_BYTES - 6]) is NEED_MORE
    result = read_client_hello(records)
    assert isinstance(result, Unreadable) and "first" in result.reason


def _hello_with_extensions(extensions: bytes) -> bytes:
    body = (b"\x03\x03" + b"\x00" * 32 + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
            + len(extensions).to_bytes(2, "big") + extensions)
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x01" + len(handshake).to_bytes(2, "big") + handshake


def _sni(name: bytes) -> bytes:
    entry = b"\x00" + len(name).to_bytes(2, "big") + name
    data = len(entry).to_bytes(2, "big") + entry
    return b"\x00\x00" + len(data).to_bytes(2, "big") + data


def test_trailing_dot_is_dropped_and_case_folded() -> None:
    assert read_client_hello(_hello_with_extensions(_sni(b"Host.Example."))) == \
        ClientHello("host.example")


@pytest.mark.parametrize("name", [b"bad name", b"caf\xc3\xa9.example", b""])
def test_invalid_server_names_are_unreadable(name: bytes) -> None:
    assert isinstance(read_client_hello(_hello_with_extensions(_sni(name))), Unreadable)


def test_a_repeated_extension_is_unreadable() -> None:
    sni = _sni(b"a.example")
    result = read_client_hello(_hello_with_extensions(sni + sni))
    assert isinstance(result, Unreadable) and "twice" in result.reason


def test_hello_without_extensions() -> None:
    body = b"\x03\x03" + b"\x00" * 32 + b"\x00" + b"\x00\x02\x00\x2f" + b"\x01\x00"
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    data = b"\x16\x03\x01" + len(handshake).to_bytes(2, "big") + handshake
    assert read_client_hello(data) == ClientHello("")
