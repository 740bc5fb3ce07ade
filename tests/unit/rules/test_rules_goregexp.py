"""Go regexp semantics on top of Python's re."""

from __future__ import annotations

import pytest

from wsgate.rules.goregexp import GoRegexpError, compile_go, quote_meta, translate

# (pattern, subject, expected search result)
SEMANTICS: list[tuple[str, str, bool]] = [
    (r"^a$", "a", True),
    (r"^a$", "a\n", False),  # Go's $ is the end of the text
    (r"(?m)^b$", "a\nb\nc", True),
    (r"a\z", "a", True),
    (r"\Aa", "ba", False),
    (r"a(?i)b|c", "aB", True),
    (r"a(?i)b|c", "C", True),  # the flag reaches the next alternative
    (r"a(?i)b|c", "AB", False),
    (r"(?i:a)b", "Ab", True),
    (r"(?i:a)b", "AB", False),
    (r"((?i)a)b", "AB", False),
    (r"(?i)a(?-i)b", "Ab", True),
    (r"(?i)a(?-i)b", "AB", False),
    (r"(?s).", "\n", True),
    (r".", "\n", False),
    (r"(?U)a+", "aaa", True),
    (r"\d", "٣", False),  # ASCII-only classes
    (r"\w", "é", False),
    (r"\s", "\v", False),
    (r"[[:space:]]", "\v", True),
    (r"\bfoo\b", "a foo b", True),
    (r"\bfoo\b", "afoo", False),
    (r"\Bfoo", "afoo", True),
    (r"\bé", " é", False),  # é is not an ASCII word character
    (r"a{,3}", "a{,3}", True),  # not a count: literal text
    (r"a{,3}", "aaa", False),
    (r"x{01}", "x{01}", True),
    (r"a{2}", "aa", True),
    (r"^a{2}$", "aaa", False),
    (r"^a{2,}$", "aaaa", True),
    (r"\Q.*\E", "x.*y", True),
    (r"\Q.*\E", "xy", False),
    (r"\Qab", "ab", True),
    (r"\x{1F600}", "\U0001f600", True),
    (r"\x41\101\0", "AA\x00", True),
    (r"[]a]+", "]a]", True),
    (r"[^]a]", "b", True),
    (r"[a-]", "-", True),
    (r"[\d-z]", "-", True),
    (r"[[:^alpha:]]", "1", True),
    (r"[[:^alpha:]]", "a", False),
    (r"[\D]", "a", True),
    (r"[^\d]", "5", False),
    (r"(?i)[^a]", "A", False),
    (r"(?i)[a-c]", "B", True),
    (r"[a&&b]", "&", True),  # no set operations in Go
    (r"[a~~b]", "~", True),
    (r"[[a]", "[", True),
    (r"(?P<year>\d{4})-(?<m>\d\d)", "2024-01", True),
    (r"^*a", "a", True),
    (r"\.\+\*\?\(\)\|\[\]\{\}\^\$\\", ".+*?()|[]{}^$\\", True),
    (r"\_\-\ \#\!", "_- #!", True),
    (r"a|", "zzz", True),
    (r"()", "", True),
    (r"(?:)", "", True),
    (r"[\x{10FFFF}]", "\U0010ffff", True),
]


@pytest.mark.parametrize("pattern,subject,expected", SEMANTICS)
def test_go_semantics(pattern: str, subject: str, expected: bool) -> None:
    assert (compile_go(pattern).search(subject) is not None) is expected, translate(pattern)


REJECTED = [
    r"a**",
    r"a*+",
    r"a++",
    r"a?*",
    r"a{2}{3}",
    r"a*??",
    r"*",
    r"(*)",
    r"a|*",
    r"(?=a)",
    r"(?!a)",
    r"(?<=a)b",
    r"(?<!a)b",
    r"(?#comment)",
    r"(?>a)",
    r"(?P=n)",
    r"(?P<>a)",
    r"(?P<a-b>x)",
    r"(?x)a",
    r"(?i-)a",
    r"(?-)a",
    r"(?--i)a",
    r"\1",
    r"(a)\1",
    r"\8",
    r"\Z",
    r"\G",
    r"\e",
    r"\pL",
    r"\p{Greek}",
    r"\PN",
    r"[\pL]",
    r"\C",
    r"[\b]",
    r"[\z]",
    r"\x4",
    r"\x{}",
    r"\x{110000}",
    r"\xé",
    r"a{1001}",
    r"a{2,1}",
    r"a{1000,1001}",
    r"(a{100}){11}",
    r"((a{10}){10}){11}",
    r"[z-a]",
    r"[[:nope:]]",
    r"[a",
    r"[]",
    r"[^]",
    r"(",
    r"(a",
    r")",
    r"a)",
    "a\\",
    "[a\\",
    r"\é",
    "(" * 101 + ")" * 101,
]


@pytest.mark.parametrize("pattern", REJECTED)
def test_go_rejects(pattern: str) -> None:
    with pytest.raises(GoRegexpError):
        compile_go(pattern)


ACCEPTED_LIMITS = [
    r"a{1000}",
    r"(a{10}){100}",
    r"(a{0}){1000}",
    r"a{0,1000}",
    "(" * 100 + ")" * 100,
]


@pytest.mark.parametrize("pattern", ACCEPTED_LIMITS)
def test_go_accepts_up_to_the_limits(pattern: str) -> None:
    compile_go(pattern)


def test_quote_meta() -> None:
    text = r"a.b+c*d?e(f)g|h[i]j{k}l^m$n\o"
    assert compile_go(quote_meta(text)).search(text)
    assert quote_meta("/api/v1.0") == r"/api/v1\.0"
    assert quote_meta("plain-text_~") == "plain-text_~"


def test_error_carries_offset() -> None:
    with pytest.raises(GoRegexpError) as info:
        compile_go("abc)")
    assert info.value.offset == 3
