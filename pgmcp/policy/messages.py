"""sqlglot's errors in PostgreSQL's words: what a refusal says when the SQL is broken.

sqlglot's own texts dump tokens (`Expected table name but got <Token token_type: ...>`) and
internals (`Required keyword: 'this' missing for <class ...Where>`). A refusal must read like
the error PostgreSQL would give for the same text, so a model or a person can act on it:

- syntax errors as the server's parser reports them (`scanner_yyerror` in
  src/backend/parser/scan.l): `syntax error at or near "WHERE"`, or `syntax error at end of
  input` when the statement stops where more was needed; unterminated quotes and comments as
  scan.l names them (`unterminated quoted string`, `unterminated /* comment`, ...);
- unknown columns as the analyzer reports them (`errorMissingColumn` in
  src/backend/parser/parse_relation.c): `column "salery" does not exist`.

Each function returns the message and where it points (line and column, which every output
shows next to the message, as psql shows `LINE 1:` under PostgreSQL's), never sqlglot's text.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlglot.errors import ParseError

from pgmcp.policy.rules import PGM001, Rule, violation
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


def _pointed(rule: Rule, message: str, offset: int | None, text: str, position: Position | None) -> Violation:
    """The violation pointing at `offset` of `text` (the message stays PostgreSQL's alone: every
    output shows the violation's line and column next to it)."""
    if offset is None:
        return violation(rule, message)
    line, column = position(offset) if position is not None else _line_col(text, offset)
    return violation(rule, message, line, column)


def syntax_violation(err: Exception, text: str, position: Position | None = None) -> Violation:
    """The PGM001 violation for a sqlglot parse error of `text`, worded as PostgreSQL's.

    `position` maps an offset in `text` to (line, column) of the whole statement (for an
    EXPLAIN, `text` is the statement after the peeled prefix); without it, `text`'s own.
    """
    message, offset = _syntax(err, text)
    return _pointed(PGM001, message, offset, text, position)


def syntax_message(err: Exception, text: str) -> str:
    """PostgreSQL's wording of a sqlglot parse error of `text`, with its line and column when
    known (for text that is not the checked statement: a row filter, a rewritten query)."""
    message, offset = _syntax(err, text)
    if offset is None:
        return message
    line, column = _line_col(text, offset)
    return f"{message} (line {line}, column {column})"


def _syntax(err: Exception, text: str) -> tuple[str, int | None]:
    """The message for a sqlglot parse error of `text` and the offset it points at."""
    details = err.errors[0] if isinstance(err, ParseError) and err.errors else None
    if not details or not details.get("line") or not details.get("col"):
        return "syntax error", None
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
    return f"syntax error {at}{reason}", start


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
            return _pointed(PGM001, f'unterminated {what} at or near "{shown}"', at, text, position)
    return violation(PGM001, "syntax error: the text cannot be split into SQL tokens")


def missing_column(name: str) -> str:
    """PostgreSQL's message for a column no FROM item has (`errorMissingColumn`)."""
    return f'column "{name}" does not exist'
