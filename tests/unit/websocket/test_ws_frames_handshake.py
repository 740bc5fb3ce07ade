"""Frame builders, close codes, and the opening-handshake helpers."""

from __future__ import annotations

import struct

import pytest

from wsgate.http import parse_request_head, parse_response_head
from wsgate.websocket import (
    CloseCode,
    CloseFrame,
    FrameError,
    FrameTracker,
    Opcode,
    Ping,
    Pong,
    accept_key,
    build_close_frame,
    build_frame,
    build_ping_frame,
    build_pong_frame,
    check_client_handshake,
    close_payload,
    is_valid_close_code,
    is_websocket_upgrade,
    mask_payload,
    negotiated_subprotocol,
    parse_close_payload,
    parse_extensions,
    permessage_deflate_negotiated,
)


def unmask(frame: bytes) -> tuple[int, bool, bytes]:
    """(opcode, masked, payload) of one frame, by hand."""
    b1 = frame[1]
    n = b1 & 0x7F
    pos = 2
    if n == 126:
        n = struct.unpack(">H", frame[2:4])[0]
        pos = 4
    elif n == 127:
        n = struct.unpack(">Q", frame[2:10])[0]
        pos = 10
    if b1 & 0x80:
        key = frame[pos : pos + 4]
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(frame[pos + 4 :]))
    else:
        payload = frame[pos:]
    assert len(payload) == n
    return frame[0] & 0x0F, bool(b1 & 0x80), payload


def test_constants() -> None:
    assert [int(c) for c in (CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY)] == [1000, 1001]
    assert CloseCode.PROTOCOL_ERROR == 1002 and CloseCode.UNSUPPORTED_DATA == 1003
    assert CloseCode.INVALID_PAYLOAD == 1007 and CloseCode.POLICY_VIOLATION == 1008
    assert CloseCode.MESSAGE_TOO_BIG == 1009 and CloseCode.INTERNAL_ERROR == 1011
    assert CloseCode.SERVICE_RESTART == 1012 and CloseCode.BAD_GATEWAY == 1014
    assert Opcode.CLOSE == 8 and Opcode.PING == 9 and Opcode.PONG == 10


@pytest.mark.parametrize(
    ("code", "valid"),
    [
        (999, False),
        (1000, True),
        (1001, True),
        (1002, True),
        (1003, True),
        (1004, False),
        (1005, False),
        (1006, False),
        (1007, True),
        (1008, True),
        (1009, True),
        (1010, True),
        (1011, True),
        (1012, True),
        (1013, True),
        (1014, True),
        (1015, False),
        (1016, False),
        (2999, False),
        (3000, True),
        (4999, True),
        (5000, False),
        (0, False),
    ],
)
def test_close_code_validity(code: int, valid: bool) -> None:
    assert is_valid_close_code(code) is valid


def test_server_close_frame_is_unmasked() -> None:
    frame = build_close_frame(CloseCode.GOING_AWAY, "bye", mask=False)
    assert frame == b"\x88\x05\x03\xe9bye"


def test_client_close_frame_is_masked_with_a_fresh_key() -> None:
    a = build_close_frame(1001, "proxy shutting down", mask=True)
    b = build_close_frame(1001, "proxy shutting down", mask=True)
    assert a[1] & 0x80 and a[2:6] != b[2:6]  # random keys (2**-32 chance of a false failure)
    assert unmask(a) == (8, True, b"\x03\xe9proxy shutting down")
    t = FrameTracker(masked=True)
    assert list(t.feed(a)) == [CloseFrame(1001, "proxy shutting down")]


def test_empty_close_frame() -> None:
    assert build_close_frame(None, mask=False) == b"\x88\x00"
    with pytest.raises(ValueError):
        close_payload(None, "reason without code")


@pytest.mark.parametrize("code", [999, 1005, 1006, 1015, 2000, 5000])
def test_close_frame_refuses_unsendable_codes(code: int) -> None:
    with pytest.raises(ValueError):
        build_close_frame(code, mask=False)


def test_close_reason_limit() -> None:
    build_close_frame(1000, "x" * 123, mask=False)
    with pytest.raises(ValueError):
        build_close_frame(1000, "x" * 124, mask=False)
    with pytest.raises(ValueError):
        build_close_frame(1000, "é" * 62, mask=False)  # 124 bytes in UTF-8


def test_ping_and_pong() -> None:
    ping = build_ping_frame(b"alive?", mask=True)
    assert unmask(ping) == (9, True, b"alive?")
    pong = build_pong_frame(b"alive?", mask=False)
    assert pong == b"\x8a\x06alive?"
    t = FrameTracker()
    assert list(t.feed(ping + pong)) == [Ping(b"alive?"), Pong(b"alive?")]
    with pytest.raises(ValueError):
        build_ping_frame(b"x" * 126, mask=False)
    with pytest.raises(ValueError):
        build_pong_frame(b"x" * 126, mask=False)


@pytest.mark.parametrize("size", [0, 125, 126, 0xFFFF, 0x10000])
def test_build_frame_lengths(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    for mask in (False, True):
        frame = build_frame(Opcode.BINARY, payload, mask=mask)
        assert unmask(frame) == (2, mask, payload)


def test_mask_payload_is_an_involution() -> None:
    key = b"\x01\x02\x03\x04"
    data = bytes(range(37))
    masked = mask_payload(data, key)
    assert masked == bytes(b ^ key[i % 4] for i, b in enumerate(data))
    assert mask_payload(masked, key) == data
    assert mask_payload(b"\x00\x00", key) == b"\x01\x02"
    assert mask_payload(b"", key) == b""


def test_parse_close_payload() -> None:
    assert parse_close_payload(b"") == (None, "")
    assert parse_close_payload(b"\x03\xe8") == (1000, "")
    assert parse_close_payload(b"\x0f\xa0ok") == (4000, "ok")
    with pytest.raises(FrameError) as info:
        parse_close_payload(b"\x03")
    assert info.value.code == 1002
    with pytest.raises(FrameError) as info:
        parse_close_payload(b"\x03\xe8\xc3")
    assert info.value.code == 1007


# -- handshake ----------------------------------------------------------------------------------


def test_accept_key_rfc_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def req(fields: str, line: str = "GET /chat HTTP/1.1") -> object:
    return parse_request_head(f"{line}\r\nHost: h\r\n{fields}\r\n".encode())


GOOD = (
    "Connection: Upgrade\r\nUpgrade: websocket\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


def test_is_websocket_upgrade() -> None:
    assert is_websocket_upgrade(req(GOOD))  # type: ignore[arg-type]
    assert is_websocket_upgrade(req("Connection: upgrade\r\nUpgrade: WebSocket\r\n"))  # type: ignore[arg-type]
    assert is_websocket_upgrade(req("Connection: upgrade\r\nUpgrade: foo, websocket\r\n"))  # type: ignore[arg-type]
    assert not is_websocket_upgrade(req("Connection: upgrade\r\nUpgrade: h2c\r\n"))  # type: ignore[arg-type]
    assert not is_websocket_upgrade(req("Upgrade: websocket\r\n"))  # type: ignore[arg-type]
    assert not is_websocket_upgrade(req(""))  # type: ignore[arg-type]


def test_valid_client_handshake() -> None:
    check = check_client_handshake(req(GOOD))  # type: ignore[arg-type]
    assert check.ok and check.problems == ()


@pytest.mark.parametrize(
    ("fields", "line", "problem"),
    [
        (GOOD, "POST /chat HTTP/1.1", "method POST"),
        (GOOD.replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""), None, "Key missing"),
        (GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ="), None, "not 16 bytes"),
        (GOOD.replace("dGhlIHNhbXBsZSBub25jZQ==", "!!!notbase64!!!"), None, "not 16 bytes"),
        (GOOD + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", None, "several"),
        (GOOD.replace("Version: 13", "Version: 8"), None, "Version 8"),
        (GOOD.replace("Sec-WebSocket-Version: 13\r\n", ""), None, "Version missing"),
        (GOOD.replace("Upgrade: websocket", "Upgrade: h2c"), None, "not an Upgrade"),
    ],
)
def test_client_handshake_problems(fields: str, line: str | None, problem: str) -> None:
    check = check_client_handshake(req(fields, line or "GET /chat HTTP/1.1"))  # type: ignore[arg-type]
    assert not check.ok
    assert any(problem in p for p in check.problems), check.problems


def test_parse_extensions() -> None:
    assert parse_extensions(None) == []
    assert parse_extensions(
        'permessage-deflate; client_max_window_bits; server_max_window_bits="10", x-foo'
    ) == [
        ("permessage-deflate", {"client_max_window_bits": None, "server_max_window_bits": "10"}),
        ("x-foo", {}),
    ]
    assert parse_extensions(['A; q="a,b;c"', " , b"]) == [("a", {"q": "a,b;c"}), ("b", {})]


def test_permessage_deflate_and_subprotocol_from_the_101() -> None:
    resp = parse_response_head(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n"
        b"Sec-WebSocket-Protocol: chat\r\n\r\n"
    )
    assert permessage_deflate_negotiated(resp)
    assert negotiated_subprotocol(resp) == "chat"
    plain = parse_response_head(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
    assert not permessage_deflate_negotiated(plain)
    assert negotiated_subprotocol(plain) is None
