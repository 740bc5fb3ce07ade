"""The two small languages of the Docker and Swarm providers' static settings.

``defaultRule`` is a Go template in Traefik (``Host(`{{ normalize .Name }}`)``); wsgate
evaluates the forms that users write with a tiny evaluator of its own instead of a template
engine: fields (``.Name``, ``.ContainerName``, ``.Labels``, ``.Labels.key``), string literals,
the functions ``normalize``, ``index``, ``lower`` and ``upper``, parentheses and pipelines
(``{{ .Name | normalize }}``), and the ``{{-``/``-}}`` trim markers. Anything else is a
:class:`ConfigError` naming what is not supported.

``constraints`` is an expression over a container's labels: ``Label(`k`,`v`)`` and
``LabelRegex(`k`,`re`)`` combined with ``&&``, ``||``, ``!`` and parentheses; it has the
grammar of router rules, so the rule parser reads it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Union

from wsgate.config.errors import ConfigError
from wsgate.rules import And, Expr, Matcher, Not, Or, RuleSyntaxError, parse_rule
from wsgate.rules.goregexp import GoRegexpError, compile_go

__all__ = ["Constraints", "Template", "Value", "compile_constraints", "compile_template",
           "normalize"]

#: What Go's text/template prints for a missing map key read as a field (``.Labels.nope``).
NO_VALUE = "<no value>"


def normalize(name: str) -> str:
    """Traefik's ``normalize``: runs of characters that are neither letters nor digits become
    one ``-``, and none is kept at either end (``/my_app.1`` gives ``my-app-1``)."""
    parts: list[str] = []
    current: list[str] = []
    for ch in name:
        if unicodedata.category(ch)[0] in ("L", "N"):
            current.append(ch)
        elif current:
            parts.append("".join(current))
            current = []
    if current:
        parts.append("".join(current))
    return "-".join(parts)


# =========================================================================== templates

Value = Union[str, Mapping[str, str]]


@dataclass(frozen=True)
class _Field:
    names: tuple[str, ...]


@dataclass(frozen=True)
class _Literal:
    value: str


@dataclass(frozen=True)
class _Call:
    function: str
    args: tuple[_Node, ...]


@dataclass(frozen=True)
class _Pipeline:
    commands: tuple[tuple[_Node, ...], ...]


_Node = Union[_Field, _Literal, _Call, _Pipeline]

_FUNCTIONS = ("normalize", "index", "lower", "upper")
_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+)
  | (?P<dot>\.)
  | (?P<raw>`[^`]*`)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<pipe>\|)
  | (?P<lparen>\()
  | (?P<rparen>\))
""", re.X)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a",
            "b": "\b", "f": "\f", "v": "\v"}


class Template:
    """A compiled ``defaultRule``: literal text and actions, rendered against a model."""

    def __init__(self, source: str, parts: list[str | _Pipeline]) -> None:
        self.source = source
        self._parts = parts

    def render(self, model: Mapping[str, Value]) -> str:
        """The text for ``model`` (keys Name, ContainerName, Labels); ConfigError on failure."""
        out: list[str] = []
        for part in self._parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = _evaluate(part, model, None)
            if not isinstance(value, str):
                raise ConfigError(f"defaultRule {self.source!r}: an action prints a map (the "
                                  f"labels); read one label with index .Labels \"name\"")
            out.append(value)
        return "".join(out)


def compile_template(source: str) -> Template:
    """Parse a ``defaultRule`` template; ConfigError says what is not supported."""
    parts: list[str | _Pipeline] = []
    pos = 0
    for m in _ACTION.finditer(source):
        text = source[pos:m.start()]
        if m.group(1):
            text = text.rstrip()
        if text:
            parts.append(text)
        try:
            parts.append(_TemplateParser(m.group(2)).parse())
        except ValueError as exc:
            raise ConfigError(f"defaultRule {source!r}: {exc}") from None
        pos = m.end()
        if m.group(3):
            rest = source[pos:]
            pos += len(rest) - len(rest.lstrip())
    tail = source[pos:]
    if "{{" in tail or "}}" in tail:
        raise ConfigError(f"defaultRule {source!r}: unbalanced {{{{ or }}}}")
    if tail:
        parts.append(tail)
    return Template(source, parts)


class _TemplateParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if m is None:
                raise ValueError(f"unsupported template syntax at {text[pos:]!r} (wsgate "
                                 f"understands fields such as .Name, string literals, "
                                 f"parentheses, | and the functions {', '.join(_FUNCTIONS)})")
            kind = m.lastgroup or ""
            if kind != "space":
                self.tokens.append((kind, m.group(0)))
            pos = m.end()
        self.i = 0

    def parse(self) -> _Pipeline:
        if not self.tokens:
            raise ValueError("empty action {{ }}")
        pipeline = self._pipeline()
        if self.i != len(self.tokens):
            raise ValueError(f"unexpected {self.tokens[self.i][1]!r}")
        return pipeline

    def _peek(self) -> str:
        return self.tokens[self.i][0] if self.i < len(self.tokens) else "eof"

    def _pipeline(self) -> _Pipeline:
        commands = [self._command()]
        while self._peek() == "pipe":
            self.i += 1
            commands.append(self._command())
        return _Pipeline(tuple(commands))

    def _command(self) -> tuple[_Node, ...]:
        operands: list[_Node] = []
        while self._peek() not in ("pipe", "rparen", "eof"):
            operands.append(self._operand())
        if not operands:
            raise ValueError("missing value in an action")
        return tuple(operands)

    def _operand(self) -> _Node:
        kind, text = self.tokens[self.i]
        self.i += 1
        if kind == "field":
            return _Field(tuple(text[1:].split(".")))
        if kind == "raw":
            return _Literal(text[1:-1])
        if kind == "string":
            return _Literal(_unquote(text))
        if kind == "ident":
            if text not in _FUNCTIONS:
                raise ValueError(f"unsupported function {text!r} (wsgate supports "
                                 f"{', '.join(_FUNCTIONS)})")
            return _Call(text, ())
        if kind == "lparen":
            inner = self._pipeline()
            if self._peek() != "rparen":
                raise ValueError("missing )")
            self.i += 1
            return inner
        if kind == "dot":
            raise ValueError("the bare dot (.) is not supported; name a field such as .Name")
        raise ValueError(f"unexpected {text!r}")


def _unquote(text: str) -> str:
    out: list[str] = []
    body = text[1:-1]
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            if nxt not in _ESCAPES:
                raise ValueError(f"unsupported escape \\{nxt} in {text}")
            out.append(_ESCAPES[nxt])
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _evaluate(node: _Node, model: Mapping[str, Value], piped: Value | None) -> Value:
    if isinstance(node, _Pipeline):
        value: Value | None = None
        for command in node.commands:
            value = _command(command, model, value)
        assert value is not None
        return value
    return _command((node,), model, piped)


def _command(command: tuple[_Node, ...], model: Mapping[str, Value],
             piped: Value | None) -> Value:
    head = command[0]
    if not isinstance(head, _Call):
        if len(command) > 1 or piped is not None:
            raise ConfigError("defaultRule: only a function can take arguments")
        return _operand_value(head, model)
    args = [_operand_value(arg, model) for arg in command[1:]]
    if piped is not None:
        args.append(piped)
    return _call(head.function, args)


def _operand_value(node: _Node, model: Mapping[str, Value]) -> Value:
    if isinstance(node, _Literal):
        return node.value
    if isinstance(node, _Field):
        return _field(node.names, model)
    if isinstance(node, _Call):
        return _call(node.function, [])
    return _evaluate(node, model, None)


def _field(names: tuple[str, ...], model: Mapping[str, Value]) -> Value:
    first = names[0]
    if first not in model:
        raise ConfigError(f"defaultRule: unknown field .{first} (known: "
                          f"{', '.join('.' + k for k in model)})")
    value = model[first]
    for name in names[1:]:
        if isinstance(value, str):
            raise ConfigError(f"defaultRule: .{'.'.join(names)}: {first} is text, it has no "
                              f"field {name}")
        value = value.get(name, NO_VALUE)
    return value


def _text(function: str, value: Value) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"defaultRule: {function} needs text, got a map")
    return value


def _call(function: str, args: list[Value]) -> Value:
    if function == "index":
        if len(args) != 2 or isinstance(args[0], str) or not isinstance(args[1], str):
            raise ConfigError("defaultRule: index takes a map and a key: "
                              "index .Labels \"name\"")
        return args[0].get(args[1], "")
    if len(args) != 1:
        raise ConfigError(f"defaultRule: {function} takes one argument, got {len(args)}")
    text = _text(function, args[0])
    if function == "normalize":
        return normalize(text)
    if function == "lower":
        return text.lower()
    return text.upper()


# =========================================================================== constraints

Constraints = Callable[[Mapping[str, str]], bool]


def compile_constraints(expression: str) -> Constraints:
    """The predicate of a ``constraints`` expression (an empty one keeps every container)."""
    if not expression.strip():
        return lambda labels: True
    try:
        tree = parse_rule(expression, "v3")
    except RuleSyntaxError as exc:
        raise ConfigError(f"constraints {expression!r}: {exc}") from None
    return _constraint(tree, expression)


def _constraint(node: Expr, source: str) -> Constraints:
    if isinstance(node, Not):
        inner = _constraint(node.operand, source)
        return lambda labels: not inner(labels)
    if isinstance(node, And):
        parts = [_constraint(op, source) for op in node.operands]
        return lambda labels: all(p(labels) for p in parts)
    if isinstance(node, Or):
        parts = [_constraint(op, source) for op in node.operands]
        return lambda labels: any(p(labels) for p in parts)
    assert isinstance(node, Matcher)
    if node.name not in ("Label", "LabelRegex"):
        raise ConfigError(f"constraints {source!r}: unknown function {node.name!r} (use Label "
                          f"or LabelRegex)")
    if len(node.args) != 2:
        raise ConfigError(f"constraints {source!r}: {node.name} takes two arguments (a label "
                          f"name and a value), got {len(node.args)}")
    name, value = node.args
    if node.name == "Label":
        return lambda labels: labels.get(name, "") == value
    try:
        pattern = compile_go(value)
    except GoRegexpError as exc:
        raise ConfigError(f"constraints {source!r}: LabelRegex: {exc}") from None
    return lambda labels: pattern.search(labels.get(name, "")) is not None
