"""Readers that turn YAML, TOML and flat key=value sources into positioned trees."""

from __future__ import annotations

import re
import tomllib
from typing import Iterable

import yaml

from wsgate.config.errors import ConfigError, Mark
from wsgate.config.tree import Mapping, Node, Scalar, Sequence

# --------------------------------------------------------------------------- YAML

def load_yaml(text: str, source: str) -> Node:
    """Parse YAML keeping line/column (1-based) of every key and value."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            m = exc.problem_mark
            mark = Mark(source, m.line + 1, m.column + 1) if m is not None else Mark(source)
            problem = exc.problem or "invalid YAML"
            raise ConfigError(f"YAML syntax error: {problem}", mark=mark) from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"YAML syntax error: {exc}", mark=Mark(source)) from None
        if root is None:
            return Mapping({}, Mark(source, 1, 1))
        return _convert_yaml(loader, root, source)
    finally:
        loader.dispose()


def _yaml_mark(node: yaml.Node, source: str) -> Mark:
    return Mark(source, node.start_mark.line + 1, node.start_mark.column + 1)


def _convert_yaml(loader: yaml.SafeLoader, node: yaml.Node, source: str) -> Node:
    mark = _yaml_mark(node, source)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves YAML merge keys (<<)
        out = Mapping({}, mark)
        for knode, vnode in node.value:
            kmark = _yaml_mark(knode, source)
            if not isinstance(knode, yaml.ScalarNode):
                raise ConfigError("a mapping key must be a plain value", mark=kmark)
            key = str(loader.construct_object(knode))
            if key in out.items:
                raise ConfigError(f"duplicate key {key!r}", mark=kmark)
            out.items[key] = _convert_yaml(loader, vnode, source)
            out.key_marks[key] = kmark
        return out
    if isinstance(node, yaml.SequenceNode):
        return Sequence([_convert_yaml(loader, n, source) for n in node.value], mark)
    try:
        value = loader.construct_object(node)
    except yaml.constructor.ConstructorError as exc:
        raise ConfigError(f"YAML value error: {exc.problem}", mark=mark) from None
    if node.tag == "tag:yaml.org,2002:timestamp":
        value = node.value  # keep dates and times as the text the user wrote
    return Scalar(value, mark)


# --------------------------------------------------------------------------- TOML

_TOML_POS = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def load_toml(text: str, source: str) -> Node:
    """Parse TOML with the standard library; positions come from a line scan of the text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = _TOML_POS.search(msg)
        if m:
            mark = Mark(source, int(m.group(1)), int(m.group(2)))
            msg = msg[: m.start()]
        else:
            mark = Mark(source)
        raise ConfigError(f"TOML syntax error: {msg}", mark=mark) from None
    lines = _toml_key_lines(text)
    return _convert_plain(data, (), source, lines)


def _convert_plain(value: object, path: tuple[str, ...], source: str,
                   lines: dict[tuple[str, ...], tuple[int, int]]) -> Node:
    mark = _toml_mark(path, source, lines)
    if isinstance(value, dict):
        out = Mapping({}, mark)
        for k, v in value.items():
            out.items[k] = _convert_plain(v, (*path, k), source, lines)
            out.key_marks[k] = _toml_mark((*path, k), source, lines)
        return out
    if isinstance(value, list):
        return Sequence([_convert_plain(v, (*path, str(i)), source, lines)
                         for i, v in enumerate(value)], mark)
    if hasattr(value, "isoformat") and not isinstance(value, (int, float, str)):
        value = value.isoformat()  # type: ignore[union-attr]
    return Scalar(value, mark)


def _toml_mark(path: tuple[str, ...], source: str,
               lines: dict[tuple[str, ...], tuple[int, int]]) -> Mark:
    p = path
    while p:
        if p in lines:
            line, col = lines[p]
            return Mark(source, line, col)
        p = p[:-1]
    return Mark(source)


_TOML_BARE = r"[A-Za-z0-9_-]+"
_TOML_KEYPART = rf'(?:{_TOML_BARE}|"(?:[^"\\]|\\.)*"|\'[^\']*\')'
_TOML_DOTTED = rf"{_TOML_KEYPART}(?:\s*\.\s*{_TOML_KEYPART})*"
_TOML_HEADER = re.compile(rf"^\s*(\[\[?)\s*({_TOML_DOTTED})\s*\]\]?")
_TOML_ASSIGN = re.compile(rf"^(\s*)({_TOML_DOTTED})\s*=")
_TOML_SPLIT = re.compile(_TOML_KEYPART)


def _toml_split(dotted: str) -> tuple[str, ...]:
    parts = []
    for m in _TOML_SPLIT.finditer(dotted):
        part = m.group(0)
        if part[0] == '"':
            part = part[1:-1].encode().decode("unicode_escape")
        elif part[0] == "'":
            part = part[1:-1]
        parts.append(part)
    return tuple(parts)


def _toml_key_lines(text: str) -> dict[tuple[str, ...], tuple[int, int]]:
    """Best-effort map from key paths to (line, column), enough to point at a key."""
    found: dict[tuple[str, ...], tuple[int, int]] = {}
    array_counts: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    in_multiline: str | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if in_multiline is not None:
            if in_multiline in line:
                in_multiline = None
            continue
        header = _TOML_HEADER.match(line)
        if header:
            path = _toml_split(header.group(2))
            if header.group(1) == "[[":
                index = array_counts.get(path, 0)
                array_counts[path] = index + 1
                # Nested arrays of tables resolve against the latest index of their parents.
                resolved = _resolve_arrays(path, array_counts)
                table = (*resolved, str(index))
            else:
                table = _resolve_arrays(path, array_counts)
            # tables only implied by a header ([a.b.c] implies a and a.b) start here too
            for end in range(1, len(table) + 1):
                found.setdefault(table[:end], (lineno, line.index("[") + 1))
            continue
        assign = _TOML_ASSIGN.match(line)
        if assign:
            key = table + _toml_split(assign.group(2))
            for end in range(len(table) + 1, len(key) + 1):
                found.setdefault(key[:end], (lineno, len(assign.group(1)) + 1))
            rest = line[assign.end():]
            for quote in ('"""', "'''"):
                if rest.count(quote) == 1:
                    in_multiline = quote
    return found


def _resolve_arrays(path: tuple[str, ...], counts: dict[tuple[str, ...], int]) -> tuple[str, ...]:
    out: list[str] = []
    for i, part in enumerate(path):
        out.append(part)
        prefix = path[: i + 1]
        if prefix in counts and i < len(path) - 1:
            out.append(str(counts[prefix] - 1))
    return tuple(out)


# --------------------------------------------------------------------------- flat sources

_INDEX = re.compile(r"\[(\d+)\]")


def split_flat_key(key: str, separator: str = ".") -> list[str]:
    """``servers[0].url`` -> ["servers", "0", "url"]; indexes become digit segments."""
    key = _INDEX.sub(lambda m: separator + m.group(1), key)
    return [part for part in key.split(separator) if part != ""]


def flat_to_tree(pairs: Iterable[tuple[list[str], str, Mark]], root_mark: Mark) -> Mapping:
    """Build a tree from already-split flat keys; every leaf is textual.

    A key given both as a leaf (``--api=true``) and with children (``--api.insecure``) keeps
    the children: the leaf only said that the section is enabled.
    """
    root = Mapping({}, root_mark)
    for segments, value, mark in pairs:
        node: Mapping = root
        for i, seg in enumerate(segments):
            last = i == len(segments) - 1
            existing = _lookup_ci(node, seg)
            if last:
                if existing is None:
                    node.items[seg] = Scalar(value, mark, textual=True)
                    node.key_marks[seg] = mark
                elif isinstance(existing[1], Scalar):
                    node.items[existing[0]] = Scalar(value, mark, textual=True)
                    node.key_marks[existing[0]] = mark  # the later value is the one used
                # a leaf given for a section that has children: the children win
                break
            if existing is None or isinstance(existing[1], Scalar):
                child = Mapping({}, mark)
                name = existing[0] if existing else seg
                node.items[name] = child
                node.key_marks[name] = mark
                node = child
            else:
                sub = existing[1]
                if not isinstance(sub, Mapping):
                    raise ConfigError(f"{'.'.join(segments)}: conflicting values", mark=mark)
                node = sub
    return root


def _lookup_ci(node: Mapping, key: str) -> tuple[str, Node] | None:
    if key in node.items:
        return key, node.items[key]
    low = key.lower()
    for k, v in node.items.items():
        if k.lower() == low:
            return k, v
    return None
