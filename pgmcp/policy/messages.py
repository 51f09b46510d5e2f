"""sqlglot's errors in PostgreSQL's words: what a refusal says when the SQL is broken.

sqlglot's own texts dump tokens (`Expected table name but got <Token token_type: ...>`) and
internals (`Required keyword: 'this' missing for <class ...Where>`, `Column 'x' could not be
resolved. Line: 1, Col: 13:`). A refusal must read like the error PostgreSQL would give for
the same text, so a model or a person can act on it:

- syntax errors as the server's parser reports them (`scanner_yyerror` in
  src/backend/parser/scan.l): `syntax error at or near "WHERE"`, or `syntax error at end of
  input` when the statement stops where more was needed; unterminated quotes and comments as
  scan.l names them (`unterminated quoted string`, `unterminated /* comment`, ...);
- unresolved names as the analyzer reports them (`errorMissingColumn` and
  `errorMissingRTE` in src/backend/parser/parse_relation.c): `column "salery" does not exist`,
  `column reference "id" is ambiguous`, `missing FROM-clause entry for table "x"`.

Each function returns the message and where it points (line and column, which every output
shows next to the message, as psql shows `LINE 1:` under PostgreSQL's), never sqlglot's text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from sqlglot.errors import ParseError

from pgmcp.policy.rules import violation
from pgmcp.policy.splitter import split_statements
from pgmcp.policy.verdict import Violation

# (line, column) in the statement of an offset in the text being checked (Parsed.position).
Position = Callable[[int | None], tuple[int | None, int | None]]

# What sqlglot said was expected, in words worth passing on: sqlglot's description -> `what`.
_EXPECTED: tuple[re.Pattern[str], ...] = (
    re.compile(r"^Expected (?P<what>[a-z][\w ]*?) but got <Token"),  # "table name"
    re.compile(r"^Expecting (?P<what>\S+)$"),  # ")"
    re.compile(r"^Expected (?P<what>[A-Z]+ after [A-Z]+)$"),  # "END after CASE"
)
# Descriptions saying that something was missing after the token sqlglot points at: when that
# token ends the statement, PostgreSQL says "at end of input". ("Expected X but got <Token>"
# points at the offending token itself.)
_MISSING = re.compile(r"^(?:Expecting |Required keyword|Expected [A-Z]+ after )")
SNIPPET = 40  # characters of a token or unterminated literal quoted back


def _line_col(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def _offset(text: str, line: int, column: int) -> int:
    """The 0-based offset of 1-based (line, column) in `text`."""
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    return min(starts[min(max(line, 1), len(starts)) - 1] + max(column, 1) - 1, len(text))


def _pointed(code: str, message: str, offset: int | None, text: str, position: Position | None) -> Violation:
    """The violation pointing at `offset` of `text` (the message stays PostgreSQL's alone: every
    output shows the violation's line and column next to it)."""
    if offset is None:
        return violation(code, message)
    line, column = position(offset) if position is not None else _line_col(text, offset)
    return violation(code, message, line, column)


def syntax_violation(err: Exception, text: str, position: Position | None = None) -> Violation:
    """The PGM001 violation for a sqlglot parse error of `text`, worded as PostgreSQL's.

    `position` maps an offset in `text` to (line, column) of the whole statement (for an
    EXPLAIN, `text` is the statement after the peeled prefix); without it, `text`'s own.
    """
    details = err.errors[0] if isinstance(err, ParseError) and err.errors else None
    if not details or not details.get("line") or not details.get("col"):
        return violation("PGM001", "syntax error")
    highlight = str(details.get("highlight") or "")
    end = _offset(text, int(details["line"]), int(details["col"]))  # sqlglot points at the token's end
    start = max(end - len(highlight) + 1, 0) if highlight else end
    description = str(details.get("description") or "")
    if _MISSING.match(description) and not text[start + len(highlight):].strip(" \t\r\n;"):
        at, start = "at end of input", len(text.rstrip(" \t\r\n;"))
    else:
        shown = highlight[:SNIPPET] + ("..." if len(highlight) > SNIPPET else "")
        at = f'at or near "{shown}"' if highlight else "at end of input"
    reason = ""
    for pattern in _EXPECTED:
        found = pattern.match(description)
        if found:
            reason = f" (expected {found['what']})"
            break
    return _pointed("PGM001", f"syntax error {at}{reason}", start, text, position)


def tokenize_violation(text: str, position: Position | None = None) -> Violation:
    """The PGM001 violation for `text` that sqlglot could not split into tokens.

    PostgreSQL's scanner names what was left open (`unterminated quoted string at or near
    "'abc"`); the psql-exact splitter finds it and where it opens.
    """
    for statement in split_statements(text):
        if statement.unterminated is not None and statement.unterminated_at is not None:
            at = statement.unterminated_at
            shown = text[at:at + SNIPPET] + ("..." if len(text) - at > SNIPPET else "")
            what = "/* comment" if statement.unterminated == "comment" else statement.unterminated
            return _pointed("PGM001", f'unterminated {what} at or near "{shown}"', at, text, position)
    return violation("PGM001", "syntax error: the text cannot be split into SQL tokens")


@dataclass(frozen=True)
class UnresolvedName:
    """A name the schema could not resolve, as PostgreSQL's analyzer would report it.

    `column` and `table` are the names as written (when sqlglot said them); `line` and
    `column_pos` are 1-based positions of the name in the parsed text, when known.
    """

    message: str
    column: str | None = None
    table: str | None = None
    line: int | None = None
    column_pos: int | None = None


_RESOLUTION: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"^Column '(?P<column>[^']*)' could not be resolved for table: '(?P<table>[^']*)'"),
     'column {table}.{column} does not exist'),
    (re.compile(r"^Column '(?P<column>[^']*)' could not be resolved"), 'column "{column}" does not exist'),
    (re.compile(r"^Ambiguous column '(?P<column>[^']*)'"), 'column reference "{column}" is ambiguous'),
    (re.compile(r"^Unknown table: '?(?P<table>[^'\s]*)'?"), 'missing FROM-clause entry for table "{table}"'),
    (re.compile(r"^Unknown (?:output )?column: '?(?P<column>[^'\s]*)'?"), 'column "{column}" does not exist'),
)
_LINE_COL = re.compile(r"Line: (?P<line>\d+), Col: (?P<col>\d+)")


def unresolved_name(err: Exception) -> UnresolvedName:
    """PostgreSQL's wording of a sqlglot name-resolution error (`qualify` with a schema)."""
    text = str(err)
    first = text.splitlines()[0] if text else ""
    where = _LINE_COL.search(first)
    line = int(where["line"]) if where else None
    for pattern, wording in _RESOLUTION:
        found = pattern.match(first)
        if found:
            names = found.groupdict()
            column, table = names.get("column"), names.get("table")
            # sqlglot points at the name's last character; PostgreSQL at its first.
            col = int(where["col"]) - len(column) + 1 if where and column else None
            return UnresolvedName(wording.format(**names), column, table, line, col)
    plain = _LINE_COL.sub("", first).rstrip(" .:(") or type(err).__name__
    return UnresolvedName(plain.replace("<", "").replace(">", ""), line=line)
