"""A raw configuration tree whose every node remembers where it came from.

Every source (YAML, TOML, flags, environment, container labels) is turned into this one shape,
so that decoding, defaults and error messages are written once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from wsgate.config.errors import Mark


@dataclass(slots=True)
class Scalar:
    """A leaf. ``textual`` leaves came from flat text sources and are coerced by type."""

    value: object
    mark: Mark
    textual: bool = False


@dataclass(slots=True)
class Sequence:
    items: list[Node]
    mark: Mark


@dataclass(slots=True)
class Mapping:
    """Ordered key/value pairs; keys keep the spelling of the source."""

    items: dict[str, Node] = field(default_factory=dict)
    mark: Mark = field(default_factory=lambda: Mark("<empty>"))
    key_marks: dict[str, Mark] = field(default_factory=dict)


Node = Union[Scalar, Sequence, Mapping]


def plain(node: Node) -> object:
    """The node as plain Python data (for fields that keep arbitrary values)."""
    if isinstance(node, Scalar):
        return node.value
    if isinstance(node, Sequence):
        return [plain(n) for n in node.items]
    return {k: plain(v) for k, v in node.items.items()}


def from_plain(value: object, mark: Mark, *, textual: bool = False) -> Node:
    """Wrap plain data (e.g. parsed JSON from an API) as a tree with one mark."""
    if isinstance(value, dict):
        m = Mapping({}, mark)
        for k, v in value.items():
            m.items[str(k)] = from_plain(v, mark, textual=textual)
            m.key_marks[str(k)] = mark
        return m
    if isinstance(value, (list, tuple)):
        return Sequence([from_plain(v, mark, textual=textual) for v in value], mark)
    return Scalar(value, mark, textual)
