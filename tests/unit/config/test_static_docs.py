"""docs/configuration/static.md documents every static key, so docs and model cannot drift."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

from wsgate.config.schema import iter_keys
from wsgate.config.static import StaticConfig

DOC = Path(__file__).resolve().parents[3] / "docs" / "configuration" / "static.md"


def documented_keys() -> set[str]:
    """Key paths written in backticks in the doc; map names as ``<name>``, indexes as ``[n]``."""
    text = DOC.read_text(encoding="utf-8")
    return {m.group(1) for m in re.finditer(r"`([A-Za-z][\w.<>\[\]]*)`", text)}


def _models(tp: typing.Any) -> list[tuple[str, type]]:
    """Models reachable from a field type, with the path suffix leading into them."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return [("", typing.cast(type, tp))]
    if origin is tuple:
        return [("[n]" + s, m) for s, m in _models(typing.get_args(tp)[0])]
    if origin is not None and getattr(origin, "__name__", "") == "Mapping":
        return [(".<name>" + s, m) for s, m in _models(typing.get_args(tp)[1])]
    if origin is not None:
        return [pair for arg in typing.get_args(tp) for pair in _models(arg)]
    return []


def model_keys() -> list[str]:
    keys = [path for path, _, _ in iter_keys(StaticConfig)]
    ignored = [*StaticConfig.__unsupported__]
    for path, _, tp in iter_keys(StaticConfig):
        for suffix, model in _models(tp):
            ignored += [f"{path}{suffix}.{k}" for k in getattr(model, "__unsupported__", {})]
    return keys + sorted(set(ignored))


def test_every_key_is_documented():
    documented = documented_keys()
    missing = [k for k in model_keys() if k not in documented]
    assert not missing, f"keys missing from {DOC}: {missing}"


def test_the_reference_tables_name_no_key_the_model_lacks():
    text = DOC.read_text(encoding="utf-8")
    reference = text[text.index("## Reference"):]
    rows = re.findall(r"^\| `([^`]+)` \|", reference, re.M)
    stale = sorted(set(rows) - set(model_keys()))
    assert rows and not stale, f"{DOC} documents keys that do not exist: {stale}"
