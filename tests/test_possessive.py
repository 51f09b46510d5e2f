"""Possessive quantifiers on every Python 3.11 (pgmcp.policy.possessive): compiled as atomic
groups, they match what they should where CPython 3.11.0-3.11.4 did not, and what the
possessive form matches on later versions, for every pattern of the splitter and long lists."""

from __future__ import annotations

import re

import pytest

from pgmcp.policy import longlists, splitter
from pgmcp.policy.possessive import BROKEN, compile_pattern

# CPython's own reports: (pattern, text, what a correct engine finds)
BUG_CASES = [
    (r"(?:ab?c)*+\Z", "a", None),  # gh-106052: a repeated part that backtracks
    (r"(?:a|b(?!c))*+", "abbc;", "ab"),  # gh-100061: a lookahead inside the repeat
    (r"((?!C).)++", "ABC", "AB"),
]

TEXTS = [
    "SELECT id FROM public.users;\nSELECT now()",
    "a - b; c", "x/y;z", "$1;", "$$a$$;", "$q$ x $q$;", "1e'x';", "é; ü", "\x01;",
    "-- c\n;", "/* x */;", "'it''s", "'it''s';", "e'\\'';", "E'a\\\\' 'b';", '"a""b";',
    "'a'\n  -- c\n  'b';", "CREATE FUNCTION f() BEGIN ATOMIC SELECT 1; END;",
    "x IN (" + ", ".join(map(str, range(150))) + ");",
    "VALUES " + ", ".join(f"({i}, 'a''b')" for i in range(120)) + ";",
    "ARRAY[" + ",".join(f"'{i}'" for i in range(130)) + "]",
    "(1, 2.5, -3, 'x'), (4, 5, 6, 'y')",
]


def patterns() -> list[tuple[str, re.Pattern[str]]]:
    found = [(n, p) for n, p in vars(splitter).items() if isinstance(p, re.Pattern)]
    found += [(f"longlists.{n}", p) for n, p in longlists._patterns()._asdict().items()]
    found += [(f"longlists._rows({w})", longlists._rows(w)) for w in (1, 2, 4)]
    return found


@pytest.mark.parametrize(("pattern", "text", "expected"), BUG_CASES)
def test_atomic_groups_match_what_possessive_quantifiers_should(pattern: str, text: str, expected: str | None) -> None:
    found = compile_pattern(pattern, rewrite=True).match(text)
    assert (found.group() if found else None) == expected


@pytest.mark.skipif(BROKEN, reason="this Python's possessive quantifiers are the ones that mis-match")
@pytest.mark.parametrize(("name", "pattern"), patterns(), ids=[n for n, _ in patterns()])
def test_the_rewrite_matches_as_the_possessive_pattern(name: str, pattern: re.Pattern[str]) -> None:
    rewritten = compile_pattern(pattern.pattern, pattern.flags, rewrite=True)
    for text in TEXTS:
        for pos in range(len(text) + 1):
            ours, theirs = rewritten.match(text, pos), pattern.match(text, pos)
            assert (ours and ours.span()) == (theirs and theirs.span()), (name, text, pos)
