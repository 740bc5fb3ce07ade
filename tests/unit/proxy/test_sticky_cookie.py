"""Sticky cookie facts (name, value, Set-Cookie) and sticky routing."""

from __future__ import annotations

import hashlib

import pytest

from wsgate.proxy.balancer import Backend, PowerOfTwoChoices, WeightedRoundRobin
from wsgate.proxy.sticky import (
    StickyCookie,
    StickyTable,
    cookie_name,
    cookie_value,
    default_cookie_name,
    fnv1_64,
    format_set_cookie,
    legacy_cookie_values,
    parse_cookies,
    sanitize_cookie_name,
)

URL = "http://10.0.0.1:8080"


# -- name ---------------------------------------------------------------------


def test_default_name_by_hand() -> None:
    # sha1("_TRAEFIK_BACKEND_whoami@docker") = 633ff92eb7...
    assert hashlib.sha1(b"_TRAEFIK_BACKEND_whoami@docker").hexdigest().startswith("633ff")
    assert default_cookie_name("whoami@docker") == "_633ff"
    # sha1("_TRAEFIK_BACKEND_app@file") = fb0b0070d1...
    assert default_cookie_name("app@file") == "_fb0b0"


def test_default_name_matches_traefik_test_vectors() -> None:
    assert default_cookie_name("backend") == "_76eb3"
    assert default_cookie_name("/my/BACKEND-v1.0~rc1") == "_5f7bc"


def test_configured_name_is_sanitized_like_traefik() -> None:
    assert sanitize_cookie_name("/my/BACKEND-v1.0~rc1") == "_my_BACKEND-v1.0~rc1"
    assert sanitize_cookie_name("!#$%&'()*+-./:<=>?@[]^_`{|}~") == "!#$%&'__*+-._________^_`_|_~"
    assert sanitize_cookie_name("café") == "caf_"
    assert cookie_name("cookie", "backend") == "cookie"
    assert cookie_name("", "backend") == "_76eb3"
    assert cookie_name(None, "backend") == "_76eb3"


# -- value --------------------------------------------------------------------


def test_value_by_hand() -> None:
    # sha256("http://10.0.0.1:8080") = cc3dd0c247d6ff41e5a6...
    assert hashlib.sha256(URL.encode()).hexdigest()[:16] == "cc3dd0c247d6ff41"
    assert cookie_value(URL) == "cc3dd0c247d6ff41"
    assert Backend(URL).cookie_value == "cc3dd0c247d6ff41"


def test_fnv1_64_vectors_and_legacy_values() -> None:
    assert fnv1_64(b"") == 0xCBF29CE484222325
    assert fnv1_64(b"a") == 0xAF63BD4C8601B7BE
    assert fnv1_64(b"foobar") == 0x340D8765A4DDA9C2
    raw, once, twice = legacy_cookie_values("a")
    assert (raw, once) == ("a", "af63bd4c8601b7be")
    assert twice == format(fnv1_64(b"af63bd4c8601b7be"), "x")


def test_sticky_table_accepts_every_traefik_format() -> None:
    table = StickyTable([(URL, "one"), ("http://10.0.0.2:8080", "two")])
    for value in (cookie_value(URL), *legacy_cookie_values(URL)):
        assert table.lookup(value) == "one"
    assert table.lookup("nope") is None
    assert table.lookup(None) is None


# -- Set-Cookie -----------------------------------------------------------------


def test_set_cookie_defaults() -> None:
    assert format_set_cookie("_76eb3", "abc") == "_76eb3=abc; Path=/"
    assert StickyCookie("n").set_cookie("v") == "n=v; Path=/"


def test_set_cookie_every_field_in_go_order() -> None:
    expected = "test=v; Path=/foo; Domain=foo.com; Max-Age=42; HttpOnly; Secure; SameSite=None"
    assert (
        format_set_cookie(
            "test",
            "v",
            path="/foo",
            domain="foo.com",
            max_age=42,
            http_only=True,
            secure=True,
            same_site="none",
        )
        == expected
    )
    cookie = StickyCookie(
        "test",
        secure=True,
        http_only=True,
        same_site="none",
        max_age=42,
        path="/foo",
        domain="foo.com",
    )
    assert cookie.set_cookie("v") == expected


@pytest.mark.parametrize(
    ("kwargs", "attributes"),
    [
        ({"path": "/ws"}, "; Path=/ws"),
        ({"path": ""}, ""),
        ({"path": "/a;b\x01"}, "; Path=/ab"),
        ({"domain": "example.com"}, "; Path=/; Domain=example.com"),
        ({"domain": ".example.com"}, "; Path=/; Domain=example.com"),
        ({"domain": "10.1.2.3"}, "; Path=/; Domain=10.1.2.3"),
        ({"max_age": 3600}, "; Path=/; Max-Age=3600"),
        ({"max_age": 0}, "; Path=/"),
        ({"max_age": -1}, "; Path=/; Max-Age=0"),
        ({"http_only": True}, "; Path=/; HttpOnly"),
        ({"secure": True}, "; Path=/; Secure"),
        ({"same_site": "none"}, "; Path=/; SameSite=None"),
        ({"same_site": "LAX"}, "; Path=/; SameSite=Lax"),
        ({"same_site": "Strict"}, "; Path=/; SameSite=Strict"),
        ({"same_site": ""}, "; Path=/"),
        ({"same_site": None}, "; Path=/"),
    ],
)
def test_set_cookie_each_field(kwargs: dict[str, object], attributes: str) -> None:
    assert format_set_cookie("n", "v", **kwargs) == "n=v" + attributes  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [{"same_site": "sometimes"}, {"domain": "bad domain"}, {"domain": "-x.com"}, {"domain": "::1"}],
)
def test_invalid_settings_are_rejected(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        StickyCookie("n", **kwargs)  # type: ignore[arg-type]


def test_invalid_name_or_value_is_rejected() -> None:
    with pytest.raises(ValueError, match="token"):
        format_set_cookie("a b", "v")
    with pytest.raises(ValueError, match="quoting"):
        format_set_cookie("n", "a;b")


def test_for_service_applies_traefik_defaults() -> None:
    cookie = StickyCookie.for_service("whoami@docker")
    assert cookie.name == "_633ff"
    assert cookie.path == "/"
    assert cookie.set_cookie("x") == "_633ff=x; Path=/"
    named = StickyCookie.for_service("whoami@docker", name="my cookie", path="", same_site="lax")
    assert named.set_cookie("x") == "my_cookie=x; SameSite=Lax"


# -- Cookie header --------------------------------------------------------------


def test_parse_cookies() -> None:
    cookies = parse_cookies(['a=1; b="2"; bad name=3', " c=4 ;a=5", 'd=x"y', "e=", "=f"])
    assert cookies == {"a": "1", "b": "2", "c": "4", "e": ""}


# -- sticky routing ---------------------------------------------------------------


def sticky_wrr() -> WeightedRoundRobin:
    return WeightedRoundRobin(
        [Backend("http://first"), Backend("http://second", 2)], sticky=StickyCookie("test")
    )


def test_first_request_sets_cookie_next_ones_stick_without_setting_it() -> None:
    balancer = sticky_wrr()
    first = balancer.choose("192.0.2.1")
    assert first is not None
    assert first.set_cookies == (f"test={first.backend.cookie_value}; Path=/",)
    cookies = {"test": first.backend.cookie_value}
    for _ in range(5):
        again = balancer.choose("192.0.2.1", cookies)
        assert again is not None
        assert again.backend is first.backend
        assert again.set_cookies == ()


def test_unknown_cookie_value_gets_a_normal_pick_and_a_cookie() -> None:
    choice = sticky_wrr().choose("192.0.2.1", {"test": "0000000000000000"})
    assert choice is not None
    assert choice.set_cookies == (f"test={choice.backend.cookie_value}; Path=/",)


def test_legacy_cookie_sticks_and_is_rewritten() -> None:
    # Traefik's TestSticky_Fallback: a raw "second" cookie keeps going to "second".
    balancer = sticky_wrr()
    for legacy in legacy_cookie_values("http://second"):
        choice = balancer.choose("192.0.2.1", {"test": legacy})
        assert choice is not None
        assert choice.backend.url == "http://second"
        assert choice.set_cookies == (f"test={cookie_value('http://second')}; Path=/",)


def test_sticky_server_down_falls_back_and_resets_cookie() -> None:
    balancer = sticky_wrr()
    balancer.set_healthy("http://second", False)
    choice = balancer.choose("192.0.2.1", {"test": cookie_value("http://second")})
    assert choice is not None
    assert choice.backend.url == "http://first"
    assert choice.set_cookies == (f"test={cookie_value('http://first')}; Path=/",)


def test_sticky_to_fenced_server_is_honoured_without_new_cookie() -> None:
    fenced = Backend("http://old", fenced=True)
    balancer = PowerOfTwoChoices([Backend("http://new"), fenced], sticky=StickyCookie("s"))
    choice = balancer.choose("192.0.2.1", {"s": fenced.cookie_value})
    assert choice is not None
    assert choice.backend is fenced and choice.set_cookies == ()


def test_cookies_ignored_without_sticky_config() -> None:
    balancer = WeightedRoundRobin([Backend("http://a"), Backend("http://b")])
    choices = [balancer.choose("192.0.2.1", {"x": cookie_value("http://b")}) for _ in range(2)]
    assert [c.backend.url for c in choices if c] == ["http://a", "http://b"]
    assert all(c and c.set_cookies == () for c in choices)
