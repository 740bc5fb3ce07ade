"""Starting wsgate as users do: good and bad static configurations, every source, bind errors."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.integration.harness import ROOT, Proc, start_http_backend

TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
          "-n", "--pidfile=", "wsgate"]


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    """An environment with no configuration file to be found and no TRAEFIK_/WSGATE_ keys."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TRAEFIK_", "WSGATE_"))}
    env.update({"HOME": str(tmp / "home"), "XDG_CONFIG_HOME": str(tmp / "xdg"),
                "PYTHONPATH": str(ROOT)})
    env.update(extra)
    return env


def _run(args: list[str], tmp: Path, env: dict[str, str] | None = None,
         timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=tmp, env=env or _env(tmp), capture_output=True,
                          text=True, timeout=timeout)


def _http_get(port: int, path: str, host: str = "example.test") -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": host})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_yaml_syntax_error_exits_with_located_message(tmp_path: Path) -> None:
    config = tmp_path / "traefik.yml"
    config.write_text("entryPoints:\n  web:\n    address: [\n")
    result = _run([*TWISTD, "--configFile", str(config)], tmp_path)
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert f"{config}:4:1" in out
    assert "YAML syntax error" in out
    assert "Traceback" not in out
    assert "listening" not in out


def test_bad_value_names_file_key_path_and_line(tmp_path: Path) -> None:
    config = tmp_path / "traefik.toml"
    config.write_text('[entryPoints.web]\n  address = ":8000"\n'
                      '[entryPoints.web.transport.respondingTimeouts]\n'
                      '  readTimeout = "soon"\n')
    result = _run([*TWISTD, "--configFile", str(config)], tmp_path)
    assert result.returncode != 0
    out = result.stderr
    assert f"{config}:4:3: entryPoints.web.transport.respondingTimeouts.readTimeout" in out
    assert "invalid duration" in out
    assert "listening" not in result.stdout


def test_unknown_key_is_an_error_with_strict(tmp_path: Path) -> None:
    config = tmp_path / "traefik.yml"
    config.write_text('entryPoints:\n  web:\n    address: "127.0.0.1:0"\n    adress: x\n')
    result = _run([*TWISTD, "--configFile", str(config), "--strict"], tmp_path)
    assert result.returncode != 0
    assert f"{config}:4:5: entryPoints.web.adress: unknown key" in result.stderr


def test_port_in_use_is_a_startup_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = _run([*TWISTD, f"--entryPoints.web.address=127.0.0.1:{port}"], tmp_path)
    assert result.returncode != 0
    out = result.stdout + result.stderr
    assert f"cannot listen on entryPoint 'web' (127.0.0.1:{port})" in out
    assert "Address already in use" in out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dynamic(tmp: Path, backend_port: int) -> Path:
    path = tmp / "dynamic.yml"
    path.write_text(yaml.safe_dump({"http": {
        "routers": {"r": {"rule": "Host(`example.test`)", "service": "s"}},
        "services": {"s": {"loadBalancer": {"servers": [
            {"url": f"http://127.0.0.1:{backend_port}"}]}}},
    }}))
    return path


@pytest.mark.parametrize("source", ["flags", "env-traefik", "env-wsgate", "console-script"])
def test_every_static_source_routes(tmp_path: Path, source: str) -> None:
    backend, backend_port = start_http_backend("one")
    port = _free_port()
    dyn = _dynamic(tmp_path, backend_port)
    env = _env(tmp_path)
    args = list(TWISTD)
    if source == "flags":
        args += [f"--entryPoints.web.address=127.0.0.1:{port}",
                 f"--providers.file.filename={dyn}", "--log.level=INFO"]
    elif source == "console-script":
        args = [sys.executable, "-c", "from wsgate.cli import main; main()",
                "--entryPoints.web.address", f"127.0.0.1:{port}",
                f"--providers.file.filename={dyn}", "--log.level", "INFO"]
    else:
        prefix = "TRAEFIK_" if source == "env-traefik" else "WSGATE_"
        env[f"{prefix}ENTRYPOINTS_WEB_ADDRESS"] = f"127.0.0.1:{port}"
        env[f"{prefix}PROVIDERS_FILE_FILENAME"] = str(dyn)
        env[f"{prefix}LOG_LEVEL"] = "INFO"
    proc = Proc(args, env=env, cwd=tmp_path, name="wsgate")
    try:
        proc.wait_for("wsgate ready")
        status, body = _http_get(port, "/hello")
        assert status == 200
        assert json.loads(body)["backend"] == "one"
    finally:
        # twistd re-raises the signal that stopped it, as a clean stop by SIGTERM
        assert proc.stop() in (0, -signal.SIGTERM)
        backend.stop()


def test_config_file_found_in_working_directory(tmp_path: Path) -> None:
    backend, backend_port = start_http_backend("cwd")
    port = _free_port()
    dyn = _dynamic(tmp_path, backend_port)
    (tmp_path / "traefik.yml").write_text(yaml.safe_dump({
        "entryPoints": {"web": {"address": f"127.0.0.1:{port}"}},
        "providers": {"file": {"filename": str(dyn)}},
        "log": {"level": "INFO"}}))
    proc = Proc(list(TWISTD), env=_env(tmp_path), cwd=tmp_path, name="wsgate")
    try:
        proc.wait_for("wsgate ready")
        assert any("static configuration from file" in line for line in proc.lines)
        status, _ = _http_get(port, "/")
        assert status == 200
    finally:
        proc.stop()
        backend.stop()


def test_embedded_default_serves_echo(tmp_path: Path) -> None:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", 8000))
        except OSError:
            pytest.skip("127.0.0.1:8000 is taken on this machine; the embedded default needs it")
    from websockets.sync.client import connect

    proc = Proc(list(TWISTD), env=_env(tmp_path), cwd=tmp_path, name="wsgate")
    try:
        proc.wait_for("wsgate ready")
        with connect("ws://127.0.0.1:8000/echo", open_timeout=10) as ws:
            ws.send("ping me")
            assert ws.recv(timeout=10) == "ping me"
        status, body = _http_get(8000, "/elsewhere")
        assert status == 404
        assert body == b"404 page not found\n"
    finally:
        # twistd re-raises the signal that stopped it, as a clean stop by SIGTERM
        assert proc.stop() in (0, -signal.SIGTERM)
