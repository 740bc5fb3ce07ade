"""gorilla/mux route templates, as used by Traefik's v2 rule syntax.

A template mixes literal text with ``{name}`` or ``{name:pattern}`` variables. The literal
text is matched literally (regexp metacharacters quoted), a variable without a pattern
matches ``[^/]+`` in paths, ``[^.]+`` in hosts and ``.*`` in query values. Host templates
are matched case-insensitively against the whole host; path templates against the whole
routing path (``Path``) or a prefix of it (``PathPrefix``); query templates against
``key=first-value``.
"""

from __future__ import annotations

import re
from typing import Literal

from .goregexp import GoRegexpError, compile_go, quote_meta

__all__ = ["TemplateError", "TemplateKind", "compile_template"]

TemplateKind = Literal["host", "path", "prefix", "query"]


class TemplateError(ValueError):
    pass


def _brace_spans(tpl: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    level = 0
    start = 0
    for i, ch in enumerate(tpl):
        if ch == "{":
            level += 1
            if level == 1:
                start = i
        elif ch == "}":
            level -= 1
            if level == 0:
                spans.append((start, i + 1))
            elif level < 0:
                raise TemplateError(f"unbalanced braces in {tpl!r}")
    if level != 0:
        raise TemplateError(f"unbalanced braces in {tpl!r}")
    return spans


def compile_template(tpl: str, kind: TemplateKind) -> tuple[re.Pattern[str], tuple[str, ...]]:
    """The anchored regexp for a template, and its variable names."""
    default = {"host": "[^.]+", "query": ".*"}.get(kind, "[^/]+")
    parts = ["(?i)^" if kind == "host" else "^"]
    names: list[str] = []
    end = 0
    for start, stop in _brace_spans(tpl):
        parts.append(quote_meta(tpl[end:start]))
        end = stop
        name, colon, pattern = tpl[start + 1 : stop - 1].partition(":")
        if not colon:
            pattern = default
        if not name or not pattern:
            raise TemplateError(f"missing name or pattern in {tpl[start:stop]!r}")
        try:
            compile_go(f"^{pattern}$")
        except GoRegexpError as exc:
            raise TemplateError(f"invalid pattern in {tpl[start:stop]!r}: {exc}") from None
        parts.append(f"(?:{pattern})")
        names.append(name)
    parts.append(quote_meta(tpl[end:]))
    if kind == "query" and tpl.partition("=")[2] == "":
        parts.append(default)
    if kind != "prefix":
        parts.append("$")
    try:
        return compile_go("".join(parts)), tuple(names)
    except GoRegexpError as exc:
        raise TemplateError(f"invalid template {tpl!r}: {exc}") from None
