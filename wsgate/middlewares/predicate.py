"""The small expression language of circuitBreaker ``expression`` and buffering
``retryExpression`` (Traefik hands both to vulcand/oxy, which reads them as Go expressions).

    expression := or
    or         := and { "||" and }
    and        := test { "&&" test }
    test       := "(" expression ")" | call [ ("==" | "!=" | "<" | "<=" | ">" | ">=") literal ]
    call       := NAME "(" [ literal { "," literal } ] ")"
    literal    := integer | decimal | "string" | `string`

A call without a comparison must return a boolean (``IsNetworkError()``); a comparison
compares a call with a literal, the call on the left (``NetworkErrorRatio() > 0.30``). Integer
literals are accepted where oxy wants a decimal (``NetworkErrorRatio() > 1``), which oxy
itself rejects. ``!`` is not part of the language (oxy leaves it undefined).

Expressions are compiled once into a function of an environment object, which the functions
read (the circuit breaker's metrics, the buffering attempt).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Function", "PredicateError", "compile_predicate"]

Predicate = Callable[[Any], bool]


class PredicateError(ValueError):
    def __init__(self, expression: str, position: int, detail: str) -> None:
        self.expression = expression
        self.position = position
        self.detail = detail
        super().__init__(f"{detail} at position {position} of {expression!r}")


@dataclass(frozen=True)
class Function:
    """A function of the language: argument kinds, result kind and implementation.

    Kinds are ``"int"``, ``"float"``, ``"string"`` and ``"bool"`` (results only).
    ``impl(env, *args)`` computes the value.
    """

    args: tuple[str, ...]
    result: str
    impl: Callable[..., Any]


_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|`[^`]*`)
  | (?P<op>&&|\|\||==|!=|<=|>=|<|>|\(|\)|,|!)
""", re.VERBOSE)

_COMPARE = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le,
            ">": operator.gt, ">=": operator.ge}


def _tokens(expression: str) -> list[tuple[str, str, int]]:
    out = []
    pos = 0
    while pos < len(expression):
        m = _TOKEN.match(expression, pos)
        if m is None:
            raise PredicateError(expression, pos, f"unexpected character {expression[pos]!r}")
        kind = m.lastgroup or ""
        if kind != "space":
            out.append((kind, m.group(), pos))
        pos = m.end()
    out.append(("end", "", pos))
    return out


def _unquote(token: str) -> str:
    if token.startswith("`"):
        return token[1:-1]
    body = token[1:-1]
    escapes = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m.group(1), m.group(1)), body)


class _Parser:
    def __init__(self, expression: str, functions: Mapping[str, Function]) -> None:
        self.expression = expression
        self.functions = functions
        self.tokens = _tokens(expression)
        self.i = 0

    def fail(self, detail: str, pos: int | None = None) -> PredicateError:
        return PredicateError(self.expression, self.tokens[self.i][2] if pos is None else pos,
                              detail)

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i]

    def take(self, value: str) -> bool:
        kind, text, _ = self.tokens[self.i]
        if kind == "op" and text == value:
            self.i += 1
            return True
        return False

    def parse(self) -> Predicate:
        if self.peek()[0] == "end":
            raise self.fail("empty expression")
        result = self.parse_or()
        if self.peek()[0] != "end":
            raise self.fail(f"unexpected {self.peek()[1]!r}")
        return result

    def parse_or(self) -> Predicate:
        parts = [self.parse_and()]
        while self.take("||"):
            parts.append(self.parse_and())
        if len(parts) == 1:
            return parts[0]
        return lambda env: any(p(env) for p in parts)

    def parse_and(self) -> Predicate:
        parts = [self.parse_test()]
        while self.take("&&"):
            parts.append(self.parse_test())
        if len(parts) == 1:
            return parts[0]
        return lambda env: all(p(env) for p in parts)

    def parse_test(self) -> Predicate:
        kind, text, pos = self.peek()
        if kind == "op" and text == "(":
            self.i += 1
            inner = self.parse_or()
            if not self.take(")"):
                raise self.fail("missing )")
            return inner
        if kind == "op" and text == "!":
            raise self.fail("the ! operator is not supported")
        if kind != "name":
            raise self.fail(f"expected a function call, got {text or 'the end'!r}")
        fn, call = self.parse_call()
        kind, text, op_pos = self.peek()
        if kind == "op" and text in _COMPARE:
            self.i += 1
            if fn.result == "bool":
                raise self.fail(f"{self.name_at(pos)}() is a condition and cannot be "
                                f"compared", op_pos)
            if fn.result == "string" and text not in ("==", "!="):
                raise self.fail(f"{self.name_at(pos)}() can only be compared with == or !=",
                                op_pos)
            value = self.parse_literal(fn.result, f"the result of {self.name_at(pos)}()")
            compare = _COMPARE[text]
            return lambda env: bool(compare(call(env), value))
        if fn.result != "bool":
            raise self.fail(f"{self.name_at(pos)}() must be compared with a value, as in "
                            f"{self.name_at(pos)}() > 0.5")
        return lambda env: bool(call(env))

    def name_at(self, pos: int) -> str:
        m = re.match(r"[A-Za-z_][A-Za-z0-9_]*", self.expression[pos:])
        return m.group() if m else "?"

    def parse_call(self) -> tuple[Function, Callable[[Any], Any]]:
        _, name, pos = self.peek()
        fn = self.functions.get(name)
        if fn is None:
            known = ", ".join(sorted(self.functions))
            raise self.fail(f"unknown function {name} (known: {known})")
        self.i += 1
        if not self.take("("):
            raise self.fail(f"expected ( after {name}")
        args: list[Any] = []
        if not self.take(")"):
            while True:
                kind_wanted = fn.args[len(args)] if len(args) < len(fn.args) else "int"
                args.append(self.parse_literal(kind_wanted, f"argument {len(args) + 1} of "
                                                            f"{name}()"))
                if self.take(")"):
                    break
                if not self.take(","):
                    raise self.fail("expected , or )")
        if len(args) != len(fn.args):
            raise self.fail(f"{name}() takes {len(fn.args)} argument(s), got {len(args)}",
                            pos)
        impl = fn.impl
        frozen = tuple(args)
        return fn, lambda env: impl(env, *frozen)

    def parse_literal(self, kind: str, what: str) -> Any:
        tkind, text, _ = self.peek()
        if tkind == "number" and kind in ("int", "float"):
            is_int = re.fullmatch(r"\d+", text) is not None
            if kind == "int" and not is_int:
                raise self.fail(f"{what} must be an integer, got {text}")
            self.i += 1
            return int(text) if kind == "int" else float(text)
        if tkind == "string" and kind == "string":
            self.i += 1
            return _unquote(text)
        wanted = {"int": "an integer", "float": "a number", "string": "a string"}[kind]
        raise self.fail(f"{what} must be {wanted}, got {text or 'the end'!r}")


def compile_predicate(expression: str, functions: Mapping[str, Function]) -> Predicate:
    """Compile ``expression``; raises :class:`PredicateError` with the position."""
    return _Parser(expression, functions).parse()
