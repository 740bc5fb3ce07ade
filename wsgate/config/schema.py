"""Declarative configuration models and the one decoder that fills them.

A model is a frozen dataclass whose fields are declared with :func:`key`, giving the exact
Traefik spelling of the key and Traefik's default. :func:`decode` walks a positioned tree
(:mod:`wsgate.config.tree`) into such a model, matching keys case-insensitively as Traefik
does, coercing text from flags, environment and labels, and reporting every problem with its
key path and position. The docs reference is checked against these declarations by a test.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import MISSING
from typing import Any, Callable, Iterable, Iterator, Literal, NewType, TypeVar

from wsgate.config.errors import ConfigError, Diagnostic, Mark
from wsgate.config.tree import Mapping, Node, Scalar, Sequence, plain

#: A duration in seconds. Accepts Go duration text ("1m30s", "250ms") or a number of seconds.
Duration = NewType("Duration", float)

#: Plain data kept as given (used for free-form maps such as Kubernetes objects).
RawValue = NewType("RawValue", object)

T = TypeVar("T")

Validator = Callable[[Any], Iterable[tuple[str, str]]]


def key(name: str, default: Any = MISSING, *, factory: Callable[[], Any] | None = None,
        doc: str = "", wsgate: bool = False, aliases: tuple[str, ...] = (),
        deprecated: str = "", check: Callable[[Any], str | None] | None = None) -> Any:
    """Declare a model field with its Traefik key name and default.

    ``wsgate=True`` marks a key that Traefik does not have (documented as an extension);
    ``aliases`` are other accepted spellings (a deprecated name, for example);
    ``check`` is called with the decoded value and returns an error message or None, so that
    a bad value is reported even when a sibling key fails too (``validate`` would not run).
    """
    metadata = {"key": name, "doc": doc, "wsgate": wsgate, "aliases": aliases,
                "deprecated": deprecated, "check": check}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    if default is MISSING:
        return dataclasses.field(metadata=metadata)
    if isinstance(default, (dict, list, set)):
        raise TypeError("use factory= for mutable defaults")
    return dataclasses.field(default=default, metadata=metadata)


def frozen_map(d: dict[str, T] | None = None) -> typing.Mapping[str, T]:
    """An immutable mapping for model fields."""
    return types.MappingProxyType(dict(d or {}))


# --------------------------------------------------------------------------- durations

_GO_DURATION = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
                 "m": 60.0, "h": 3600.0}


def parse_duration(value: object) -> float:
    """Go duration text or a plain number of seconds, as Traefik accepts both."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 10s, got a boolean")
    if isinstance(value, (int, float)):
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as 10s, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise ValueError("expected a duration such as 10s, got an empty string")
    try:
        return float(text)
    except ValueError:
        pass
    sign = 1.0
    if text[0] in "+-":
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    pos, total = 0, 0.0
    for m in _GO_DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise ValueError(f"invalid duration {value!r} (expected e.g. 10s, 1m30s, 250ms)")
    return sign * total


def format_duration(seconds: float) -> str:
    if seconds == 0:
        return "0s"
    for unit, size in (("h", 3600.0), ("m", 60.0), ("s", 1.0), ("ms", 1e-3)):
        if seconds % size == 0 and abs(seconds) >= size:
            return f"{int(seconds / size)}{unit}"
    return f"{seconds}s"


# --------------------------------------------------------------------------- decoding

@dataclasses.dataclass
class DecodeContext:
    """Collects diagnostics and positions while decoding one source."""

    strict: bool = False
    errors: list[Diagnostic] = dataclasses.field(default_factory=list)
    warnings: list[Diagnostic] = dataclasses.field(default_factory=list)
    marks: dict[str, Mark] = dataclasses.field(default_factory=dict)

    def error(self, path: str, message: str, mark: Mark | None) -> None:
        self.errors.append(Diagnostic(message, path, mark, "error"))

    def warn(self, path: str, message: str, mark: Mark | None) -> None:
        self.warnings.append(Diagnostic(message, path, mark, "warning"))

    def unknown(self, path: str, message: str, mark: Mark | None) -> None:
        if self.strict:
            self.error(path, message, mark)
        else:
            self.warn(path, message, mark)


class _Invalid(Exception):
    """Internal: the value at hand could not be decoded (already reported)."""


@dataclasses.dataclass(frozen=True)
class Decoded(typing.Generic[T]):
    value: T
    warnings: tuple[Diagnostic, ...]
    marks: typing.Mapping[str, Mark]


def decode(cls: type[T], node: Node | None, *, path: str = "", strict: bool = False,
           ctx: DecodeContext | None = None) -> Decoded[T]:
    """Decode ``node`` into ``cls``; raise ConfigError listing every error found."""
    ctx = ctx or DecodeContext(strict=strict)
    if node is None:
        node = Mapping({})
    try:
        value = _decode_value(cls, node, path, ctx)
    except _Invalid:
        value = None
    if ctx.errors:
        raise ConfigError(ctx.errors)
    return Decoded(value, tuple(ctx.warnings), types.MappingProxyType(ctx.marks))


def model_fields(cls: type) -> list[tuple[dataclasses.Field[Any], Any]]:
    """The fields of a model with their resolved types (cached)."""
    cached = _FIELDS_CACHE.get(cls)
    if cached is None:
        hints = typing.get_type_hints(cls)
        cached = [(f, hints[f.name]) for f in dataclasses.fields(cls) if "key" in f.metadata]
        _FIELDS_CACHE[cls] = cached
    return cached


_FIELDS_CACHE: dict[type, list[tuple[dataclasses.Field[Any], Any]]] = {}
_LOOKUP_CACHE: dict[type, dict[str, dataclasses.Field[Any]]] = {}


def _field_lookup(cls: type) -> dict[str, dataclasses.Field[Any]]:
    lookup = _LOOKUP_CACHE.get(cls)
    if lookup is None:
        lookup = {}
        for f, _ in model_fields(cls):
            lookup[f.metadata["key"].lower()] = f
            for alias in f.metadata["aliases"]:
                lookup[alias.lower()] = f
        _LOOKUP_CACHE[cls] = lookup
    return lookup


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part


def _describe(node: Node) -> str:
    if isinstance(node, Mapping):
        return "a mapping"
    if isinstance(node, Sequence):
        return "a list"
    v = node.value
    if v is None:
        return "nothing (null)"
    if isinstance(v, bool):
        return f"the boolean {str(v).lower()}"
    if isinstance(v, (int, float)):
        return f"the number {v}"
    return f"the text {v!r}"


def _decode_value(tp: Any, node: Node, path: str, ctx: DecodeContext) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    ctx.marks.setdefault(path, node.mark)

    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        if isinstance(node, Scalar) and node.value is None and len(inner) == 1 \
                and not dataclasses.is_dataclass(inner[0]):
            return None
        if len(inner) != 1:
            raise TypeError(f"unsupported union {tp!r}")
        return _decode_optional(inner[0], node, path, ctx)
    if dataclasses.is_dataclass(tp):
        return _decode_model(tp, node, path, ctx)
    if origin is tuple:
        return _decode_list(args[0], node, path, ctx)
    if origin in (typing.Mapping, dict) or origin is getattr(typing, "Mapping", None) or \
            (origin is not None and getattr(origin, "__name__", "") == "Mapping"):
        return _decode_map(args[1], node, path, ctx)
    if origin is Literal:
        return _decode_choice(args, node, path, ctx)
    if tp is RawValue or tp is Any:
        return plain(node)
    return _decode_scalar(tp, node, path, ctx)


def _decode_optional(tp: Any, node: Node, path: str, ctx: DecodeContext) -> Any:
    """Optional sections: present means enabled, even when empty (``tls: {}``, ``--api``)."""
    if dataclasses.is_dataclass(tp) and isinstance(node, Scalar):
        v = node.value
        if v is None or v == "":
            return _decode_model(tp, Mapping({}, node.mark), path, ctx)
        if isinstance(v, bool) or node.textual:
            try:
                enabled = _to_bool(v)
            except ValueError:
                ctx.error(path, f"expected a section (a mapping) or true/false, got "
                                f"{_describe(node)}", node.mark)
                raise _Invalid() from None
            return _decode_model(tp, Mapping({}, node.mark), path, ctx) if enabled else None
    return _decode_value(tp, node, path, ctx)


def _decode_model(cls: Any, node: Node, path: str, ctx: DecodeContext) -> Any:
    if isinstance(node, Scalar) and _names_section(node):
        # A section named without keys ("log:", "log: true", "--log") takes its defaults.
        node = Mapping({}, node.mark)
    if not isinstance(node, Mapping):
        ctx.error(path, f"expected a section (a mapping of keys), got {_describe(node)}",
                  node.mark)
        raise _Invalid()
    lookup = _field_lookup(cls)
    unsupported: typing.Mapping[str, str] = getattr(cls, "__unsupported__", {})
    unsupported_ci = {k.lower(): msg for k, msg in unsupported.items()}
    kwargs: dict[str, Any] = {}
    seen: dict[str, str] = {}
    failed = False
    for raw_key, child in node.items.items():
        kmark = node.key_marks.get(raw_key, child.mark)
        f = lookup.get(raw_key.lower())
        if f is None:
            low = raw_key.lower()
            if low in unsupported_ci:
                ctx.warn(_join(path, raw_key), unsupported_ci[low], kmark)
            else:
                known = ", ".join(sorted(f2.metadata["key"] for f2, _ in model_fields(cls)))
                ctx.unknown(_join(path, raw_key), f"unknown key (known keys here: {known})",
                            kmark)
            continue
        name = f.metadata["key"]
        child_path = _join(path, name)
        ctx.marks[child_path] = kmark
        if f.name in seen:
            ctx.error(child_path, f"given twice (as {seen[f.name]!r} and {raw_key!r})", kmark)
            failed = True
            continue
        seen[f.name] = raw_key
        if f.metadata["deprecated"]:
            ctx.warn(child_path, f.metadata["deprecated"], kmark)
        ftype = _field_type(cls, f)
        try:
            kwargs[f.name] = _decode_value(ftype, child, child_path, ctx)
        except _Invalid:
            failed = True
            continue
        check = f.metadata.get("check")
        problem = check(kwargs[f.name]) if check is not None else None
        if problem:
            ctx.error(child_path, problem, child.mark)
            failed = True
    if failed:
        raise _Invalid()
    missing = [f.metadata["key"] for f, _ in model_fields(cls)
               if f.name not in kwargs and f.default is MISSING
               and f.default_factory is MISSING]
    if missing:
        for m in missing:
            ctx.error(_join(path, m), "required key is missing", node.mark)
        raise _Invalid()
    value = cls(**kwargs)
    validate = getattr(value, "validate", None)
    if validate is not None:
        ok = True
        for rel, message in validate():
            sub = _join(path, rel) if rel else path
            ctx.error(sub, message, ctx.marks.get(sub, node.mark))
            ok = False
        if not ok:
            raise _Invalid()
    return value


def _names_section(node: Scalar) -> bool:
    v = node.value
    if v is None or v == "" or v is True:
        return True
    return node.textual and isinstance(v, str) and v.strip().lower() in ("1", "t", "true")


def _field_type(cls: type, f: dataclasses.Field[Any]) -> Any:
    types_by_name = _TYPES_CACHE.get(cls)
    if types_by_name is None:
        types_by_name = {ff.name: tp for ff, tp in model_fields(cls)}
        _TYPES_CACHE[cls] = types_by_name
    return types_by_name[f.name]


_TYPES_CACHE: dict[type, dict[str, Any]] = {}


def _sequence_items(node: Node, path: str, ctx: DecodeContext,
                    scalar_items: bool) -> Iterator[tuple[Node, str]]:
    if isinstance(node, Sequence):
        for i, item in enumerate(node.items):
            yield item, f"{path}[{i}]"
        return
    if isinstance(node, Mapping) and node.items and all(k.isdigit() for k in node.items):
        # flat sources spell list items with indexes: servers[0].url, SERVERS_0_URL
        for k in sorted(node.items, key=int):
            yield node.items[k], f"{path}[{k}]"
        return
    if isinstance(node, Scalar) and scalar_items:
        if node.value is None:
            return
        if node.textual or isinstance(node.value, str):
            # comma-separated lists, as Traefik reads them from flags, env and labels
            text = str(node.value)
            if node.textual or "," in text:
                parts = [p.strip() for p in text.split(",")] if text.strip() else []
            else:
                parts = [text]
            for i, part in enumerate(parts):
                yield Scalar(part, node.mark, textual=True), f"{path}[{i}]"
            return
        yield node, f"{path}[0]"
        return
    if isinstance(node, Scalar) and node.value is None:
        return
    ctx.error(path, f"expected a list, got {_describe(node)}", node.mark)
    raise _Invalid()


def _decode_list(item_type: Any, node: Node, path: str, ctx: DecodeContext) -> tuple[Any, ...]:
    scalar_items = not dataclasses.is_dataclass(item_type) and \
        typing.get_origin(item_type) not in (tuple,)
    out = []
    failed = False
    for item, item_path in _sequence_items(node, path, ctx, scalar_items):
        try:
            out.append(_decode_value(item_type, item, item_path, ctx))
        except _Invalid:
            failed = True
    if failed:
        raise _Invalid()
    return tuple(out)


def _decode_map(value_type: Any, node: Node, path: str, ctx: DecodeContext) -> Any:
    if isinstance(node, Scalar) and node.value is None:
        return frozen_map()
    if not isinstance(node, Mapping):
        ctx.error(path, f"expected a mapping of names, got {_describe(node)}", node.mark)
        raise _Invalid()
    out: dict[str, Any] = {}
    failed = False
    for k, child in node.items.items():
        child_path = _join(path, k)
        ctx.marks[child_path] = node.key_marks.get(k, child.mark)
        try:
            out[k] = _decode_value(value_type, child, child_path, ctx)
        except _Invalid:
            failed = True
    if failed:
        raise _Invalid()
    return frozen_map(out)


def _decode_choice(choices: tuple[Any, ...], node: Node, path: str, ctx: DecodeContext) -> Any:
    if isinstance(node, Scalar) and isinstance(node.value, (str, int)) and \
            not isinstance(node.value, bool):
        text = str(node.value)
        for c in choices:
            if str(c).lower() == text.lower():
                return c
    allowed = ", ".join(repr(c) for c in choices)
    ctx.error(path, f"expected one of {allowed}, got {_describe(node)}", node.mark)
    raise _Invalid()


def _to_bool(v: object) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        low = v.strip().lower()
        if low in ("1", "t", "true"):
            return True
        if low in ("0", "f", "false"):
            return False
    raise ValueError(v)


def _decode_scalar(tp: Any, node: Node, path: str, ctx: DecodeContext) -> Any:
    if not isinstance(node, Scalar):
        expected = {str: "a text value", int: "an integer", float: "a number",
                    bool: "true or false", Duration: "a duration such as 10s"}.get(tp, str(tp))
        ctx.error(path, f"expected {expected}, got {_describe(node)}", node.mark)
        raise _Invalid()
    v = node.value
    try:
        if tp is str:
            if v is None:
                return ""
            if isinstance(v, bool):
                return "true" if v else "false"
            if isinstance(v, (int, float, str)):
                return str(v)
            raise ValueError("expected a text value")
        if tp is bool:
            if v is None and node.textual:
                return True
            return _to_bool(v)
        if tp is int:
            if isinstance(v, bool):
                raise ValueError
            if isinstance(v, int):
                return v
            if isinstance(v, float) and v.is_integer():
                return int(v)
            if isinstance(v, str):
                return int(v.strip(), 10)
            raise ValueError
        if tp is float:
            if isinstance(v, bool):
                raise ValueError
            if isinstance(v, (int, float)):
                return float(v)
            if isinstance(v, str):
                return float(v.strip())
            raise ValueError
        if tp is Duration:
            return Duration(parse_duration(v))
    except ValueError as exc:
        detail = str(exc)
        wanted = {bool: "true or false", int: "an integer", float: "a number",
                  str: "a text value"}.get(tp)
        if wanted is not None:
            detail = f"expected {wanted}, got {_describe(node)}"
        ctx.error(path, detail, node.mark)
        raise _Invalid() from None
    raise TypeError(f"unsupported field type {tp!r} at {path}")


# --------------------------------------------------------------------------- introspection

def iter_keys(cls: type, prefix: str = "", _seen: frozenset[type] = frozenset()
              ) -> Iterator[tuple[str, dataclasses.Field[Any], Any]]:
    """Every key path a model accepts (``<name>`` stands for user-chosen map keys)."""
    if cls in _seen:
        return
    for f, tp in model_fields(cls):
        path = _join(prefix, f.metadata["key"])
        yield path, f, tp
        for inner_path, inner in _nested_models(tp, path):
            yield from iter_keys(inner, inner_path, _seen | {cls})


def _nested_models(tp: Any, path: str) -> Iterator[tuple[str, type]]:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        for a in args:
            if a is not type(None):
                yield from _nested_models(a, path)
    elif dataclasses.is_dataclass(tp):
        yield path, typing.cast(type, tp)
    elif origin is tuple:
        yield from _nested_models(args[0], path + "[n]")
    elif origin is not None and getattr(origin, "__name__", "") == "Mapping":
        yield from _nested_models(args[1], path + ".<name>")


def default_of(f: dataclasses.Field[Any]) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    return MISSING
