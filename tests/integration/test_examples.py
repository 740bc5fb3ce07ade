"""The examples in examples/: each File example run end to end, and every form checked against
the seed document it comes from.

A run copies the example directory, substitutes in the copy only what cannot work on a test
machine (the entryPoint ports become ``127.0.0.1:0``, the backend host names become the
address of examples/echo_server.py started by the test; TLS examples get a certificate made by
the test, so that the client can verify it), starts ``twistd -n wsgate --configFile`` in the
copy as the example's README says, and talks WebSocket through it with the ``websockets``
client. The Docker and Kubernetes forms are run by the providers' tests; here they are only
compared with the seed.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import ssl
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests import seed
from tests.differential.certs import make_cert
from tests.integration.harness import ROOT, Proc

EXAMPLES = ROOT / "examples"
ECHO_SERVER = EXAMPLES / "echo_server.py"
TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n",
          "--pidfile=", "wsgate"]


@dataclass(frozen=True)
class Example:
    directory: str
    section: str  # the seed document's section
    host: str  # the Host of the router's rule
    backend: str  # host:port of the backend in the example
    tls: bool = False  # the router is a TLS router (wss://)
    backend_tls: bool = False  # the backend speaks wss:// (end-to-end TLS)
    origin_check: bool = False  # the backend refuses foreign origins
    needs: str | None = None  # an unimplemented wsgate feature the example depends on


EXAMPLE_LIST = [
    Example("websocket", "Basic WebSocket Configuration", "ws.example.com",
            "my-websocket-server:8000"),
    Example("websocket-secure", "WebSocket Secure (WSS) Configuration", "wss.example.com",
            "my-websocket-server:8000", tls=True),
    Example("wss-termination", "SSL Termination for WebSockets", "wss.example.com",
            "my-ws-server:8000", tls=True),
    Example("wss-end-to-end", "End-to-End WebSocket Secure (WSS)", "wss.example.com",
            "my-wss-server:8443", tls=True, backend_tls=True),
    Example("headers-origin", "Headers and Origin Checks", "ws.example.com",
            "my-websocket-server:8000", origin_check=True),
]
BY_NAME = {e.directory: e for e in EXAMPLE_LIST}


def test_every_seed_example_has_a_directory_with_a_readme() -> None:
    dirs = {p.name for p in EXAMPLES.iterdir() if p.is_dir()}
    assert {*BY_NAME, "entrypoints"} <= dirs
    for name in (*BY_NAME, "entrypoints"):
        readme = EXAMPLES / name / "README.md"
        assert readme.is_file(), f"{name} has no README.md"
        text = readme.read_text()
        assert "twistd -n wsgate --configFile" in text, f"{name}/README.md: how to run"
        assert "python -m websockets" in text and "wscat" in text, \
            f"{name}/README.md: how to test with a WebSocket client"
    assert (EXAMPLES / "README.md").is_file()


# -- the files against the seed --------------------------------------------------------------


@pytest.mark.parametrize("example", EXAMPLE_LIST, ids=lambda e: e.directory)
def test_file_forms_are_the_seed_and_agree(example: Example) -> None:
    directory = EXAMPLES / example.directory
    from_yaml = yaml.safe_load((directory / "dynamic.yml").read_text())
    from_toml = tomllib.loads((directory / "dynamic.toml").read_text())
    assert from_yaml == from_toml, "dynamic.yml and dynamic.toml differ"
    static_yaml = yaml.safe_load((directory / "traefik.yml").read_text())
    static_toml = tomllib.loads((directory / "traefik.toml").read_text())
    static_toml["providers"]["file"]["filename"] = "dynamic.yml"
    assert static_yaml == static_toml, "traefik.yml and traefik.toml differ"
    sections = seed.seed_by_section()
    blocks = sections[example.section]
    if seed.YAML in blocks:
        assert from_yaml == yaml.safe_load(blocks[seed.YAML].code)
        assert from_toml == tomllib.loads(blocks[seed.TOML].code)
    entry_points = sections["EntryPoints Configuration for WebSockets"]
    assert static_yaml["entryPoints"] == yaml.safe_load(entry_points[seed.YAML].code)[
        "entryPoints"]


def test_entrypoints_example_is_the_seed() -> None:
    blocks = seed.seed_by_section()["EntryPoints Configuration for WebSockets"]
    directory = EXAMPLES / "entrypoints"
    assert yaml.safe_load((directory / "traefik.yml").read_text()) == \
        yaml.safe_load(blocks[seed.YAML].code)
    assert tomllib.loads((directory / "traefik.toml").read_text()) == \
        tomllib.loads(blocks[seed.TOML].code)


@pytest.mark.parametrize("example", EXAMPLE_LIST, ids=lambda e: e.directory)
def test_docker_and_kubernetes_forms_contain_the_seed(example: Example) -> None:
    blocks = seed.seed_by_section()[example.section]
    directory = EXAMPLES / example.directory
    compose = yaml.safe_load((directory / "docker-compose.yml").read_text())
    labels = {label for service in compose["services"].values()
              for label in service.get("labels", [])}
    seed_labels = yaml.safe_load(blocks[seed.DOCKER].code)["labels"]
    assert set(seed_labels) <= labels, sorted(set(seed_labels) - labels)
    manifests = list(yaml.safe_load_all((directory / "kubernetes.yml").read_text()))
    assert manifests == list(yaml.safe_load_all(blocks[seed.KUBERNETES].code))


# -- end to end -------------------------------------------------------------------------------


def _local_static(path: Path) -> None:
    """Ports 80 and 443 become free ports of 127.0.0.1; the log level becomes INFO, whose
    lines say when and where wsgate listens (Traefik's default level, ERROR, says nothing)."""
    text = re.sub(r'":(80|443)"', '"127.0.0.1:0"', path.read_text())
    assert "127.0.0.1:0" in text and "\nlog" not in text and "[log]" not in text
    text += "\nlog:\n  level: INFO\n" if path.suffix == ".yml" else '\n[log]\n  level = "INFO"\n'
    path.write_text(text)


@dataclass
class Running:
    ports: dict[str, int]
    cert: Path | None


def _start_backend(example: Example, tmp: Path) -> tuple[Proc, int]:
    args = [sys.executable, str(ECHO_SERVER), "--port", "0"]
    if example.backend_tls:
        cert, key = make_cert(tmp / "backend-certs", ["my-wss-server", "127.0.0.1"])
        args += ["--cert", str(cert), "--key", str(key)]
    if example.origin_check:
        args += ["--allowed-origin", "https://allowed-origin.com"]
    proc = Proc(args, name=f"echo:{example.directory}")
    return proc, int(proc.wait_for(r"listening on (\d+)").group(1))


def _copy_with_local_addresses(example: Example, tmp: Path, backend_port: int,
                               cert: Path | None, key: Path | None) -> Path:
    """The example directory copied, with ports, backend host and certificate substituted."""
    copy = tmp / example.directory
    shutil.copytree(EXAMPLES / example.directory, copy)
    for name in ("traefik.yml", "traefik.toml"):
        _local_static(copy / name)
    for name in ("dynamic.yml", "dynamic.toml"):
        path = copy / name
        text = path.read_text()
        assert example.backend in text
        text = text.replace(example.backend, f"127.0.0.1:{backend_port}")
        if cert is not None:
            if name.endswith(".yml"):
                text += (f"\ntls:\n  certificates:\n    - certFile: \"{cert}\"\n"
                         f"      keyFile: \"{key}\"\n")
            else:
                text += f'\n[[tls.certificates]]\n  certFile = "{cert}"\n  keyFile = "{key}"\n'
        path.write_text(text)
    return copy


@pytest.fixture
def running(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Running]:
    example, form = request.param
    backend, backend_port = _start_backend(example, tmp_path)
    cert = key = None
    if example.tls:
        cert, key = make_cert(tmp_path / "certs", [example.host])
    copy = _copy_with_local_addresses(example, tmp_path, backend_port, cert, key)
    gate = Proc([*TWISTD, "--configFile", f"traefik.{form}"], cwd=copy, name="wsgate",
                env={"PYTHONPATH": str(ROOT)})
    try:
        ports = {name: int(gate.wait_for(rf"entryPoint {name} listening on .*port=(\d+)")
                           .group(1)) for name in ("web", "websecure")}
        gate.wait_for(r"wsgate ready")
        yield Running(ports, cert)
    finally:
        gate.stop()
        backend.stop()


def _client(run: Running, host: str, *, tls: bool, origin: str | None = None,
            verify: bool = True) -> Any:
    port = run.ports["websecure" if tls else "web"]
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    options: dict[str, Any] = {"sock": sock, "open_timeout": 10, "close_timeout": 10}
    if origin is not None:
        options["origin"] = origin
    if tls:
        context = ssl.create_default_context(cafile=str(run.cert))
        if not verify:  # another name gets the default certificate: routing is under test
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        options.update(ssl=context, server_hostname=host)
        return connect(f"wss://{host}:{port}/chat?room=1", **options)
    return connect(f"ws://{host}:{port}/chat?room=1", **options)


def _end_to_end_params() -> list[Any]:
    params = []
    for example in EXAMPLE_LIST:
        for form in ("yml", "toml"):
            marks = [pytest.mark.xfail(strict=True, reason=example.needs)] if example.needs \
                else []
            params.append(pytest.param((example, form), id=f"{example.directory}-{form}",
                                       marks=marks))
    return params


@pytest.mark.parametrize("running", _end_to_end_params(), indirect=True)
def test_example_end_to_end(running: Running, request: pytest.FixtureRequest) -> None:
    example: Example = request.node.callspec.params["running"][0]
    origin = "https://evil.example" if example.origin_check else None
    with _client(running, example.host, tls=example.tls, origin=origin) as ws:
        hello = json.loads(ws.recv(timeout=10))["hello"]
        port = running.ports["websecure" if example.tls else "web"]
        assert hello["host"] == f"{example.host}:{port}"
        assert hello["path"] == "/chat"
        assert hello["x-forwarded-proto"] == ("wss" if example.tls else "ws")
        if example.origin_check:
            assert hello["origin"] == "https://allowed-origin.com"
        for message in ("hello through wsgate", b"\x00\x01binary\xff"):
            ws.send(message)
            assert ws.recv(timeout=10) == message
    # Another host, or the other kind of connection, is not routed.
    with pytest.raises(InvalidStatus) as refused:
        _client(running, "other.example.com", tls=example.tls, verify=False)
    assert refused.value.response.status_code == 404
    if example.tls:
        with pytest.raises(InvalidStatus) as plain:
            _client(running, example.host, tls=False)
        assert plain.value.response.status_code == 404


@pytest.mark.parametrize("form", ["yml", "toml"])
def test_entrypoints_example_starts(tmp_path: Path, form: str) -> None:
    copy = tmp_path / "entrypoints"
    shutil.copytree(EXAMPLES / "entrypoints", copy)
    path = copy / f"traefik.{form}"
    _local_static(path)
    gate = Proc([*TWISTD, "--configFile", path.name], cwd=copy, name="wsgate",
                env={"PYTHONPATH": str(ROOT)})
    try:
        for name in ("web", "websecure"):
            gate.wait_for(rf"entryPoint {name} listening on .*port=(\d+)")
        gate.wait_for(r"wsgate ready")
    finally:
        gate.stop()
