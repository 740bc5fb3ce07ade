"""Go regular expressions for the middlewares: compiling with a located error, Go's
replacement templates (``$1``, ``${1}``, ``$name``, ``${name}``, ``$$``) and Go's
``ReplaceAllString`` walk.

Patterns are translated by :mod:`wsgate.rules.goregexp`, which keeps capture groups in order
but drops their names; the names are read here from the Go pattern itself.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from wsgate.middlewares.errors import MiddlewareError
from wsgate.rules.goregexp import GoRegexpError, compile_go

__all__ = ["GoPattern", "compile_pattern", "expand", "replace_all"]


class GoPattern:
    """A compiled Go pattern with its group names."""

    __slots__ = ("names", "regex", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.regex = compile_go(source)
        #: Group number → name, for named groups.
        self.names = _group_names(source)

    def search(self, value: str) -> re.Match[str] | None:
        return self.regex.search(value)

    def replace_all(self, value: str, template: str) -> str:
        return replace_all(self, value, template)


def compile_pattern(middleware: str, field: str, source: str) -> GoPattern:
    """Compile ``source`` or raise a :class:`MiddlewareError` naming the field."""
    try:
        return GoPattern(source)
    except GoRegexpError as exc:
        raise MiddlewareError(middleware, field,
                              f"invalid regular expression {source!r}: {exc}") from None


def _group_names(pattern: str) -> dict[int, str]:
    """Capture group numbers and names of a valid Go pattern, in order of opening."""
    names: dict[int, str] = {}
    group = 0
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            if pattern.startswith("\\Q", i):
                end = pattern.find("\\E", i + 2)
                i = n if end < 0 else end + 2
                continue
            i += 2
            continue
        if c == "[":
            i = _skip_class(pattern, i)
            continue
        if c == "(":
            if pattern.startswith("(?P<", i) or pattern.startswith("(?<", i):
                start = i + (4 if pattern[i + 2] == "P" else 3)
                end = pattern.find(">", start)
                group += 1
                names[group] = pattern[start:end]
                i = end + 1
                continue
            if not pattern.startswith("(?", i):
                group += 1
        i += 1
    return names


def _skip_class(pattern: str, i: int) -> int:
    """Index just after the character class that starts at ``i``."""
    n = len(pattern)
    j = i + 1
    if j < n and pattern[j] == "^":
        j += 1
    first = True
    while j < n:
        c = pattern[j]
        if c == "]" and not first:
            return j + 1
        first = False
        if c == "\\":
            j += 2
            continue
        if pattern.startswith("[:", j):
            end = pattern.find(":]", j + 2)
            if end >= 0:
                j = end + 2
                continue
        j += 1
    return n


def _extract(template: str) -> tuple[str, int, str] | None:
    """Go's ``extract``: the name (or number) after a ``$``, and the rest; None if malformed."""
    if not template:
        return None
    brace = template[0] == "{"
    body = template[1:] if brace else template
    i = 0
    while i < len(body) and (body[i].isalnum() or body[i] == "_"):
        i += 1
    if i == 0:
        return None
    name = body[:i]
    if brace:
        if i >= len(body) or body[i] != "}":
            return None
        i += 1
    num = -1
    if name.isascii() and name.isdigit() and not (name[0] == "0" and len(name) > 1):
        num = int(name) if len(name) <= 8 else -1
    return name, num, body[i:]


def expand(pattern: GoPattern, template: str, match: re.Match[str]) -> str:
    """Go's ``Regexp.Expand`` of ``template`` for ``match``: unknown groups give ""."""
    out: list[str] = []
    while template:
        before, dollar, after = template.partition("$")
        if not dollar:
            break
        out.append(before)
        template = after
        if template.startswith("$"):
            out.append("$")
            template = template[1:]
            continue
        parsed = _extract(template)
        if parsed is None:
            out.append("$")
            continue
        name, num, template = parsed
        if num < 0:
            num = next((g for g, n in pattern.names.items() if n == name), -1)
        if 0 <= num <= (match.re.groups):
            out.append(match.group(num) or "")
    out.append(template)
    return "".join(out)


def replace_all(pattern: GoPattern, src: str, template: str | Callable[[re.Match[str]], str]
                ) -> str:
    """Go's ``ReplaceAllString``: non-overlapping matches left to right; an empty match
    right after a previous match is not replaced (Python's ``re.sub`` would)."""
    regex = pattern.regex
    out: list[str] = []
    last_end = 0
    pos = 0
    end = len(src)
    while pos <= end:
        m = regex.search(src, pos)
        if m is None:
            break
        a, b = m.span()
        out.append(src[last_end:a])
        if b > last_end or a == 0:
            out.append(template(m) if callable(template) else expand(pattern, template, m))
        last_end = b
        if pos + 1 > b:
            pos += 1
        else:
            pos = b
    out.append(src[last_end:])
    return "".join(out)
