"""Handshake-failure reasons come from what failed, not from the wording of the message."""

from wsgate.ops.observer import (
    REASON_BACKEND_TIMEOUT,
    REASON_BACKEND_UNREACHABLE,
    REASON_BAD_UPGRADE,
    REASON_NO_SERVER,
)
from wsgate.proxy.errors import UpstreamError
from wsgate.proxy.frontend import _failure_reason


def test_reason_from_kind_then_status() -> None:
    assert _failure_reason(UpstreamError(502, "anything", kind=REASON_BAD_UPGRADE)) == \
        REASON_BAD_UPGRADE
    # a message that merely mentions 101 is not a bad upgrade
    assert _failure_reason(UpstreamError(502, "port 8101 refused")) == \
        REASON_BACKEND_UNREACHABLE
    assert _failure_reason(UpstreamError(504, "dial timeout")) == REASON_BACKEND_TIMEOUT
    assert _failure_reason(UpstreamError(503, "no server")) == REASON_NO_SERVER
