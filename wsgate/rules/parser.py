"""Lexer and recursive-descent parser for router rules.

The grammar is the one Traefik accepts (a Go expression restricted to calls, ``!``, ``&&``,
``||`` and parentheses)::

    rule    := or EOF
    or      := and ( "||" and )*
    and     := unary ( "&&" unary )*
    unary   := "!" unary | primary
    primary := "(" or ")" | NAME "(" [ STRING ( "," STRING )* [ "," ] ] ")"

``!`` binds tightest, then ``&&``, then ``||``. Literals are Go string literals: raw
(backticks, no escapes, carriage returns dropped) or interpreted (double quotes, Go escapes).
The grammar is the same for the v2 and v3 syntaxes; they differ in their matchers only, which
:func:`wsgate.rules.compile_rule` checks.
"""

from __future__ import annotations

from typing import NamedTuple

from .errors import RuleSyntaxError
from .tree import And, Expr, Matcher, Not, Or

__all__ = ["MAX_NESTING", "SYNTAXES", "check_syntax", "parse_rule"]

SYNTAXES = ("v3", "v2")

# Depth of nested "(" and "!"; keeps parsing (and everything recursive downstream) far
# from Python's recursion limit whatever the input.
MAX_NESTING = 100

_WHITESPACE = " \t\n\r"

_EOF = "eof"
_NAME = "name"
_STRING = "string"
_AND = "&&"
_OR = "||"
_NOT = "!"
_LPAREN = "("
_RPAREN = ")"
_COMMA = ","
_OTHER = "other"

_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    '"': '"',
}
_HEX = frozenset("0123456789abcdefABCDEF")
_OCT = frozenset("01234567")


def check_syntax(syntax: str) -> str:
    """Validate a ``ruleSyntax`` value; raises ValueError naming the allowed values."""
    if syntax not in SYNTAXES:
        allowed = ", ".join(repr(s) for s in SYNTAXES)
        raise ValueError(f"unknown rule syntax {syntax!r}; expected one of {allowed}")
    return syntax


class _Token(NamedTuple):
    kind: str
    start: int
    value: str


def _describe(tok: _Token) -> str:
    if tok.kind == _STRING:
        return "a string literal"
    if tok.kind == _NAME:
        return f"'{tok.value}'"
    return repr(tok.value) if tok.kind == _OTHER else f"'{tok.kind}'"


class _Parser:
    __slots__ = ("depth", "pos", "src", "tok")

    def __init__(self, src: str) -> None:
        self.src = src
        self.pos = 0
        self.tok: _Token | None = None
        self.depth = 0

    # -- errors ------------------------------------------------------------------------

    def fail(self, position: int, detail: str) -> RuleSyntaxError:
        return RuleSyntaxError(self.src, position, detail)

    def unexpected(self, tok: _Token, expected: str) -> RuleSyntaxError:
        if tok.kind == _EOF:
            return self.fail(tok.start, f"expected {expected}")
        if tok.kind == _OTHER and tok.value == "'":
            return self.fail(
                tok.start,
                f"expected {expected}, found a single quote (literals use backticks or "
                "double quotes, not single quotes)",
            )
        return self.fail(tok.start, f"expected {expected}, found {_describe(tok)}")

    # -- lexer -------------------------------------------------------------------------

    def peek(self) -> _Token:
        if self.tok is None:
            self.tok = self._lex()
        return self.tok

    def advance(self) -> _Token:
        tok = self.peek()
        self.tok = None
        return tok

    def _lex(self) -> _Token:
        src = self.src
        n = len(src)
        i = self.pos
        while i < n and src[i] in _WHITESPACE:
            i += 1
        if i >= n:
            self.pos = n
            return _Token(_EOF, n, "")
        c = src[i]
        if c in "(),":
            self.pos = i + 1
            return _Token(c, i, c)
        if c == "!":
            self.pos = i + 1
            return _Token(_NOT, i, c)
        if c in "&|" and src.startswith(c * 2, i):
            self.pos = i + 2
            return _Token(c * 2, i, c * 2)
        if c == "`":
            end = src.find("`", i + 1)
            if end < 0:
                raise self.fail(i, "unterminated string literal")
            self.pos = end + 1
            # Go drops carriage returns from raw string literals.
            return _Token(_STRING, i, src[i + 1 : end].replace("\r", ""))
        if c == '"':
            return self._lex_interpreted(i)
        if c == "_" or c.isalpha():
            j = i + 1
            while j < n and (src[j] == "_" or src[j].isalnum()):
                j += 1
            self.pos = j
            return _Token(_NAME, i, src[i:j])
        self.pos = i + 1
        return _Token(_OTHER, i, c)

    def _lex_interpreted(self, start: int) -> _Token:
        """A Go interpreted string literal; escapes may produce bytes, so build bytes."""
        src = self.src
        n = len(src)
        out = bytearray()
        i = start + 1
        while True:
            if i >= n or src[i] == "\n":
                raise self.fail(start, "unterminated string literal")
            c = src[i]
            if c == '"':
                break
            if c != "\\":
                out += c.encode("utf-8", "surrogatepass")
                i += 1
                continue
            esc_at = i
            if i + 1 >= n:
                raise self.fail(start, "unterminated string literal")
            e = src[i + 1]
            if e in _SIMPLE_ESCAPES:
                out += _SIMPLE_ESCAPES[e].encode()
                i += 2
            elif e in _OCT:
                digits = src[i + 1 : i + 4]
                if len(digits) != 3 or not set(digits) <= _OCT:
                    raise self.fail(
                        esc_at, "invalid octal escape (\\ must be followed by 3 octal digits)"
                    )
                value = int(digits, 8)
                if value > 255:
                    raise self.fail(esc_at, "octal escape value above 255")
                out.append(value)
                i += 4
            elif e in "xuU":
                width = {"x": 2, "u": 4, "U": 8}[e]
                digits = src[i + 2 : i + 2 + width]
                if len(digits) != width or not set(digits) <= _HEX:
                    raise self.fail(esc_at, f"invalid \\{e} escape (expects {width} hex digits)")
                value = int(digits, 16)
                if e == "x":
                    out.append(value)
                else:
                    if value > 0x10FFFF or 0xD800 <= value <= 0xDFFF:
                        raise self.fail(
                            esc_at, f"escape \\{e}{digits} is not a valid Unicode code point"
                        )
                    out += chr(value).encode("utf-8")
                i += 2 + width
            else:
                raise self.fail(esc_at, f"unknown escape sequence \\{e}")
        self.pos = i + 1
        try:
            value_text = out.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(start, "string literal escapes do not form valid UTF-8") from None
        return _Token(_STRING, start, value_text)

    # -- grammar -----------------------------------------------------------------------

    def parse(self) -> Expr:
        expr = self.parse_or()
        tok = self.peek()
        if tok.kind != _EOF:
            raise self.unexpected(tok, "'&&', '||' or end of rule")
        return expr

    def parse_or(self) -> Expr:
        operands = [self.parse_and()]
        while self.peek().kind == _OR:
            self.advance()
            operands.append(self.parse_and())
        if len(operands) == 1:
            return operands[0]
        flat: list[Expr] = []
        for op in operands:
            flat.extend(op.operands if isinstance(op, Or) else (op,))
        return Or(tuple(flat))

    def parse_and(self) -> Expr:
        operands = [self.parse_unary()]
        while self.peek().kind == _AND:
            self.advance()
            operands.append(self.parse_unary())
        if len(operands) == 1:
            return operands[0]
        flat: list[Expr] = []
        for op in operands:
            flat.extend(op.operands if isinstance(op, And) else (op,))
        return And(tuple(flat))

    def enter(self, tok: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.fail(
                tok.start, f"rule nests too deeply (more than {MAX_NESTING} levels of '(' and '!')"
            )

    def parse_unary(self) -> Expr:
        tok = self.peek()
        if tok.kind != _NOT:
            return self.parse_primary()
        self.advance()
        self.enter(tok)
        operand = self.parse_unary()
        self.depth -= 1
        return Not(operand)

    def parse_primary(self) -> Expr:
        tok = self.peek()
        if tok.kind == _LPAREN:
            self.advance()
            self.enter(tok)
            expr = self.parse_or()
            close = self.peek()
            if close.kind != _RPAREN:
                raise self.unexpected(close, "'&&', '||' or ')'")
            self.advance()
            self.depth -= 1
            return expr
        if tok.kind != _NAME:
            raise self.unexpected(tok, "a matcher")
        self.advance()
        paren = self.peek()
        if paren.kind != _LPAREN:
            raise self.unexpected(paren, f"'(' after matcher name '{tok.value}'")
        self.advance()
        args: list[str] = []
        if self.peek().kind == _RPAREN:
            self.advance()
            return Matcher(tok.value, (), tok.start)
        while True:
            arg = self.peek()
            if arg.kind != _STRING:
                raise self.unexpected(arg, "a string literal")
            self.advance()
            args.append(arg.value)
            sep = self.peek()
            if sep.kind == _RPAREN:
                self.advance()
                break
            if sep.kind != _COMMA:
                raise self.unexpected(sep, "',' or ')'")
            self.advance()
            if self.peek().kind == _RPAREN:  # Go allows a trailing comma
                self.advance()
                break
        return Matcher(tok.value, tuple(args), tok.start)


def parse_rule(rule: str, syntax: str = "v3") -> Expr:
    """Parse a rule into its syntax tree.

    Only the grammar is checked here; matcher names, argument counts and argument values
    are checked by :func:`wsgate.rules.compile_rule`. Raises :class:`RuleSyntaxError` for
    any malformed rule and ValueError for an unknown ``syntax``.
    """
    check_syntax(syntax)
    return _Parser(rule).parse()
