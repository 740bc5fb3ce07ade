"""docs/middlewares.md: every YAML example loads and builds, and every kind wsgate runs has a
section with an example."""

from __future__ import annotations

import re
from pathlib import Path

from wsgate.config.dynamic import DynamicConfig
from wsgate.config.schema import decode
from wsgate.config.sources import load_yaml
from wsgate.middlewares import MiddlewareError, build_middleware, htpasswd
from wsgate.middlewares.chain import _CLASSES

DOC = Path(__file__).resolve().parents[3] / "docs" / "middlewares.md"
BLOCK = re.compile(r"^```yaml\n(.*?)^```", re.MULTILINE | re.DOTALL)


def examples() -> list[str]:
    return BLOCK.findall(DOC.read_text(encoding="utf-8"))


def test_every_example_builds():
    built = set()
    blocks = examples()
    assert len(blocks) >= 20
    for i, block in enumerate(blocks):
        config = decode(DynamicConfig, load_yaml(block, f"middlewares.md example {i}"),
                        strict=True).value
        for name, middleware in config.http.middlewares.items():
            if middleware.kind == "chain":
                built.add("chain")
                continue
            try:
                # usersFile paths in examples do not exist here.
                mw = build_middleware(f"{name}@file", middleware, read_file=lambda path: [])
            except MiddlewareError as exc:
                # Without the bcrypt package a bcrypt user is refused, as it should be.
                assert "bcrypt" in str(exc) and not htpasswd.bcrypt_available(), exc
                built.add(middleware.kind)
                continue
            built.add(mw.kind)
    assert set(_CLASSES) | {"chain"} <= built | {"ipWhiteList"}


def test_every_kind_has_a_section():
    text = DOC.read_text(encoding="utf-8")
    sections = set(re.findall(r"^## (\w+)$", text, re.MULTILINE))
    assert set(_CLASSES) - {"ipWhiteList"} <= sections
