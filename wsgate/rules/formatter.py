"""Print a syntax tree back as rule text that parses to an equal tree."""

from __future__ import annotations

from .tree import And, Expr, Matcher, Not, Or

__all__ = ["format_literal", "format_rule"]

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def format_literal(value: str) -> str:
    """Backticks when possible (the usual Traefik style), else a Go double-quoted literal."""
    if "`" not in value and "\r" not in value:
        return f"`{value}`"
    parts = ['"']
    for ch in value:
        if ch in _ESCAPES:
            parts.append(_ESCAPES[ch])
        elif ch.isprintable():
            parts.append(ch)
        elif ord(ch) < 0x80:
            parts.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            parts.append(f"\\u{ord(ch):04x}")
        else:
            parts.append(f"\\U{ord(ch):08x}")
    parts.append('"')
    return "".join(parts)


def format_rule(expr: Expr) -> str:
    """Rule text for ``expr``; ``parse_rule(format_rule(e)) == e`` for every valid tree."""
    if isinstance(expr, Matcher):
        return f"{expr.name}({', '.join(format_literal(a) for a in expr.args)})"
    if isinstance(expr, Not):
        inner = format_rule(expr.operand)
        return f"!({inner})" if isinstance(expr.operand, (And, Or)) else f"!{inner}"
    if isinstance(expr, And):
        # Only an Or operand needs parentheses: And never directly contains And.
        return " && ".join(
            f"({format_rule(op)})" if isinstance(op, Or) else format_rule(op)
            for op in expr.operands
        )
    if isinstance(expr, Or):
        return " || ".join(format_rule(op) for op in expr.operands)
    raise TypeError(f"not a rule expression: {expr!r}")
