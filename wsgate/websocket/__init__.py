"""Sans-I/O WebSocket for a relaying proxy: handshake checks, frame tracking, close frames."""

from wsgate.websocket.errors import FrameError
from wsgate.websocket.frames import (
    CloseCode,
    Opcode,
    build_close_frame,
    build_frame,
    build_ping_frame,
    build_pong_frame,
    close_payload,
    is_valid_close_code,
    mask_payload,
    parse_close_payload,
)
from wsgate.websocket.handshake import (
    HandshakeCheck,
    accept_key,
    check_client_handshake,
    is_websocket_upgrade,
    negotiated_extensions,
    negotiated_subprotocol,
    parse_extensions,
    permessage_deflate_negotiated,
)
from wsgate.websocket.tracker import CloseFrame, Event, FrameTracker, MessageEnd, Ping, Pong

__all__ = [
    "CloseCode",
    "CloseFrame",
    "Event",
    "FrameError",
    "FrameTracker",
    "HandshakeCheck",
    "MessageEnd",
    "Opcode",
    "Ping",
    "Pong",
    "accept_key",
    "build_close_frame",
    "build_frame",
    "build_ping_frame",
    "build_pong_frame",
    "check_client_handshake",
    "close_payload",
    "is_valid_close_code",
    "is_websocket_upgrade",
    "mask_payload",
    "negotiated_extensions",
    "negotiated_subprotocol",
    "parse_close_payload",
    "parse_extensions",
    "permessage_deflate_negotiated",
]
