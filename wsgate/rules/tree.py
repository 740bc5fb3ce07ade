"""The immutable syntax tree of a rule.

``&&`` and ``||`` chains are n-ary (``a && b && c`` is one ``And`` of three operands) so the
tree depth grows only with parentheses and ``!``, never with the length of a chain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

__all__ = ["And", "Expr", "Matcher", "Not", "Or"]


@dataclass(frozen=True, slots=True)
class Matcher:
    """A call such as ``Host(`example.com`)``: the name as written and its string arguments."""

    name: str
    args: tuple[str, ...]
    # Offset of the name in the source rule; not part of the value (two equal rules written
    # with different spacing compare equal).
    position: int = field(default=0, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr


@dataclass(frozen=True, slots=True)
class And:
    """All operands match. Always at least two operands, none of them an ``And``."""

    operands: tuple[Expr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """Any operand matches. Always at least two operands, none of them an ``Or``."""

    operands: tuple[Expr, ...]


Expr = Union[Matcher, Not, And, Or]
