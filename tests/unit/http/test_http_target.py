"""Traefik's entryPoint path clean-ups (opt-in): normalizePath, sanitizePath, semicolons."""

from __future__ import annotations

import pytest

from wsgate.http import HTTPParseError, clean_target, normalize_path, sanitize_path


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/plain", "/plain"),
        ("/%41%62%7e%2d%2E%5F%30", "/Ab~-._0"),
        ("/a%2fb%3a", "/a%2Fb%3A"),
        ("/ws/http%3A%2F%2Ftest", "/ws/http%3A%2F%2Ftest"),
        ("/%c3%a9", "/%C3%A9"),
        ("/%25", "/%25"),
    ],
)
def test_normalize_path(path: str, expected: str) -> None:
    assert normalize_path(path) == expected


@pytest.mark.parametrize("path", ["/a%", "/a%2", "/a%zz"])
def test_normalize_rejects_bad_escapes(path: str) -> None:
    with pytest.raises(HTTPParseError) as info:
        normalize_path(path)
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/a/b", "/a/b"),
        ("/a//b", "/a/b"),
        ("//a", "/a"),
        ("/a/./b", "/a/b"),
        ("/a/../b", "/b"),
        ("/../../a", "/a"),
        ("/a/b/..", "/a"),
        ("/a/b/../", "/a/"),
        ("/a/", "/a/"),
        ("/a/.", "/a"),
        ("/", "/"),
        ("/.", "/"),
        ("/a%2F..%2Fb", "/a%2F..%2Fb"),
        ("/a/%2E%2E/b", "/a/%2E%2E/b"),
        ("/.well-known/x", "/.well-known/x"),
    ],
)
def test_sanitize_path(path: str, expected: str) -> None:
    assert sanitize_path(path) == expected


def test_clean_target() -> None:
    assert clean_target("/a/%2e%2e/b//c?x=1;y=2") == "/b/c?x=1&y=2"
    assert clean_target("/a?x;y", query_semicolons="encode") == "/a?x%3By"
    assert clean_target("/a//b?x;y", sanitize=False, query_semicolons="keep") == "/a//b?x;y"
    assert clean_target("/a;b") == "/a;b"
    assert clean_target("/a?") == "/a?"
