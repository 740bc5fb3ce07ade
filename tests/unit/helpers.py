"""What several unit test modules share: configuration snippets decoded as a file would be,
and the observer and relay stand-ins of the health-check tests."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from wsgate.config.errors import ConfigError
from wsgate.config.schema import Decoded, decode
from wsgate.config.sources import load_toml, load_yaml
from wsgate.ops.observer import Observer

T = TypeVar("T")


def decode_text(model: type[T], text: str, fmt: str, stem: str, *,
                strict: bool = False) -> Decoded[T]:
    """``text`` (dedented, YAML or TOML by ``fmt``) decoded into ``model``, located as the file
    ``stem.yml`` or ``stem.toml``."""
    text = textwrap.dedent(text)
    tree = load_yaml(text, f"{stem}.yml") if fmt == "yaml" else load_toml(text, f"{stem}.toml")
    return decode(model, tree, strict=strict)


def config_errors(call: Callable[[], Any]) -> list[str]:
    """The diagnostics of the ConfigError that ``call`` must raise."""
    with pytest.raises(ConfigError) as info:
        call()
    return [str(d) for d in info.value.diagnostics]


class UpRecorder(Observer):
    """Records every server_up call: (service, url, up)."""

    def __init__(self) -> None:
        self.ups: list[tuple[str, str, bool]] = []

    def server_up(self, service: str, url: str, up: bool) -> None:
        self.ups.append((service, url, up))


class FakeRelay:
    """A WebSocket session that only records how it was closed."""

    def __init__(self) -> None:
        self.closed: list[tuple[int, str]] = []

    def close(self, code: int, reason: str = "") -> None:
        self.closed.append((code, reason))
