"""The one exception of the WebSocket family."""

from __future__ import annotations


class FrameError(Exception):
    """A WebSocket protocol violation, with the close code the proxy should send.

    ``code`` is 1002 (protocol error), 1007 (invalid payload) or 1009 (message too big).
    ``offset`` says where the offending frame starts relative to the chunk being fed: bytes
    ``chunk[:offset]`` hold only complete, valid frames and may be forwarded before a close
    frame. It is negative when the frame began in an earlier chunk (``-offset`` of its bytes
    came before this chunk).
    """

    def __init__(self, code: int, reason: str, offset: int = 0) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = int(code)
        self.reason = reason
        self.offset = offset
