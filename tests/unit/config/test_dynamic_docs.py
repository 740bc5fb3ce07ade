"""docs/configuration/dynamic.md documents every key of the dynamic model."""

from __future__ import annotations

import re
from pathlib import Path

from wsgate.config.dynamic import DynamicConfig
from wsgate.config.schema import iter_keys

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration" / "dynamic.md"


def normalise(path: str) -> str:
    """`<router>`, `<name>` -> `<name>`; `[0]`, `[n]` -> `[n]`."""
    path = re.sub(r"<[^<>]+>", "<name>", path)
    return re.sub(r"\[(?:\d+|n|i)\]", "[n]", path)


def documented_keys() -> set[str]:
    text = DOC.read_text(encoding="utf-8")
    return {normalise(code) for code in re.findall(r"`([^`\s]+)`", text)}


def test_every_dynamic_key_is_documented():
    documented = documented_keys()
    missing = [path for path, _, _ in iter_keys(DynamicConfig)
               if normalise(path) not in documented]
    assert not missing, f"keys missing from {DOC.name}: {missing}"


def test_documented_key_paths_exist():
    # every full key path the reference tables name is a key of the model
    known = {normalise(path) for path, _, _ in iter_keys(DynamicConfig)}
    text = DOC.read_text(encoding="utf-8")
    table_keys = {normalise(k) for k in re.findall(r"^\| `([^`]+)` \|", text, re.M)}
    assert table_keys, "no reference table found"
    assert table_keys <= known, table_keys - known


def test_extension_keys_are_marked_in_their_own_section():
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## wsgate extensions", 1)[1].split("\n## ", 1)[0]
    for path, field, _ in iter_keys(DynamicConfig):
        if field.metadata["wsgate"]:
            assert f"`{path}`" in section, f"{path} is not in the wsgate extensions section"
