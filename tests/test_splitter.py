"""Statement splitting, checked three ways against PostgreSQL's own scanner (pglast):

1. hand cases (tests/cases/splitter.yaml), each also compared with pglast unless the case says
   why it cannot be (pglast rejects the text, or psql splits differently by design);
2. every file of the pg_regress corpus, its statements joined back together: the split gives
   back the corpus statements and agrees with pglast, except BEGIN ATOMIC routine bodies, where
   each of our statements must be exactly a run of pglast's;
3. a seeded random mix of the characters that matter (quotes, `$`, comments, `;`, escapes).

pglast's scanner split drops statements holding no keyword at all; psql sends them, so the
comparison leaves those out of ours.
"""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pglast
import pytest
import yaml

from pgmcp.policy.splitter import Statement, split_statements

CASES = Path(__file__).parent / "cases" / "splitter.yaml"
CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpora" / "pg_regress.jsonl"
CASE_KEYS = {"sql", "statements", "positions", "unterminated", "oracle"}
ROUTINE = re.compile(r"create\s+(or\s+replace\s+)?(function|procedure)\b.*\bbegin\s+atomic\b", re.I | re.S)


def _cases() -> list[Any]:
    cases = yaml.safe_load(CASES.read_text())
    for case in cases:
        unknown = set(case) - CASE_KEYS
        assert not unknown, f"unknown keys {sorted(unknown)} in case {case.get('sql')!r}"
        assert case.get("oracle", "same") in {"same", "error", "psql"}
    return [pytest.param(c, id=c["sql"][:50]) for c in cases]


def _has_keyword(sql: str) -> bool:
    try:
        return any(token.kind != "NO_KEYWORD" for token in pglast.parser.scan(sql))
    except pglast.parser.ParseError:
        return True


def pglast_split(text: str) -> list[tuple[int, str]]:
    return [(s.start, text[s]) for s in pglast.split(text, with_parser=False, only_slices=True)]


def ours(text: str) -> list[tuple[int, str]]:
    return [(s.start, s.text) for s in split_statements(text) if _has_keyword(s.text)]


@pytest.mark.parametrize("case", _cases())
def test_hand_case(case: dict[str, Any]) -> None:
    got = split_statements(case["sql"])
    assert [s.text for s in got] == case["statements"]
    assert [s.index for s in got] == list(range(1, len(got) + 1))
    for s in got:
        assert case["sql"][s.start : s.start + len(s.text)] == s.text
    if "positions" in case:
        assert [[s.line, s.column] for s in got] == case["positions"]
    assert [s.unterminated for s in got[:-1]] == [None] * (len(got) - 1)
    assert (got[-1].unterminated if got else None) == case.get("unterminated")
    oracle = case.get("oracle", "same")
    if oracle == "error":
        with pytest.raises(pglast.parser.ParseError):
            pglast_split(case["sql"])
        return
    theirs = pglast_split(case["sql"])
    if oracle == "same":
        assert [(s.start, s.text) for s in got] == theirs
    else:  # psql differs from pglast only as _compare allows
        assert [(s.start, s.text) for s in got] != theirs
        _compare(case["sql"])


def test_position_maps_offsets_inside_a_statement() -> None:
    stmt = split_statements("SELECT 1;\n   SELECT a,\n  b FROM t")[1]
    assert (stmt.line, stmt.column) == (2, 4)
    assert stmt.position(1, 8) == (2, 11)
    assert stmt.position(2, 3) == (3, 3)
    assert stmt.position(None, None) == (2, 4)


def _merged_routine(mine: tuple[int, str], theirs: list[tuple[int, str]], text: str) -> int:
    """How many of pglast's statements `mine` spans when it is a BEGIN ATOMIC routine that
    pglast split inside its body (0 when it is not)."""
    start, body = mine
    if not theirs or theirs[0][0] != start or not ROUTINE.search(body):
        return 0
    end = start + len(body)
    for count, (s, t) in enumerate(theirs, 1):
        if s + len(t) == end:
            return count
        if s + len(t) > end:
            break
    return 0


def _compare(text: str) -> int:
    """Assert our split of `text` agrees with pglast's; return how many routines were merged."""
    mine, theirs = ours(text), pglast_split(text)
    merged = i = j = 0
    while i < len(mine) and j < len(theirs):
        if mine[i] == theirs[j]:
            i, j = i + 1, j + 1
            continue
        span = _merged_routine(mine[i], theirs[j:], text)
        assert span > 1, f"split differs at offset {mine[i][0]}: {mine[i][1][:200]!r} vs {theirs[j][1][:200]!r}"
        merged += 1
        i, j = i + 1, j + span
    assert (i, j) == (len(mine), len(theirs))
    return merged


@pytest.mark.skipif(not CORPUS.exists(), reason="the pg_regress corpus is not present")
def test_corpus_files_split_as_postgresql_does() -> None:
    files: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in CORPUS.read_text().splitlines():
        row = json.loads(line)
        files[row["file"]].append(row)
    merged = 0
    for name, rows in sorted(files.items()):
        rows.sort(key=lambda r: r["index"])
        expected = [r["sql"].strip() for r in rows]
        # A statement may end in a -- comment, so the `;` goes on its own line.
        text = "\n;\n".join(r["sql"] for r in rows)
        got = [s.text for s in split_statements(text)]
        if got != expected:  # only BEGIN ATOMIC bodies, which the corpus (like pglast) splits
            assert any(ROUTINE.search(s) for s in got), name
        merged += _compare(text)
    assert len(files) > 200
    assert merged >= 1  # the corpus has BEGIN ATOMIC routines, and they were recognised


FRAGMENTS = [
    "select", " ", "\n", "\r", "\t", "\f", "\v", ";", ";", "'", "''", "E'", "e'", "\\", "$$", "$a$",
    "$b$", "$1", "$", "x$a$", "--", " -- c\n", "/*", "*/", "/", "-", "*", '"', '""', "U&'", 'U&"',
    "e", "x", "_", "1", "1e", "1.5", ".", "+", "é", "\n'", "'\n'", "\r\n", "--\r",
]


def test_random_mixes_split_as_postgresql_does() -> None:
    rnd = random.Random(20261128)
    compared = 0
    for _ in range(6000):
        text = "select " + "".join(rnd.choice(FRAGMENTS) for _ in range(rnd.randint(1, 16)))
        try:
            theirs = pglast_split(text)
        except pglast.parser.ParseError:
            # PostgreSQL rejects it; we must still cover the whole text, marking what is open.
            stmts = split_statements(text)
            assert all(s.unterminated is None for s in stmts[:-1])
            continue
        assert ours(text) == theirs, repr(text)
        compared += 1
    assert compared > 1000


def test_statement_is_a_frozen_value() -> None:
    stmt = Statement("SELECT 1", 0, 1, 1, 1)
    with pytest.raises(AttributeError):
        stmt.text = "x"  # type: ignore[misc]
