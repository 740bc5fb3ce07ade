"""The library example: a user's autobahn factory registered as chat@internal."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import yaml
from websockets.sync.client import connect

from tests.integration.harness import ROOT, Proc

EXAMPLE = ROOT / "examples" / "library-chat"


def test_chat_example_broadcasts(tmp_path: Path) -> None:
    work = tmp_path / "chat"
    shutil.copytree(EXAMPLE, work)  # the example itself is never edited
    static = yaml.safe_load((work / "traefik.yml").read_text())
    static["entryPoints"]["web"]["address"] = "127.0.0.1:0"
    (work / "traefik.yml").write_text(yaml.safe_dump(static))
    proc = Proc([sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
                 "-ny", "chat.tac", "--pidfile="], cwd=work, name="chat",
                env={"PYTHONPATH": str(ROOT)})
    try:
        port = int(proc.wait_for(r"entryPoint web listening on .*port=(\d+)").group(1))
        proc.wait_for("wsgate ready")
        with connect(f"ws://127.0.0.1:{port}/chat", open_timeout=10) as alice:
            # alice is a member once her own first message comes back
            alice.send("alice here")
            assert alice.recv(timeout=10) == "alice here"
            with connect(f"ws://127.0.0.1:{port}/chat", open_timeout=10) as bob:
                bob.send("bob here")
                assert bob.recv(timeout=10) == "bob here"
                assert alice.recv(timeout=10) == "bob here"
                alice.send("hello bob")
                assert bob.recv(timeout=10) == "hello bob"
                assert alice.recv(timeout=10) == "hello bob"
    finally:
        proc.stop()
