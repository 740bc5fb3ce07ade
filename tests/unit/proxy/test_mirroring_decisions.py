"""mirroring's sans-I/O parts: Traefik's percent counters, the budget of copies in flight,
the head of a copy, and the bounded copy of a body (shared with failover errors)."""

from __future__ import annotations

import pytest

from wsgate.http.parser import RequestHeadParser
from wsgate.proxy.body_copy import UNBOUNDED_CAP, BodyCopy, effective_limit
from wsgate.proxy.failover import FailoverStep, parse_failover_status
from wsgate.proxy.mirroring import CopyBudget, CopySource, MirrorSelector, copy_head


def head(raw: bytes):  # type: ignore[no-untyped-def]
    found = RequestHeadParser().feed(raw)
    assert found is not None
    return found[0]


def test_selector_matches_traefik() -> None:
    """Observed on Traefik 3.7.15: of 20 requests, a 30% mirror got requests 0, 3, 6, 10,
    13, 16 and a 50% mirror every other one from the first."""
    selector = MirrorSelector([30, 50])
    chosen = [selector.next() for _ in range(20)]
    assert [i for i, c in enumerate(chosen) if 0 in c] == [0, 3, 6, 10, 13, 16]
    assert [i for i, c in enumerate(chosen) if 1 in c] == list(range(0, 20, 2))


@pytest.mark.parametrize("percent", [0, 1, 33, 100])
def test_selector_share_is_exact_over_time(percent: int) -> None:
    selector = MirrorSelector([percent])
    assert sum(1 for _ in range(1000) if selector.next()) == percent * 10


def test_budget_bounds_copies_and_bytes() -> None:
    budget = CopyBudget(max_copies=2, max_bytes=100)
    assert budget.take(60)
    assert not budget.take(50)          # bytes
    assert budget.take(40)
    assert not budget.take(0)           # copies
    assert budget.dropped == 2
    budget.give(60)
    assert budget.take(10)
    assert (budget.copies, budget.bytes) == (2, 50)


def source(raw: bytes, **kw: object) -> CopySource:
    values: dict[str, object] = dict(client_ip="192.0.2.9", tls=False, trusted=False,
                                     server_name="gw", not_append_xff=False,
                                     suppress_xff=False, cookies=None)
    values.update(kw)
    return CopySource(head=head(raw), **values)  # type: ignore[arg-type]


def test_copy_head_is_rewritten_for_the_mirror_server() -> None:
    src = source(b"POST /a?b=1 HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n"
                 b"X-Forwarded-For: 1.2.3.4\r\n\r\n")
    text = copy_head(src, authority="mirror:8080", path_prefix="/base",
                     pass_host_header=False, with_body=True).decode()
    lines = text.split("\r\n")
    assert lines[0] == "POST /base/a?b=1 HTTP/1.1"
    assert "Host: mirror:8080" in lines
    assert "Content-Length: 5" in lines
    assert "X-Forwarded-For: 192.0.2.9" in lines       # untrusted: the client's is dropped
    assert "X-Forwarded-Host: app.test" in lines


def test_copy_without_body_says_so() -> None:
    for framing in (b"Content-Length: 5", b"Transfer-Encoding: chunked"):
        src = source(b"PUT /x HTTP/1.1\r\nHost: a\r\n" + framing + b"\r\n\r\n")
        text = copy_head(src, authority="m", path_prefix="", pass_host_header=True,
                         with_body=False).decode()
        assert "Content-Length: 0\r\n" in text
        assert "Transfer-Encoding" not in text and "Content-Length: 5" not in text


def test_copy_of_an_upgrade_keeps_the_upgrade() -> None:
    src = source(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                 b"Sec-WebSocket-Key: k\r\nSec-WebSocket-Version: 13\r\n\r\n", tls=True)
    text = copy_head(src, authority="m", path_prefix="", pass_host_header=True,
                     with_body=True).decode()
    assert "Connection: Upgrade" in text and "Upgrade: websocket" in text
    assert "X-Forwarded-Proto: wss" in text


def test_body_copy_keeps_pieces_until_its_limit() -> None:
    copy = BodyCopy(10)
    assert copy.add(b"hello", 5)
    assert copy.add(b"world", 10)
    assert copy.chunks == [b"hello", b"world"]
    assert not copy.add(b"!", 11)
    assert copy.dropped and copy.chunks == []
    assert not copy.add(b"more", 15)


def test_body_copy_bounds_chunk_framing_too() -> None:
    copy = BodyCopy(10)
    # One-byte chunks with long extensions: little payload, much framing.
    piece = b"1;" + b"x" * 4000 + b"\r\na\r\n"
    kept = [copy.add(piece, i + 1) for i in range(10)]
    assert all(kept)
    for _ in range(30):
        copy.add(piece, 10)
    assert copy.dropped


def test_no_limit_means_the_cap() -> None:
    assert effective_limit(-1) == UNBOUNDED_CAP
    assert effective_limit(0) == 0
    assert effective_limit(1234) == 1234


def test_failover_status_ranges() -> None:
    ranges = parse_failover_status(["500-504", "429,418"])
    step = FailoverStep("f@file", object(), ranges, 10)  # type: ignore[arg-type]
    assert [s for s in (101, 200, 418, 429, 499, 500, 504, 505) if step.catches(s)] == [
        418, 429, 500, 504]
    assert not step.refuses(10) and step.refuses(11)
    assert not FailoverStep("f", object(), ranges, -1).refuses(10**9)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"errors.status\[1\]"):
        parse_failover_status(["500", "5xx"])
    # 101 is the start of a WebSocket, never a failure.
    assert not FailoverStep("f", object(), parse_failover_status(["100-599"]),  # type: ignore
                            -1).catches(101)
