"""Where the static configuration comes from: files (lookup order, formats), flags,
environment variables, and Traefik's rule that only one of them is read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from wsgate.config.errors import ConfigError
from wsgate.config.static_sources import (
    config_file_candidates,
    env_pairs,
    flag_kind,
    load_static,
    parse_cli_flags,
    split_cli_args,
)


@pytest.fixture
def where(tmp_path: Path):
    """A fake machine: /etc/traefik, $XDG_CONFIG_HOME, $HOME/.config and the working dir."""
    dirs = {name: tmp_path / name for name in ("etc", "xdg", "home", "cwd")}
    for d in dirs.values():
        d.mkdir()
    (dirs["home"] / ".config").mkdir()
    return dirs


def env_for(where, **extra: str) -> dict[str, str]:
    return {"HOME": str(where["home"]), "XDG_CONFIG_HOME": str(where["xdg"]), **extra}


def run(where, argv=(), environ=None, **kw):
    environ = env_for(where) if environ is None else environ
    return load_static(list(argv), environ, str(where["cwd"]), etc_dir=str(where["etc"]), **kw)


def addresses(loaded) -> dict[str, str]:
    return {name: ep.address for name, ep in loaded.config.entry_points.items()}


def write(path: Path, port: int) -> Path:
    if path.suffix == ".toml":
        path.write_text(f'[entryPoints.ep]\naddress = ":{port}"\n')
    else:
        path.write_text(f'entryPoints:\n  ep:\n    address: ":{port}"\n')
    return path


# --------------------------------------------------------------------------- defaults

def test_no_source_gives_defaults(where):
    loaded = run(where)
    assert (loaded.kind, loaded.source, loaded.file) == ("defaults", "defaults", None)
    assert addresses(loaded) == {"http": ":80"}
    assert loaded.warnings == ()


# --------------------------------------------------------------------------- flags

def test_flags_in_every_spelling(where):
    loaded = run(where, [
        "--entryPoints.web.address=:8000",
        "--entryPoints.websecure.address", "127.0.0.1:8443",      # value as next argument
        "-entryPoints.alt.address=[::1]:9000",                     # one dash
        "--api.insecure",                                           # bare boolean
        "--ping",                                                   # bare section
        "--metrics.prometheus",
        "--ENTRYPOINTS.Web.FORWARDEDHEADERS.TRUSTEDIPS=1.2.3.4,10.0.0.0/8",
        "--entryPoints.web.forwardedHeaders.trustedIPs=::1",        # repeated list appends
        "--entryPoints.websecure.http.tls.domains[0].main=example.com",
        "--entryPoints.websecure.http.tls.domains[0].sans=a.example.com,b.example.com",
        "--metrics.prometheus.headerLabels.useragent=User-Agent",
        "--log.level", "debug",
    ])
    assert loaded.kind == "flags" and loaded.source == "flags"
    cfg = loaded.config
    assert addresses(loaded) == {"web": ":8000", "websecure": "127.0.0.1:8443",
                                 "alt": "[::1]:9000", "traefik": ":8080"}
    assert cfg.api is not None and cfg.api.insecure
    assert cfg.ping is not None
    assert cfg.metrics is not None and cfg.metrics.prometheus is not None
    assert cfg.metrics.prometheus.header_labels == {"useragent": "User-Agent"}
    assert cfg.entry_points["web"].forwarded_headers.trusted_ips == \
        ("1.2.3.4", "10.0.0.0/8", "::1")
    tls = cfg.entry_points["websecure"].http.tls
    assert tls is not None and tls.domains[0].main == "example.com"
    assert tls.domains[0].sans == ("a.example.com", "b.example.com")
    assert cfg.log.level == "DEBUG"
    assert str(loaded.marks["entryPoints.web.address"]) == "flag --entryPoints.web.address"


def test_flag_keys_are_case_insensitive_and_names_keep_their_first_spelling(where):
    loaded = run(where, ["--entryPoints.MyWeb.address=:1", "--ENTRYPOINTS.myweb.ADDRESS=:2",
                         "--entrypoints.MYWEB.reuseport=true"])
    assert addresses(loaded) == {"MyWeb": ":2"}
    assert loaded.config.entry_points["MyWeb"].reuse_port


def test_boolean_flags_take_explicit_values_and_sections_can_be_disabled(where):
    loaded = run(where, ["--entryPoints.web.address=:1", "--api.insecure=false",
                         "--ping=false", "--api.dashboard=0"])
    assert loaded.config.api is not None
    assert loaded.config.api.insecure is False
    assert loaded.config.api.dashboard is False
    assert loaded.config.ping is None
    # as in Traefik, a bare boolean flag takes no value from the next argument
    assert split_cli_args(["--api.dashboard", "false"]) == (["--api.dashboard"], ["false"])
    with pytest.raises(ConfigError, match="'false' is not a static configuration flag"):
        run(where, ["--api.dashboard", "false"])


def test_flag_errors_name_the_flag(where):
    with pytest.raises(ConfigError) as info:
        run(where, ["--entryPoints.web.address=8000", "--log.level=loud",
                    "--entryPoints.web.transport.respondingTimeouts.readTimeout=-5s"])
    assert [str(d) for d in info.value.diagnostics] == [
        "flag --entryPoints.web.address: entryPoints.web.address: missing port in '8000' "
        "(write ':8000' to listen on port 8000 of every interface)",
        "flag --entryPoints.web.transport.respondingTimeouts.readTimeout: "
        "entryPoints.web.transport.respondingTimeouts.readTimeout: must not be negative, "
        "got -5s",
        "flag --log.level: log.level: expected one of 'TRACE', 'DEBUG', 'INFO', 'WARN', "
        "'ERROR', 'FATAL', 'PANIC', got the text 'loud'",
    ]


def test_flag_syntax_errors(where):
    with pytest.raises(ConfigError, match=r"flag --log.level: flag needs a value"):
        run(where, ["--log.level"])
    with pytest.raises(ConfigError, match=r"'--workers' is not a static configuration flag"):
        run(where, ["--entryPoints.web.address=:1", "--workers", "4"])
    with pytest.raises(ConfigError, match=r"flag --strict: expected true or false"):
        run(where, ["--strict=maybe"])


def test_unknown_flag_keys_warn_or_fail_with_strict(where):
    argv = ["--entryPoints.web.address=:1", "--entryPoints.web.bogus=1"]
    loaded = run(where, argv)
    assert [str(w).split(" (known")[0] for w in loaded.warnings] == \
        ["flag --entryPoints.web.bogus: entryPoints.web.bogus: unknown key"]
    with pytest.raises(ConfigError, match=r"entryPoints\.web\.bogus: unknown key"):
        run(where, [*argv, "--strict"])
    with pytest.raises(ConfigError, match=r"entryPoints\.web\.bogus: unknown key"):
        run(where, argv, strict=True)


def test_split_cli_args_separates_config_flags_from_other_options():
    config, other = split_cli_args([
        "--workers", "4", "--entryPoints.web.address", ":8000", "--api.insecure",
        "--nodaemon", "--configFile", "x.yml", "--strict", "--ping", "--log.level", "DEBUG",
        "-n", "--providers.file.filename=dyn.yml", "--", "--api"])
    assert config == ["--entryPoints.web.address", ":8000", "--api.insecure",
                      "--configFile", "x.yml", "--strict", "--ping", "--log.level", "DEBUG",
                      "--providers.file.filename=dyn.yml"]
    assert other == ["--workers", "4", "--nodaemon", "-n", "--", "--api"]


def test_flag_kind():
    assert flag_kind(["api", "insecure"]) == "bool"
    assert flag_kind(["PING"]) == "section"
    assert flag_kind(["log"]) == "section"
    assert flag_kind(["entryPoints", "any", "address"]) == "value"
    assert flag_kind(["entryPoints", "any", "http", "tls"]) == "section"
    assert flag_kind(["entryPoints", "x", "http", "tls", "domains", "0", "sans"]) == "list"
    assert flag_kind(["entryPoints", "x", "nope"]) == "unknown"
    assert flag_kind(["tracing", "otlp"]) == "unknown"


def test_parse_cli_flags_reads_loader_options():
    parsed = parse_cli_flags(["--configfile", "a.yml", "--strict", "--ping"])
    assert (parsed.config_file, parsed.strict) == ("a.yml", True)
    assert [(segs, value) for segs, value, _ in parsed.pairs] == [(["ping"], "true")]


# --------------------------------------------------------------------------- environment

def test_environment_with_both_prefixes(where):
    loaded = run(where, environ={
        "TRAEFIK_ENTRYPOINTS_WEB_ADDRESS": ":81",
        "TRAEFIK_ENTRYPOINTS_WebSecure_ADDRESS": ":443",
        "WSGATE_ENTRYPOINTS_WEB_ADDRESS": ":82",          # WSGATE_ wins for the same key
        "TRAEFIK_ENTRYPOINTS_WEB_FORWARDEDHEADERS_TRUSTEDIPS": "10.0.0.0/8,::1",
        "TRAEFIK_ENTRYPOINTS_WEBSECURE_HTTP_TLS_DOMAINS_0_MAIN": "example.com",
        "WSGATE_PING": "true",
        "TRAEFIK_VERSION": "3.7",                          # not a configuration key
        "WSGATE_WORKERS": "4",
        "traefik_api_insecure": "true",                    # the prefix is in capitals
    })
    assert (loaded.kind, loaded.source) == ("environment", "environment")
    assert addresses(loaded) == {"web": ":82", "websecure": ":443", "traefik": ":8080"}
    cfg = loaded.config
    assert cfg.entry_points["web"].forwarded_headers.trusted_ips == ("10.0.0.0/8", "::1")
    tls = cfg.entry_points["websecure"].http.tls
    assert tls is not None and tls.domains[0].main == "example.com"
    assert cfg.ping is not None and cfg.api is None
    assert str(loaded.marks["entryPoints.web.address"]) == "env WSGATE_ENTRYPOINTS_WEB_ADDRESS"


def test_environment_errors_name_the_variable(where):
    with pytest.raises(ConfigError) as info:
        run(where, environ={"TRAEFIK_ENTRYPOINTS_WEB_ADDRESS": ":80",
                            "TRAEFIK_ENTRYPOINTS_WEB_FORWARDEDHEADERS_TRUSTEDIPS": "1.2.3.400"})
    assert str(info.value) == (
        "env TRAEFIK_ENTRYPOINTS_WEB_FORWARDEDHEADERS_TRUSTEDIPS: "
        "entryPoints.web.forwardedHeaders.trustedIPs[0]: '1.2.3.400' is not an IP address or "
        "a CIDR range (e.g. 10.0.0.0/8)")


def test_env_pairs_order_and_segments():
    pairs = env_pairs({"WSGATE_LOG_LEVEL": "INFO", "TRAEFIK_LOG_LEVEL": "DEBUG",
                       "TRAEFIK_OTHER": "x"})
    assert [(segs, value) for segs, value, _ in pairs] == \
        [(["log", "level"], "DEBUG"), (["log", "level"], "INFO")]


# --------------------------------------------------------------------------- one source only

def test_a_file_wins_over_flags_and_environment(where):
    write(where["cwd"] / "traefik.yml", 8001)
    loaded = run(where, ["--entryPoints.fromflag.address=:8002"],
                 env_for(where, TRAEFIK_ENTRYPOINTS_FROMENV_ADDRESS=":8003"))
    assert loaded.kind == "file"
    assert loaded.file == str(where["cwd"] / "traefik.yml")
    assert addresses(loaded) == {"ep": ":8001"}
    assert [str(w) for w in loaded.warnings] == [
        f"flags ignored because the configuration comes from the file "
        f"{where['cwd'] / 'traefik.yml'}: --entryPoints.fromflag.address (as in Traefik, only "
        f"one source is read: a file, else flags, else environment variables)",
        f"environment variables ignored because the configuration comes from the file "
        f"{where['cwd'] / 'traefik.yml'}: TRAEFIK_ENTRYPOINTS_FROMENV_ADDRESS (as in Traefik, "
        f"only one source is read: a file, else flags, else environment variables)",
    ]


def test_flags_win_over_environment(where):
    loaded = run(where, ["--entryPoints.fromflag.address=:8002"],
                 env_for(where, TRAEFIK_ENTRYPOINTS_FROMENV_ADDRESS=":8003"))
    assert loaded.kind == "flags"
    assert addresses(loaded) == {"fromflag": ":8002"}
    assert len(loaded.warnings) == 1
    assert "TRAEFIK_ENTRYPOINTS_FROMENV_ADDRESS" in str(loaded.warnings[0])


def test_loader_options_alone_do_not_make_flags_the_source(where):
    loaded = run(where, ["--strict"], env_for(where, TRAEFIK_ENTRYPOINTS_E_ADDRESS=":8003"))
    assert loaded.kind == "environment" and loaded.strict
    assert addresses(loaded) == {"e": ":8003"}


# --------------------------------------------------------------------------- files

def test_config_file_flag_forms(where):
    write(where["cwd"] / "conf.toml", 8100)
    write(where["cwd"] / "traefik.yml", 8101)
    for argv in (["--configFile=conf.toml"], ["--configFile", "conf.toml"],
                 ["--configfile=conf.toml"], [f"--configFile={where['cwd'] / 'conf.toml'}"]):
        loaded = run(where, argv)
        assert addresses(loaded) == {"ep": ":8100"}, argv
        assert loaded.kind == "file"
    assert run(where, ["--configFile=conf.toml"]).source == "file conf.toml"


def test_missing_config_file_is_an_error(where):
    write(where["cwd"] / "traefik.yml", 8101)
    with pytest.raises(ConfigError) as info:
        run(where, ["--configFile=nope.yml"])
    assert str(info.value) == "flag --configFile=nope.yml: configuration file not found"


@pytest.mark.parametrize("name", ["conf.json", "conf"])
def test_unsupported_extension_is_an_error(where, name):
    (where["cwd"] / name).write_text("{}")
    with pytest.raises(ConfigError, match=r"unsupported file extension .* \(use .yml, .yaml or "
                                          r".toml\)"):
        run(where, [f"--configFile={name}"])


def test_unreadable_file_is_an_error(where):
    (where["cwd"] / "dir.yml").mkdir()
    with pytest.raises(ConfigError, match=r"^dir.yml: cannot read the configuration file"):
        run(where, ["--configFile=dir.yml"])


def test_lookup_order_follows_traefik(where):
    """/etc/traefik, then $XDG_CONFIG_HOME, then $HOME/.config, then the working directory;
    in each, .toml then .yaml then .yml (checked against the Traefik 3.7 binary)."""
    write(where["etc"] / "traefik.yml", 1)
    write(where["xdg"] / "traefik.yml", 2)
    write(where["home"] / ".config" / "traefik.yml", 3)
    write(where["cwd"] / "traefik.yml", 4)
    write(where["cwd"] / "traefik.yaml", 5)
    write(where["cwd"] / "traefik.toml", 6)
    order = []
    for path in [where["etc"] / "traefik.yml", where["xdg"] / "traefik.yml",
                 where["home"] / ".config" / "traefik.yml", where["cwd"] / "traefik.toml",
                 where["cwd"] / "traefik.yaml", where["cwd"] / "traefik.yml"]:
        loaded = run(where)
        order.append(addresses(loaded)["ep"])
        assert loaded.file == str(path)
        path.unlink()
    assert order == [":1", ":2", ":3", ":6", ":5", ":4"]
    assert run(where).kind == "defaults"


def test_wsgate_files_come_before_traefik_files(where):
    write(where["etc"] / "traefik.yml", 1)
    write(where["cwd"] / "wsgate.yml", 2)
    assert addresses(run(where)) == {"ep": ":2"}
    write(where["xdg"] / "wsgate.toml", 3)
    assert addresses(run(where)) == {"ep": ":3"}


def test_unset_directories_are_skipped(where):
    write(where["cwd"] / "traefik.yml", 4)
    assert addresses(run(where, environ={})) == {"ep": ":4"}
    candidates = config_file_candidates({}, "/w", etc_dir="/e")
    assert candidates[:3] == ["/e/wsgate.toml", "/e/wsgate.yaml", "/e/wsgate.yml"]
    assert candidates[3:6] == ["/w/wsgate.toml", "/w/wsgate.yaml", "/w/wsgate.yml"]
    assert len(candidates) == 12
    full = config_file_candidates({"HOME": "/h", "XDG_CONFIG_HOME": "/x"}, "/w", etc_dir="/e")
    assert [os.path.dirname(p) for p in full[::3]] == \
        ["/e", "/x", "/h/.config", "/w", "/e", "/x", "/h/.config", "/w"]


def test_file_errors_are_located_yaml(where):
    (where["cwd"] / "traefik.yml").write_text(
        "entryPoints:\n  web:\n    address: ':80'\n    http:\n      redirections:\n"
        "        entryPoint:\n          to: websecure\n")
    path = where["cwd"] / "traefik.yml"
    with pytest.raises(ConfigError) as info:
        run(where)
    assert str(info.value) == (
        f"{path}:7:11: entryPoints.web.http.redirections.entryPoint.to: redirection target "
        f"'websecure' is not a defined entryPoint (defined: web)")


def test_file_errors_are_located_toml(where):
    (where["cwd"] / "traefik.toml").write_text(
        '[entryPoints.web]\naddress = ":80"\n[entryPoints.web.transport.respondingTimeouts]\n'
        'readTimeout = "abc"\n')
    path = where["cwd"] / "traefik.toml"
    with pytest.raises(ConfigError) as info:
        run(where)
    assert str(info.value) == (
        f"{path}:4:1: entryPoints.web.transport.respondingTimeouts.readTimeout: invalid "
        f"duration 'abc' (expected e.g. 10s, 1m30s, 250ms)")


def test_syntax_errors_are_located(where):
    (where["cwd"] / "bad.yml").write_text("entryPoints:\n  web: [\n")
    with pytest.raises(ConfigError, match=r"^bad.yml:3:1: YAML syntax error"):
        run(where, ["--configFile=bad.yml"])
    (where["cwd"] / "bad.toml").write_text("[entryPoints\n")
    with pytest.raises(ConfigError, match=r"^bad.toml:1:13: TOML syntax error"):
        run(where, ["--configFile=bad.toml"])


def test_unknown_file_keys_warn_or_fail_with_strict(where):
    (where["cwd"] / "traefik.yml").write_text("entryPoints:\n  web:\n    address: ':80'\n"
                                             "pingg: {}\ntracing: {}\n")
    loaded = run(where)
    path = where["cwd"] / "traefik.yml"
    assert [str(w).split(" (known")[0] for w in loaded.warnings] == [
        f"{path}:4:1: pingg: unknown key",
        f"{path}:5:1: tracing: tracing is not supported by wsgate; ignored",
    ]
    with pytest.raises(ConfigError, match=r"4:1: pingg: unknown key"):
        run(where, ["--strict"])
