"""Flow control in the relay: a reader that does not read pauses the writer on the other side,
so the proxy's memory stays bounded whatever the backend sends."""

from __future__ import annotations

import re
import time
import uuid

import pytest
from websockets.frames import Opcode

from tests.integration.conftest import Peers
from tests.integration.harness import RawWSClient, Wsgate

MIB = 1 << 20
COUNT = 100
BLOCK = bytes(range(256)) * (MIB // 256)


@pytest.mark.slow
def test_non_reading_client_bounds_proxy_memory(peers: Peers, gateway: Wsgate,
                                                gw_port: int) -> None:
    stalls_before = peers.ws.count(r"flood stalled after")
    tag = uuid.uuid4().hex[:12]
    client = RawWSClient(gw_port, "ws.test", f"/flood?count={COUNT}&size={MIB}&tag={tag}",
                         rcvbuf=64 * 1024, timeout=30)
    baseline = gateway.proc.rss_kib()
    client.send_text("go")

    # Sample the proxy's memory while the backend fills every buffer on the way, until the
    # backend reports that its sends block (bounded: 30 s).
    peak = baseline
    deadline = time.monotonic() + 30
    while peers.ws.count(r"flood stalled after") == stalls_before:
        assert time.monotonic() < deadline, "the backend never stalled: no backpressure"
        peak = max(peak, gateway.proc.rss_kib())
        time.sleep(0.02)
    for _ in range(10):  # a few more samples once stalled
        peak = max(peak, gateway.proc.rss_kib())
        time.sleep(0.02)
    stalled = peers.ws.wait_for_count(r"flood stalled after", stalls_before + 1)[-1]
    sent_when_stalled = int(re.search(r"after (\d+)", stalled).group(1))  # type: ignore[union-attr]

    assert peak - baseline < 4 * 1024, f"proxy RSS grew by {peak - baseline} KiB"
    # Only what kernel buffers hold was sent: far from the whole 100 MiB.
    assert sent_when_stalled < COUNT // 2

    # The client starts reading: everything arrives, in order, intact.
    received = 0
    while True:
        frame = client.next_frame()
        assert frame is not None, f"connection closed after {received} messages"
        if frame.opcode is Opcode.TEXT:
            assert frame.data == b"done"
            break
        assert frame.opcode is Opcode.BINARY
        assert frame.data == BLOCK
        received += 1
    assert received == COUNT
    client.proto.send_close(1000)
    client.flush()
    while client.next_frame() is not None:
        pass
    assert client.proto.close_rcvd is not None and client.proto.close_rcvd.code == 1000
