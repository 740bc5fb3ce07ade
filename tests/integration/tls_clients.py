"""Clients and seed-example helpers shared by the TLS integration tests."""

from __future__ import annotations

import json
import socket
import ssl
import tomllib
import warnings
from pathlib import Path
from typing import Any

import yaml
from websockets.sync.client import ClientConnection, connect

from tests import seed
from tests.tlspki import Issued

TIMEOUT = 10.0


# -- clients --------------------------------------------------------------------------------------

def tls_socket(port: int, name: str | None, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    try:
        return ctx.wrap_socket(raw, server_hostname=name)
    except BaseException:
        raw.close()
        raise


def wss(port: int, host: str, path: str, ctx: ssl.SSLContext,
        sni: str | None = None) -> ClientConnection:
    """A wss client that reaches 127.0.0.1 but names ``host`` (SNI and Host header)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    return connect(f"wss://{host}:{port}{path}", ssl=ctx, sock=raw,
                   server_hostname=sni or host, open_timeout=TIMEOUT, close_timeout=2)


def echo(conn: ClientConnection, text: str) -> str:
    conn.send(text)
    return str(conn.recv(timeout=TIMEOUT))


def https_get(port: int, host: str, ctx: ssl.SSLContext, sni: str | None = None) -> bytes:
    with tls_socket(port, sni or host, ctx) as sock:
        sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def insecure_client() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def forced_version(version: ssl.TLSVersion) -> ssl.SSLContext:
    ctx = insecure_client()
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():  # TLS 1.0 and 1.1 are deprecated: that is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = version
        ctx.maximum_version = version
    return ctx


# -- the seed's examples as provider files --------------------------------------------------------

def seed_static(provider_file: Path) -> dict[str, Any]:
    """The seed's entryPoints (web :80, websecure :443) on free ports of 127.0.0.1."""
    block = seed.seed_block("EntryPoints Configuration for WebSockets", seed.YAML)
    static = yaml.safe_load(block.code)
    for ep in static["entryPoints"].values():
        ep["address"] = "127.0.0.1:0"
    static["providers"] = {"file": {"filename": str(provider_file), "watch": False}}
    static["log"] = {"level": "DEBUG"}
    return static


def seed_dynamic_file(tmp: Path, section: str, tab: str, replacements: dict[str, str],
                      certificate: Issued) -> Path:
    """The seed's block written as a provider file, with test addresses and a certificate."""
    text = seed.seed_block(section, tab).code
    for old, new in replacements.items():
        assert old in text, (section, old)
        text = text.replace(old, new)
    if tab == seed.YAML:
        path = tmp / "dynamic.yml"
        text += ("tls:\n  certificates:\n"
                 f"    - certFile: {json.dumps(str(certificate.cert_path))}\n"
                 f"      keyFile: {json.dumps(str(certificate.key_path))}\n")
        yaml.safe_load(text)
    else:
        path = tmp / "dynamic.toml"
        text += ("\n[[tls.certificates]]\n"
                 f"  certFile = {json.dumps(str(certificate.cert_path))}\n"
                 f"  keyFile = {json.dumps(str(certificate.key_path))}\n")
        tomllib.loads(text)
    path.write_text(text)
    return path
