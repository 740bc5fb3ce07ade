"""The seed document's static configuration ("EntryPoints Configuration for WebSockets"), in
YAML and TOML, read from the seed itself rather than copied here."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from wsgate.config.static import default_entrypoints
from wsgate.config.static_sources import load_static

SECTION = "EntryPoints Configuration for WebSockets"
SEED_NAME = "traefik-websocket.md"
REPO_ROOT = Path(__file__).resolve().parents[3]


def seed_path() -> Path | None:
    """The seed: $WSGATE_SEED_DOC, else ../shared/seed next to the repository (or above)."""
    named = os.environ.get("WSGATE_SEED_DOC")
    candidates = [Path(named)] if named else []
    candidates += [base / "shared" / "seed" / SEED_NAME
                   for base in (REPO_ROOT.parent, REPO_ROOT, *REPO_ROOT.parents)]
    return next((p for p in candidates if p.is_file()), None)


def seed_blocks(section: str) -> dict[str, str]:
    """{tab label: code} of the fenced blocks under one heading of the seed."""
    path = seed_path()
    if path is None:
        pytest.skip(f"seed document {SEED_NAME} not found in ../shared/seed relative to "
                    f"{REPO_ROOT} (set WSGATE_SEED_DOC to its path)")
    blocks: dict[str, str] = {}
    current = ""
    fence = re.compile(r'^```(\w*)\s*(?:tab="([^"]*)")?')
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        heading = re.match(r"^#+\s+(.*?)\s*$", lines[i])
        opened = fence.match(lines[i])
        if heading:
            current = heading.group(1)
        elif opened:
            body = []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            if current == section:
                blocks[opened.group(2) or opened.group(1)] = "\n".join(body) + "\n"
        i += 1
    return blocks


@pytest.mark.parametrize("tab, filename", [("File (YAML)", "traefik.yml"),
                                           ("File (TOML)", "traefik.toml")])
def test_seed_entrypoints(tmp_path, tab, filename):
    blocks = seed_blocks(SECTION)
    assert tab in blocks, f"the seed's {SECTION!r} section has no {tab!r} block: {list(blocks)}"
    (tmp_path / filename).write_text(blocks[tab])
    loaded = load_static([], {}, str(tmp_path), etc_dir=str(tmp_path / "no-etc"))
    assert loaded.kind == "file"
    assert loaded.warnings == ()
    cfg = loaded.config
    assert {name: ep.address for name, ep in cfg.entry_points.items()} == \
        {"web": ":80", "websecure": ":443"}
    for ep in cfg.entry_points.values():
        assert ep.transport.responding_timeouts.read_timeout == 60
        assert ep.transport.life_cycle.grace_time_out == 10
        assert ep.listen.transport == "tcp"
    assert default_entrypoints(cfg) == ("web", "websecure")
