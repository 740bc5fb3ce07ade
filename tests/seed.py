"""The seed document's code blocks, by section title and tab label.

The seed (``../shared/seed/traefik-websocket.md`` next to the repository, or the file named by
``WSGATE_SEED_DOC``) is Traefik's WebSocket guide: every example in it must work with wsgate.
Its code blocks are fenced with a tab label, e.g. ```` ```yaml tab="File (YAML)" ````; the
labels used are "File (YAML)", "File (TOML)", "Docker & Swarm" and "Kubernetes". A block
without a label gets the label "".
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SEED = REPO_ROOT.parent / "shared" / "seed" / "traefik-websocket.md"

YAML = "File (YAML)"
TOML = "File (TOML)"
DOCKER = "Docker & Swarm"
KUBERNETES = "Kubernetes"

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE_OPEN = re.compile(r'^(`{3,})\s*([\w+-]*)\s*(?:tab="([^"]*)")?.*$')


@dataclass(frozen=True)
class CodeBlock:
    section: str
    tab: str
    language: str
    code: str
    #: 1-based line of the first line of code in the seed document.
    line: int
    source: str

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


def seed_path() -> Path:
    return Path(os.environ.get("WSGATE_SEED_DOC", DEFAULT_SEED))


def parse_blocks(text: str, source: str = "seed") -> list[CodeBlock]:
    """Every fenced code block of a Markdown text, with its nearest heading as section."""
    blocks: list[CodeBlock] = []
    section = ""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        heading = _HEADING.match(line)
        fence = _FENCE_OPEN.match(line)
        if heading:
            section = heading.group(2)
        elif fence:
            ticks, language, tab = fence.group(1), fence.group(2), fence.group(3) or ""
            body: list[str] = []
            i += 1
            start = i + 1
            while i < len(lines) and not lines[i].startswith(ticks):
                body.append(lines[i])
                i += 1
            code = "\n".join(body) + "\n"
            blocks.append(CodeBlock(section, tab, language, code, start, source))
        i += 1
    return blocks


def load_seed(path: Path | None = None) -> list[CodeBlock]:
    """The seed's code blocks; raises FileNotFoundError when the seed is absent."""
    path = path or seed_path()
    return parse_blocks(path.read_text(encoding="utf-8"), path.name)


def seed_blocks_or_skip() -> list[CodeBlock]:
    """The seed's code blocks, or skip the calling test when the seed is not there."""
    import pytest

    path = seed_path()
    if not path.is_file():
        pytest.skip(f"seed document not found at {path} (set WSGATE_SEED_DOC to its path)")
    return load_seed(path)


def seed_by_section(blocks: list[CodeBlock] | None = None) -> dict[str, dict[str, CodeBlock]]:
    """``{section title: {tab label: block}}``."""
    out: dict[str, dict[str, CodeBlock]] = {}
    for block in blocks if blocks is not None else seed_blocks_or_skip():
        out.setdefault(block.section, {})[block.tab] = block
    return out


def seed_block(section: str, tab: str) -> CodeBlock:
    """One block of the seed (skips the test when the seed is absent)."""
    sections = seed_by_section()
    try:
        return sections[section][tab]
    except KeyError:
        known = {s: sorted(tabs) for s, tabs in sections.items()}
        raise KeyError(f"no {tab!r} block in section {section!r}; the seed has {known}") \
            from None
