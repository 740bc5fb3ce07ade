"""Go (RE2) regular expressions, translated to Python ``re``.

Traefik's regex matchers use Go's ``regexp`` package. Python's ``re`` reads most Go
patterns the same way, but not all, so every pattern is parsed with Go's rules and re-emitted
as an equivalent Python pattern:

- what Go rejects is rejected (look-arounds, backreferences, possessive and stacked
  repetitions such as ``a**``, counts above 1000, unknown escapes, ``\\Z``, ``[\\b]`` ...);
- ``$`` means end of text (Go's ``\\z``), not "end or before a final newline";
- ``\\d \\w \\s \\b`` and ``[[:name:]]`` are ASCII-only as in Go;
- inline flags ``(?i) (?m) (?s) (?U)`` may appear anywhere and last until the end of the
  enclosing group, as in Go (``U`` swaps greedy and lazy repetition);
- ``{`` that does not start a valid count is a literal (``a{,3}`` is four characters);
- ``\\Q...\\E``, ``\\x{10FFFF}``, octal ``\\123`` and ``(?<name>re)`` are understood.

Not supported (rejected with a clear error): Unicode classes ``\\p{...}``/``\\P{...}``.
Matching is a boolean search, so capture groups are emitted without their names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["GoRegexpError", "compile_go", "quote_meta", "translate"]

MAX_REPEAT = 1000
MAX_NESTING = 100
_MAX_RUNE = 0x10FFFF

_WORD = "[0-9A-Za-z_]"
_WORD_BOUNDARY = f"(?:(?<={_WORD})(?!{_WORD})|(?<!{_WORD})(?={_WORD}))"
_NOT_WORD_BOUNDARY = f"(?:(?<={_WORD})(?={_WORD})|(?<!{_WORD})(?!{_WORD}))"

Ranges = list[tuple[int, int]]

_PERL: dict[str, tuple[Ranges, bool]] = {
    "d": ([(0x30, 0x39)], False),
    "s": ([(0x09, 0x0A), (0x0C, 0x0D), (0x20, 0x20)], False),
    "w": ([(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)], False),
}
_PERL.update({k.upper(): (v, True) for k, (v, _) in list(_PERL.items())})

_POSIX: dict[str, Ranges] = {
    "alnum": [(0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)],
    "alpha": [(0x41, 0x5A), (0x61, 0x7A)],
    "ascii": [(0x00, 0x7F)],
    "blank": [(0x09, 0x09), (0x20, 0x20)],
    "cntrl": [(0x00, 0x1F), (0x7F, 0x7F)],
    "digit": [(0x30, 0x39)],
    "graph": [(0x21, 0x7E)],
    "lower": [(0x61, 0x7A)],
    "print": [(0x20, 0x7E)],
    "punct": [(0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)],
    "space": [(0x09, 0x0D), (0x20, 0x20)],
    "upper": [(0x41, 0x5A)],
    "word": [(0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A)],
    "xdigit": [(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)],
}

_C_ESCAPES = {"a": 0x07, "f": 0x0C, "n": 0x0A, "r": 0x0D, "t": 0x09, "v": 0x0B}
_HEX = "0123456789abcdefABCDEF"
_META = frozenset("\\.+*?()|[]{}^$")

# Go flags as tracked here: FOLD (i), MULTI (m: not OneLine), DOTNL (s), UNGREEDY (U).
_FOLD, _MULTI, _DOTNL, _UNGREEDY = 1, 2, 4, 8
_FLAG_BITS = {"i": _FOLD, "m": _MULTI, "s": _DOTNL, "U": _UNGREEDY}


class GoRegexpError(ValueError):
    """A pattern Go's regexp package would reject (or that we cannot express)."""

    def __init__(self, message: str, offset: int) -> None:
        self.offset = offset
        super().__init__(f"{message} (at offset {offset} of the pattern)")


def quote_meta(text: str) -> str:
    """Go's ``regexp.QuoteMeta``: escape every regexp metacharacter."""
    return "".join("\\" + c if c in _META else c for c in text)


def _negate(ranges: Ranges) -> Ranges:
    out: Ranges = []
    nxt = 0
    for lo, hi in ranges:
        if nxt <= lo - 1:
            out.append((nxt, lo - 1))
        nxt = hi + 1
    if nxt <= _MAX_RUNE:
        out.append((nxt, _MAX_RUNE))
    return out


def _clean(ranges: Ranges) -> Ranges:
    out: Ranges = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


def _esc_cp(cp: int) -> str:
    ch = chr(cp)
    if ch.isascii() and ch.isalnum():
        return ch
    if 0x20 < cp < 0x7F:
        return "\\" + ch  # ASCII punctuation: Python accepts it escaped, in or out of a class
    if cp <= 0xFF:
        return f"\\x{cp:02x}"
    if cp <= 0xFFFF:
        return f"\\u{cp:04x}"
    return f"\\U{cp:08x}"


def _has_case(ch: str) -> bool:
    return ch.lower() != ch or ch.upper() != ch or ch.casefold() != ch


@dataclass
class _Atom:
    text: str
    factor: int = 1  # largest product of nested counted repetitions (Go's size limit)


@dataclass
class _Frame:
    opener: str
    saved_flags: int
    start: int
    alternatives: list[list[_Atom]] = field(default_factory=list)
    current: list[_Atom] = field(default_factory=list)


class _Translator:
    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0
        self.flags = 0
        self.stack = [_Frame("", 0, 0)]
        self.last_was_repeat = False

    def fail(self, message: str, offset: int | None = None) -> GoRegexpError:
        return GoRegexpError(message, self.i if offset is None else offset)

    # -- emitting ----------------------------------------------------------------------

    def push(self, text: str, factor: int = 1) -> None:
        self.stack[-1].current.append(_Atom(text, factor))

    def push_literal(self, cp: int) -> None:
        ch = chr(cp)
        text = _esc_cp(cp)
        if self.flags & _FOLD and _has_case(ch):
            text = f"(?i:{text})"
        self.push(text)

    def push_class(self, ranges: Ranges, negated: bool) -> None:
        ranges = _clean(ranges)
        if not ranges:
            self.push("(?s:.)" if negated else "(?!)")
            return
        body = "".join(
            _esc_cp(lo) if lo == hi else f"{_esc_cp(lo)}-{_esc_cp(hi)}" for lo, hi in ranges
        )
        text = f"[{'^' if negated else ''}{body}]"
        if self.flags & _FOLD:
            text = f"(?i:{text})"
        self.push(text)

    # -- main loop ---------------------------------------------------------------------

    def run(self) -> str:
        p = self.p
        while self.i < len(p):
            c = p[self.i]
            repeat = False
            if c == "(":
                self.open_group()
            elif c == ")":
                self.close_group()
            elif c == "|":
                frame = self.stack[-1]
                frame.alternatives.append(frame.current)
                frame.current = []
                self.i += 1
            elif c == "^":
                self.push("(?m:^)" if self.flags & _MULTI else "\\A")
                self.i += 1
            elif c == "$":
                self.push("(?m:$)" if self.flags & _MULTI else "\\Z")
                self.i += 1
            elif c == ".":
                self.push("(?s:.)" if self.flags & _DOTNL else ".")
                self.i += 1
            elif c == "[":
                self.parse_class()
            elif c in "*+?":
                self.repeat(self.i, self.i + 1, 0, -1 if c != "?" else 1, c)
                repeat = True
            elif c == "{":
                parsed = self.parse_count(self.i)
                if parsed is None:
                    self.push_literal(ord("{"))
                    self.i += 1
                else:
                    lo, hi, end = parsed
                    if lo < 0 or lo > MAX_REPEAT or hi > MAX_REPEAT or (hi >= 0 and lo > hi):
                        raise self.fail(f"invalid repeat count {p[self.i : end]}")
                    self.repeat(self.i, end, lo, hi, "{")
                    repeat = True
            elif c == "\\":
                self.parse_escape_atom()
            else:
                self.push_literal(ord(c))
                self.i += 1
            self.last_was_repeat = repeat
        if len(self.stack) != 1:
            raise self.fail("missing closing )", self.stack[-1].start)
        frame = self.stack[0]
        frame.alternatives.append(frame.current)
        return "|".join("".join(a.text for a in alt) for alt in frame.alternatives)

    # -- groups ------------------------------------------------------------------------

    def open_group(self) -> None:
        p, start = self.p, self.i
        if len(self.stack) > MAX_NESTING:
            raise self.fail(f"regexp nests too deeply (more than {MAX_NESTING} groups)")
        if not p.startswith("(?", start):
            self.stack.append(_Frame("(", self.flags, start))
            self.i += 1
            return
        named_p = len(p) - start > 4 and p[start + 2] == "P" and p[start + 3] == "<"
        named = len(p) - start > 3 and p[start + 2] == "<"
        if named_p or named:
            end = p.find(">", start)
            name = p[start + (4 if named_p else 3) : end] if end >= 0 else ""
            if (
                end < 0
                or not name
                or not all(ch == "_" or (ch.isascii() and ch.isalnum()) for ch in name)
            ):
                raise self.fail("invalid named capture", start)
            self.stack.append(_Frame("(", self.flags, start))
            self.i = end + 1
            return
        flags = self.flags
        j = start + 2
        negate = False
        saw_flag = False
        while j < len(p):
            ch = p[j]
            j += 1
            if ch in _FLAG_BITS:
                if negate:
                    flags &= ~_FLAG_BITS[ch]
                else:
                    flags |= _FLAG_BITS[ch]
                saw_flag = True
            elif ch == "-" and not negate:
                negate = True
                saw_flag = False
            elif ch in ":)" and not (negate and not saw_flag):
                if ch == ":":
                    self.stack.append(_Frame("(?:", self.flags, start))
                self.flags = flags
                self.i = j
                return
            else:
                break
        raise self.fail(f"invalid or unsupported Perl syntax {p[start:j]!r}", start)

    def close_group(self) -> None:
        if len(self.stack) == 1:
            raise self.fail("unexpected )")
        frame = self.stack.pop()
        frame.alternatives.append(frame.current)
        body = "|".join("".join(a.text for a in alt) for alt in frame.alternatives)
        factor = max((a.factor for alt in frame.alternatives for a in alt), default=1)
        self.flags = frame.saved_flags
        self.i += 1
        self.push(f"{frame.opener}{body})", factor)

    # -- repetition --------------------------------------------------------------------

    def parse_int(self, j: int) -> tuple[int, int] | None:
        p = self.p
        if j >= len(p) or not p[j].isdigit() or not p[j].isascii():
            return None
        if p[j] == "0" and j + 1 < len(p) and p[j + 1] in "0123456789":
            return None  # Go disallows leading zeros
        k = j
        while k < len(p) and p[k] in "0123456789":
            k += 1
        digits = p[j:k]
        return (int(digits) if len(digits) <= 8 else -1), k

    def parse_count(self, j: int) -> tuple[int, int, int] | None:
        """Parse ``{n}``, ``{n,}`` or ``{n,m}`` at j; None if it is not a count."""
        p = self.p
        first = self.parse_int(j + 1)
        if first is None:
            return None
        lo, k = first
        if k >= len(p):
            return None
        if p[k] != ",":
            hi = lo
        else:
            k += 1
            if k >= len(p):
                return None
            if p[k] == "}":
                hi = -1
            else:
                second = self.parse_int(k)
                if second is None:
                    return None
                hi, k = second
                if hi < 0:
                    lo = -1
        if k >= len(p) or p[k] != "}":
            return None
        return lo, hi, k + 1

    def repeat(self, start: int, end: int, lo: int, hi: int, kind: str) -> None:
        p = self.p
        lazy = end < len(p) and p[end] == "?"
        if lazy:
            end += 1
        if self.last_was_repeat:
            raise self.fail(f"invalid nested repetition operator {p[start:end]!r}", start)
        current = self.stack[-1].current
        if not current:
            raise self.fail(f"missing argument to repetition operator {p[start:end]!r}", start)
        atom = current[-1]
        factor = atom.factor
        if kind == "{":
            m = hi if hi >= 0 else lo
            factor = 0 if m == 0 else m * factor
            if (lo >= 2 or hi >= 2) and factor > MAX_REPEAT:
                raise self.fail(f"invalid repeat count {p[start:end]!r}", start)
            quant = f"{{{lo}}}" if lo == hi else f"{{{lo},}}" if hi < 0 else f"{{{lo},{hi}}}"
        else:
            quant = kind
        if lazy == bool(self.flags & _UNGREEDY):
            suffix = ""
        else:
            suffix = "?"
        current[-1] = _Atom(f"(?:{atom.text}){quant}{suffix}", factor)
        self.i = end

    # -- escapes and classes -----------------------------------------------------------

    def parse_escape_atom(self) -> None:
        p, start = self.p, self.i
        if start + 1 >= len(p):
            raise self.fail("trailing backslash at end of expression", start)
        e = p[start + 1]
        if e == "A":
            self.push("\\A")
        elif e == "z":
            self.push("\\Z")
        elif e == "b":
            self.push(_WORD_BOUNDARY)
        elif e == "B":
            self.push(_NOT_WORD_BOUNDARY)
        elif e == "C":
            raise self.fail("invalid escape sequence \\C (any byte is not supported)", start)
        elif e == "Q":
            end = p.find("\\E", start + 2)
            literal = p[start + 2 :] if end < 0 else p[start + 2 : end]
            for ch in literal:
                self.push_literal(ord(ch))
            self.i = len(p) if end < 0 else end + 2
            return
        elif e in "pP":
            raise self.fail("Unicode character classes (\\p, \\P) are not supported", start)
        elif e in _PERL:
            ranges, negated = _PERL[e]
            self.push_class(_negate(ranges) if negated else list(ranges), False)
        else:
            cp, self.i = self.parse_escape(start)
            self.push_literal(cp)
            return
        self.i = start + 2

    def parse_escape(self, start: int) -> tuple[int, int]:
        """A single-character escape at ``start`` (the backslash): (code point, next index)."""
        p = self.p
        if start + 1 >= len(p):
            raise self.fail("trailing backslash at end of expression", start)
        e = p[start + 1]
        j = start + 2
        if e in "1234567" and not (j < len(p) and p[j] in "01234567"):
            raise self.fail(
                f"invalid escape sequence \\{e} (backreferences are not supported)", start
            )
        if e in "01234567":
            value = int(e)
            for _ in range(2):
                if j < len(p) and p[j] in "01234567":
                    value = value * 8 + int(p[j])
                    j += 1
            return value, j
        if e == "x":
            if j < len(p) and p[j] == "{":
                end = p.find("}", j)
                digits = p[j + 1 : end] if end >= 0 else ""
                if not digits or any(d not in _HEX for d in digits) or int(digits, 16) > _MAX_RUNE:
                    raise self.fail("invalid escape sequence \\x{...}", start)
                return int(digits, 16), end + 1
            digits = p[j : j + 2]
            if len(digits) != 2 or any(d not in _HEX for d in digits):
                raise self.fail("invalid escape sequence \\x", start)
            return int(digits, 16), j + 2
        if e in _C_ESCAPES:
            return _C_ESCAPES[e], j
        if e.isascii() and not e.isalnum():
            return ord(e), j
        raise self.fail(f"invalid escape sequence \\{e}", start)

    def parse_class(self) -> None:
        p, start = self.p, self.i
        j = start + 1
        negated = j < len(p) and p[j] == "^"
        if negated:
            j += 1
        ranges: Ranges = []
        first = True
        while j >= len(p) or p[j] != "]" or first:
            if j >= len(p):
                raise self.fail("missing closing ] of character class", start)
            first = False
            if p.startswith("[:", j):
                end = p.find(":]", j + 2)
                if end >= 0:
                    name = p[j + 2 : end]
                    neg = name.startswith("^")
                    group = _POSIX.get(name[1:] if neg else name)
                    if group is None:
                        raise self.fail(f"invalid character class range [:{name}:]", j)
                    ranges.extend(_negate(group) if neg else group)
                    j = end + 2
                    continue
            if p.startswith("\\", j) and j + 1 < len(p):
                e = p[j + 1]
                if e in "pP":
                    raise self.fail("Unicode character classes (\\p, \\P) are not supported", j)
                if e in _PERL:
                    group, neg = _PERL[e]
                    ranges.extend(_negate(group) if neg else group)
                    j += 2
                    continue
            lo, j = self.class_char(j, start)
            hi = lo
            if j + 1 < len(p) and p[j] == "-" and p[j + 1] != "]":
                range_start = j - 1
                hi, j = self.class_char(j + 1, start)
                if hi < lo:
                    raise self.fail("invalid character class range", range_start)
            ranges.append((lo, hi))
        self.i = j + 1
        self.push_class(ranges, negated)

    def class_char(self, j: int, class_start: int) -> tuple[int, int]:
        p = self.p
        if j >= len(p):
            raise self.fail("missing closing ] of character class", class_start)
        if p[j] == "\\":
            return self.parse_escape(j)
        return ord(p[j]), j + 1


def translate(pattern: str) -> str:
    """The Python ``re`` pattern equivalent to the Go pattern; raises GoRegexpError."""
    return _Translator(pattern).run()


def compile_go(pattern: str) -> re.Pattern[str]:
    """Compile a Go regexp for Python; raises GoRegexpError if Go (or we) would reject it."""
    translated = translate(pattern)
    try:
        return re.compile(translated)
    except (re.error, RecursionError, OverflowError) as exc:  # pragma: no cover - defensive
        raise GoRegexpError(f"cannot compile translated pattern: {exc}", 0) from exc
