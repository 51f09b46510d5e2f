"""Long lists of plain literals, judged without tokenizing and parsing every item.

A 200,000-item `IN (...)` list costs sqlglot seconds to tokenize and parse, and the checker
does it twice when the statement is rewritten. Its items read no column and call nothing, so
what the policy judges is the same with one item in their place. Before tokenizing, `shorten`
finds such runs in the text and replaces each by one placeholder string literal; the checker
tokenizes and parses the short text, and `Shortened.restore` puts the original items back
into a rewritten statement's generated text (what runs is the user's list, byte for byte).

A run is taken only in three places, and only when it is at least `MIN_ITEMS` items long:

- everything between the parentheses of `IN (...)`;
- everything between the brackets of `ARRAY[...]`;
- the rows after `VALUES`: `(...), (...), ...`, every row of the same width.

An item is a plain decimal number (`42`, `-7`, `3.25`) or a plain string literal (`'a'`,
`'it''s'`); only blanks (space, tab, CR, LF, FF, VT: PostgreSQL's whitespace, scan.l) and
commas may separate them. That leaves no room for anything else: no comment (`--`, `/*`), no
cast, function call, subquery or parameter, no `E''`, `U&''`, `B''`, `X''`, `N''` or
dollar-quoted string (a prefixed string needs a letter or `$` next to its quote; an item's
quote follows `(`, `,` or a blank). With standard_conforming_strings on (pgmcp pins it, and
sqlglot assumes it) a backslash in a plain string is an ordinary character, and a string
cannot continue past its closing quote because a comma or the closing parenthesis follows.

Why it is sound. The text search knows nothing of quotes and comments, so a "run" may sit
inside a string or a comment. `verify` settles it on the tokens of the short text: each
placeholder must be exactly one string token, where the search put it, right after `IN (`,
`ARRAY [` or `VALUES` (and for a row, followed by its NULLs and `)`). The text before a run is
the same in both texts, so the lexer (PostgreSQL's as well as sqlglot's) enters the run in
the same state; the placeholder starting a token there proves that state is plain SQL, from
which the run's characters can only lex as the literals, commas and blanks above, leaving
the lexer in the same state at the run's end as after the placeholder. Both texts therefore
have the same tokens outside the runs, and the same parse but for the items of each list.
When anything does not hold (a placeholder not where it was put, a parse error, a rewrite
whose generated text does not hold each placeholder exactly once) the checker goes back to
the whole text: the short path is an optimisation, never a different judgement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import NamedTuple

from sqlglot.tokenizer_core import Token, TokenType

from pgmcp.policy.possessive import compile_pattern

MIN_ITEMS = 100  # shorter lists take the ordinary path (and cost little on it)
MAX_ROW_WIDTH = 32

_W = r"[ \t\n\r\f\v]*+"  # PostgreSQL's whitespace only (Python's \s also matches Unicode spaces)
_LIT = r"(?:-?[0-9]++(?:\.[0-9]++)?+|'[^']*+(?:''[^']*+)*+')"
_ITEMS = rf"{_W}{_LIT}{_W}(?:,{_W}{_LIT}{_W}){{{MIN_ITEMS - 1},}}+"
_ROW = rf"\({_W}{_LIT}{_W}(?:,{_W}{_LIT}{_W})*+\)"


class _Patterns(NamedTuple):
    scalar_run: re.Pattern[str]  # the whole inside of (...) or [...]; the tokens tell which keyword opens it
    first_row: re.Pattern[str]
    values: re.Pattern[str]  # VALUES as a word of its own (no identifier character before it)
    item: re.Pattern[str]
    number: re.Pattern[str]


@cache
def _patterns() -> _Patterns:
    """Compiled when first needed: most statements have too few commas to hold a long list."""
    return _Patterns(
        compile_pattern(rf"(?<=[(\[]){_ITEMS}(?=[)\]])"),
        compile_pattern(_ROW),
        compile_pattern(
            rf"(?<![A-Za-z0-9_$])(?<![^\x00-\x7f])[Vv][Aa][Ll][Uu][Ee][Ss]{_W}"
            rf"(?={_ROW}(?:{_W},{_W}{_ROW}){{{MIN_ITEMS - 1},}}+)"
        ),
        compile_pattern(_LIT),
        re.compile(r"[0-9]+"),
    )


@lru_cache(maxsize=MAX_ROW_WIDTH)
def _rows(width: int) -> re.Pattern[str]:
    """At least MIN_ITEMS rows of `width` literals each, separated by commas."""
    row = rf"\({_W}{_LIT}{_W}(?:,{_W}{_LIT}{_W}){{{width - 1}}}\)"
    return compile_pattern(rf"{row}(?:{_W},{_W}{row}){{{MIN_ITEMS - 1},}}+")


@dataclass(frozen=True)
class Run:
    """One list replaced by a placeholder: `text[start:end]` of the original (the inside of
    the brackets, or the rows after VALUES), and where its placeholder stands in the short text."""

    start: int
    end: int
    placeholder: str  # the literal written in its place: 'tag' or ('tag', NULL, ...)
    at: int  # offset of the placeholder in the short text
    kind: str  # "in", "array" or "values"
    width: int = 1  # a VALUES row's items


@dataclass(frozen=True)
class Shortened:
    """A text with its long lists replaced by placeholders."""

    original: str
    text: str
    runs: tuple[Run, ...]
    tag: str  # the placeholders' common prefix, found nowhere in the original

    def original_offset(self, offset: int) -> int:
        """The offset in the original text of `offset` in the short text (a placeholder's
        characters map to its run's start)."""
        shift = 0
        for run in self.runs:
            if offset < run.at:
                break
            if offset < run.at + len(run.placeholder):
                return run.start
            shift += (run.end - run.start) - len(run.placeholder)
        return offset + shift

    def restore(self, generated: str) -> str | None:
        """`generated` (SQL generated from the short text's tree, rewritten) with each
        placeholder replaced by its original list; None unless each occurs exactly once."""
        # sqlglot writes a string literal as 'text' and a tuple as (a, b), as the placeholders
        # are written; each must come back once, and nothing else may hold the tag.
        found = [m.start() for m in re.finditer(re.escape(self.tag), generated)]
        if len(found) != len(self.runs):
            return None
        places: list[tuple[int, Run]] = []
        for at in found:
            number = _patterns().number.match(generated, at + len(self.tag))
            index = int(number.group()) if number is not None else -1
            run = self.runs[index] if 0 <= index < len(self.runs) else None
            begin = at - (1 if run is None or run.kind != "values" else 2)
            if run is None or not generated.startswith(run.placeholder, begin):
                return None
            places.append((begin, run))
        if len({id(run) for _, run in places}) != len(self.runs):
            return None
        parts: list[str] = []
        last = 0
        for begin, run in sorted(places, key=lambda place: place[0]):
            parts += [generated[last:begin], self.original[run.start : run.end]]
            last = begin + len(run.placeholder)
        parts.append(generated[last:])
        return "".join(parts)


def shorten(text: str) -> Shortened | None:
    """`text` with every long literal list (see the module doc) replaced by a placeholder, or
    None when it has none. Not yet proven: `verify` the short text's tokens before use."""
    if text.count(",") < MIN_ITEMS - 1:
        return None
    patterns = _patterns()
    found: list[tuple[int, int, str, int]] = []  # start, end, kind, width
    for match in patterns.scalar_run.finditer(text):
        found.append((match.start(), match.end(), "list", 1))
    for match in patterns.values.finditer(text):
        first = patterns.first_row.match(text, match.end())
        if first is None:
            continue
        width = len(patterns.item.findall(text, first.start(), first.end()))
        if width > MAX_ROW_WIDTH:
            continue
        rows = _rows(width).match(text, match.end())
        if rows is not None:
            found.append((rows.start(), rows.end(), "values", width))
    if not found:
        return None
    found.sort()
    tag = "pgmcp-long-list-"
    while tag in text:
        tag += "x"
    parts: list[str] = []
    runs: list[Run] = []
    last = 0
    length = 0
    for start, end, kind, width in found:
        if start < last:
            return None  # overlapping candidates: not a shape this handles
        name = f"{tag}{len(runs)}"
        placeholder = f"'{name}'" if kind == "list" else "('" + name + "'" + ", NULL" * (width - 1) + ")"
        parts.append(text[last:start])
        length += start - last
        runs.append(Run(start, end, placeholder, length, kind, width))
        parts.append(placeholder)
        length += len(placeholder)
        last = end
    parts.append(text[last:])
    return Shortened(text, "".join(parts), tuple(runs), tag)


def verify(short: Shortened, tokens: list[Token], offset: int = 0) -> Shortened | None:
    """`short` with each run's kind settled when every placeholder is a token where `shorten`
    put it, opened by `IN (`, `ARRAY [` or `VALUES`; None otherwise (use the whole text).

    `tokens` are those of `short.text[offset:]` (the statement after an EXPLAIN prefix).
    """
    at = {tok.start + offset: i for i, tok in enumerate(tokens) if tok.token_type == TokenType.STRING}
    runs: list[Run] = []
    for run in short.runs:
        first = run.at + (1 if run.kind == "values" else 0)
        i = at.get(first)
        if i is None or tokens[i].end + offset != first + len(run.placeholder.split("'")[1]) + 1 or i < 2:
            return None
        before, opener = tokens[i - 1].token_type, tokens[i - 2].token_type
        if run.kind == "values":
            if before != TokenType.L_PAREN or opener != TokenType.VALUES or tokens[i - 1].start + offset != run.at:
                return None
            tail = tokens[i + 1 : i + 2 * run.width]
            expected = [TokenType.COMMA, TokenType.NULL] * (run.width - 1) + [TokenType.R_PAREN]
            if [t.token_type for t in tail] != expected:
                return None
            runs.append(run)
            continue
        after = tokens[i + 1].token_type if i + 1 < len(tokens) else None
        if before == TokenType.L_PAREN and opener == TokenType.IN and after == TokenType.R_PAREN:
            runs.append(Run(run.start, run.end, run.placeholder, run.at, "in"))
        elif before == TokenType.L_BRACKET and opener == TokenType.ARRAY and after == TokenType.R_BRACKET:
            runs.append(Run(run.start, run.end, run.placeholder, run.at, "array"))
        else:
            return None
    return Shortened(short.original, short.text, tuple(runs), short.tag)
