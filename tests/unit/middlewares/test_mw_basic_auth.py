"""basicAuth and the htpasswd hashes."""

from __future__ import annotations

import base64

import pytest
from mw_support import build, header, make_ctx, settle

from wsgate.middlewares import PASS, Answer, Blocking, Defer, MiddlewareError, htpasswd
from wsgate.middlewares.basic_auth import parse_basic_credentials, read_users_file

TEST = "test:$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/"  # password "test"
TEST2 = "test2:$apr1$d9hr9HBB$4HxwgUir3HP4EsggP/QNo0"  # password "test2"
BCRYPT = "test:$2a$04$.8sTYfcxbSplCtoxt5TdJOgpBYkarKtZYsYfYxQ1edbYRuO1DNi0e"  # "test"


def basic(user: str, password: str) -> tuple[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return ("Authorization", f"Basic {token}")


def attempt(mw, *headers, websocket=False):
    ctx = make_ctx("/ws" if websocket else "/", headers=list(headers), websocket=websocket)
    return settle(mw.on_request(ctx)), ctx


# -- hashes ------------------------------------------------------------------------------------


def test_md5_crypt_matches_openssl():
    assert htpasswd.md5_crypt(b"test", b"H6uskkkW") == b"$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/"
    # openssl passwd -1 -salt abcdefgh secret
    assert htpasswd.md5_crypt(b"secret", b"abcdefgh", b"$1$") == \
        b"$1$abcdefgh$cHJi5PXp/ki/ktXzqlk6I1"
    # Long passwords (more than one 16-byte block) and empty ones.
    long_hash = htpasswd.md5_crypt(b"x" * 40, b"saltsalt").decode()
    assert htpasswd.check("x" * 40, long_hash) and not htpasswd.check("x" * 39, long_hash)
    empty = htpasswd.md5_crypt(b"", b"ab").decode()
    assert htpasswd.check("", empty)


def test_hash_schemes():
    assert htpasswd.check("test", "$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/")
    assert not htpasswd.check("Test", "$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/")
    assert htpasswd.check("password", "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=")
    assert not htpasswd.check("passw0rd", "{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=")
    assert htpasswd.check("secret", "$1$abcdefgh$cHJi5PXp/ki/ktXzqlk6I1")
    assert not htpasswd.check("test", "test")  # plain text never matches, as in Traefik
    assert htpasswd.scheme("$2y$05$abc") == "bcrypt" and htpasswd.is_slow("$2b$x")
    assert htpasswd.scheme("plain") == "unknown"


def test_bcrypt_hashes():
    pytest.importorskip("bcrypt")
    hashed = BCRYPT.split(":", 1)[1]
    assert htpasswd.check("test", hashed)
    assert not htpasswd.check("nope", hashed)
    for prefix in ("$2y$", "$2b$", "$2x$"):
        assert htpasswd.check("test", prefix + hashed[4:])
    assert not htpasswd.check("test" * 30, hashed)  # > 72 bytes: no crash


# -- the middleware ----------------------------------------------------------------------------


def test_valid_credentials_pass_and_the_user_is_known():
    mw = build({"basicAuth": {"users": [TEST, TEST2]}})
    decision, ctx = attempt(mw, basic("test2", "test2"))
    assert decision is PASS
    assert ctx.user == "test2"
    assert ctx.has("Authorization")  # kept unless removeHeader


@pytest.mark.parametrize("auth", [
    None, ("Authorization", "Bearer abc"), ("Authorization", "Basic !!!"),
    ("Authorization", "Basic " + base64.b64encode(b"no-colon").decode()),
    basic("test", "wrong"), basic("nobody", "test"),
])
def test_missing_or_wrong_credentials_get_401(auth):
    mw = build({"basicAuth": {"users": [TEST]}})
    decision, _ = attempt(mw, *([auth] if auth else []))
    assert isinstance(decision, Answer) and decision.status == 401
    assert header(decision.headers, "WWW-Authenticate") == 'Basic realm="traefik"'
    assert header(decision.headers, "Content-Type") == "text/plain"
    assert decision.body == b"401 Unauthorized\n"


def test_basic_prefix_is_case_insensitive():
    mw = build({"basicAuth": {"users": [TEST]}})
    token = base64.b64encode(b"test:test").decode()
    assert attempt(mw, ("Authorization", f"bAsIc {token}"))[0] is PASS


def test_realm_remove_header_and_header_field():
    mw = build({"basicAuth": {"users": [TEST], "realm": 'My "Realm"', "removeHeader": True,
                              "headerField": "X-WebAuth-User"}})
    decision, _ = attempt(mw)
    assert header(decision.headers, "WWW-Authenticate") == r'Basic realm="My \"Realm\""'
    decision, ctx = attempt(mw, basic("test", "test"), ("X-WebAuth-User", "spoofed"))
    assert decision is PASS
    assert not ctx.has("Authorization")
    assert ctx.get_all("X-WebAuth-User") == ["test"]


def test_a_websocket_handshake_with_credentials():
    mw = build({"basicAuth": {"users": [TEST]}})
    decision, ctx = attempt(mw, basic("test", "test"), websocket=True)
    assert decision is PASS and ctx.to_head().is_upgrade
    decision, _ = attempt(mw, websocket=True)
    assert isinstance(decision, Answer) and decision.status == 401


def test_users_file(tmp_path):
    path = tmp_path / "users"
    path.write_text(f"# comment\n\n  {TEST}  \r\n{TEST2}\n")
    mw = build({"basicAuth": {"usersFile": str(path)}})
    assert attempt(mw, basic("test", "test"))[0] is PASS
    assert attempt(mw, basic("test2", "test2"))[0] is PASS
    assert read_users_file(str(path)) == [TEST, TEST2]


def test_inline_users_override_the_file(tmp_path):
    path = tmp_path / "users"
    path.write_text(TEST2 + "\n")
    overridden = "test2:$apr1$mK.GtItK$ncnLYvNLek0weXdxo68690"  # password "overridden"
    mw = build({"basicAuth": {"usersFile": str(path), "users": [overridden]}})
    assert attempt(mw, basic("test2", "overridden"))[0] is PASS
    assert isinstance(attempt(mw, basic("test2", "test2"))[0], Answer)


def test_configuration_errors_name_the_field(tmp_path):
    with pytest.raises(MiddlewareError) as info:
        build({"basicAuth": {"users": [TEST, "justaname"]}})
    assert info.value.field == "basicAuth.users[1]"
    assert "name:hash" in info.value.detail
    with pytest.raises(MiddlewareError) as info:
        build({"basicAuth": {"users": ["a:b:c"]}})
    assert info.value.field == "basicAuth.users[0]"
    with pytest.raises(MiddlewareError) as info:
        build({"basicAuth": {"usersFile": str(tmp_path / "missing")}})
    assert info.value.field == "basicAuth.usersFile"
    assert "No such file" in info.value.detail
    bad = tmp_path / "bad"
    bad.write_text(f"{TEST}\nbroken line\n")
    with pytest.raises(MiddlewareError) as info:
        build({"basicAuth": {"usersFile": str(bad)}})
    assert "user line 2" in info.value.field
    empty = tmp_path / "empty"
    empty.write_text("# nobody\n")
    with pytest.raises(MiddlewareError, match="no users found"):
        build({"basicAuth": {"usersFile": str(empty)}})
    with pytest.raises(MiddlewareError, match="no users found"):
        build({"basicAuth": {}})


def test_a_plain_text_password_loads_with_a_warning_and_never_matches():
    mw = build({"basicAuth": {"users": ["test:test", TEST2]}})
    assert any("never matches" in w for w in mw.warnings)
    assert isinstance(attempt(mw, basic("test", "test"))[0], Answer)
    assert attempt(mw, basic("test2", "test2"))[0] is PASS


def test_bcrypt_checks_are_handed_off_and_remembered():
    pytest.importorskip("bcrypt")
    mw = build({"basicAuth": {"users": [BCRYPT]}})
    ctx = make_ctx("/", headers=[basic("test", "test")])
    decision = mw.on_request(ctx)
    assert isinstance(decision, Defer) and isinstance(decision.work, Blocking)
    assert settle(decision) is PASS
    # The same credentials again: remembered, no second bcrypt run.
    assert mw.on_request(make_ctx("/", headers=[basic("test", "test")])) is PASS
    # A wrong password is checked (off the reactor) every time.
    wrong = mw.on_request(make_ctx("/", headers=[basic("test", "bad")]))
    assert isinstance(wrong, Defer)
    assert isinstance(settle(wrong), Answer)


def test_an_unknown_user_still_costs_a_hash():
    pytest.importorskip("bcrypt")
    mw = build({"basicAuth": {"users": [BCRYPT]}})
    decision = mw.on_request(make_ctx("/", headers=[basic("ghost", "test")]))
    assert isinstance(decision, Defer)  # the first user's hash is computed anyway
    assert isinstance(settle(decision), Answer)


def test_bcrypt_without_the_package_is_a_configuration_error(monkeypatch):
    monkeypatch.setattr(htpasswd, "bcrypt_available", lambda: False)
    with pytest.raises(MiddlewareError, match="needs the Python package bcrypt"):
        build({"basicAuth": {"users": [BCRYPT]}})


def test_parse_basic_credentials():
    assert parse_basic_credentials("Basic " + base64.b64encode(b"a:b:c").decode()) == \
        ("a", b"b:c")
    assert parse_basic_credentials("Basic") is None
    assert parse_basic_credentials(None) is None
    assert parse_basic_credentials("Basic YQ") is None  # bad padding
