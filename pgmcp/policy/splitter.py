"""Split SQL text into statements exactly where PostgreSQL's psql would split it.

A `;` ends a statement only outside quotes, comments and parentheses, mirroring psql's lexer
(src/fe_utils/psqlscan.l, which shares its quoting rules with the server's scan.l):

- '...' with '' doubled (standard_conforming_strings=on: a backslash is an ordinary character);
  E'...' where a backslash escapes the next character; a string continues after a closing quote
  when only whitespace holding a newline separates it from the next quote, and that matters for
  E'' strings (the continuation is still an E'' body);
- dollar quotes $$...$$ and $tag$...$tag$, which open only at the start of a token (`x$a$` is an
  identifier, `$1` a parameter, `1$a$` a number followed by a dollar quote);
- "..." identifiers with "" doubled, U&'...' and U&"..." (bounded like their plain forms);
- -- comments to LF or CR, and nested /* */ comments;
- parentheses, and psql's heuristic for CREATE [OR REPLACE] FUNCTION|PROCEDURE bodies written
  as BEGIN ATOMIC ... END (BEGIN/CASE/END counted at parenthesis depth 0).

psql backslash meta-commands and :variables are not interpreted: a `.sql` file is judged as the
SQL text it holds, so a meta-command ends up inside a statement that the checker refuses.
Statements holding only whitespace and comments are dropped. An unterminated quote or comment
makes the rest of the text one statement, marked `unterminated`, which the caller must refuse.

Written as a small scanner rather than with sqlglot's tokenizer because the boundaries must be
PostgreSQL's, and checked against PostgreSQL's own scanner (pglast) in tests/test_splitter.py.
Runs of "uninteresting" tokens are consumed by one regex match so that splitting stays cheap
next to parsing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pgmcp.policy.possessive import compile_pattern

_SPACE = " \t\n\r\f\v"
# Character classes as alternations: a class spanning \x80-\U0010ffff takes sre ~40 ms to
# compile (it maps the whole range), `[^\x00-\x7f]` next to an ASCII class takes none.
_START = r"(?:[A-Za-z_]|[^\x00-\x7f])"
_CONT = r"(?:[A-Za-z_0-9$]|[^\x00-\x7f])"
_DELIM_CONT = r"(?:[A-Za-z_0-9]|[^\x00-\x7f])"
_IDENT = rf"{_START}{_CONT}*"
_DOLLAR_DELIM = re.compile(rf"\$(?:{_START}{_DELIM_CONT}*)?\$")
_NUMBER = r"(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][+-]?[0-9][0-9_]*)?"

# One match consumes everything that cannot end a statement or open a quote or comment:
# whitespace, identifiers and keywords (whole, so `$` and `e'` inside them are not quote starts),
# numbers with PostgreSQL's "trailing junk" (`1e'x'` is the junk token `1e` then a plain string),
# parameters ($1), a lone `$`, and operator characters that do not start a comment.
_BORING_TEXT = rf"""(?:
        [ \t\n\r\f\v]+
      | (?![eE]'){_IDENT}
      | {_NUMBER}(?:{_IDENT})?
      | \$[0-9]+(?:{_IDENT})?
      | \$(?!(?:{_START}{_DELIM_CONT}*)?\$)
      | -(?!-)
      | /(?!\*)
      | (?=[\x00-\x7f])[^'"$;()\-/A-Za-z_0-9 \t\n\r\f\v]
    )*+"""
_BORING = compile_pattern(_BORING_TEXT, re.VERBOSE)
_WHITESPACE_ONLY = re.compile(r"[ \t\n\r\f\v]*")
_IDENT_ONLY = re.compile(_IDENT)
# Possessive: a body that never closes must not match a doubled quote as its end (`'it''s`
# is one unterminated string, and where it opens is what an error points at).
_STANDARD_BODY = compile_pattern(r"[^']*+(?:''[^']*+)*+'")
_ESCAPE_BODY = compile_pattern(r"[^'\\]*+(?:(?:\\.|'')[^'\\]*+)*+'", re.DOTALL)
# Possessive quantifiers throughout: a failed match must not backtrack over runs of comments.
# Whitespace that lets a string continue after its closing quote (scan.l's {quotecontinue}).
_QUOTE_CONTINUE = compile_pattern(r"(?:[ \t\f\v]|--[^\n\r]*+)*+[\n\r](?:[ \t\n\r\f\v]++|--[^\n\r]*+[\n\r])*+'")
_IDENT_BODY = compile_pattern(r'[^"]*+(?:""[^"]*+)*+"')
_LINE_COMMENT = re.compile(r"--[^\n\r]*")
_COMMENT_TOKEN = re.compile(r"/\*|\*/")
# psql tracks BEGIN ... END only in statements whose first identifiers are CREATE [OR REPLACE]
# FUNCTION|PROCEDURE; blanks and (non-nested) comments may sit between them.
_GAP = r"(?:[ \t\n\r\f\v]|--[^\n\r]*+|/\*(?:[^*]|\*(?!/))*+\*/)*+"
_ROUTINE_HEAD = compile_pattern(
    rf"{_GAP}create(?!{_CONT}){_GAP}(?:or(?!{_CONT}){_GAP}replace(?!{_CONT}){_GAP})?"
    rf"(?:function|procedure)(?!{_CONT})",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Statement:
    """One statement: its text (from its first non-blank character, comments included, to
    before its `;`, trailing whitespace removed), where it starts in the whole text (0-based
    character offset, 1-based line and column) and its 1-based index among the statements.
    `unterminated` names the quote or comment left open at the end of the text, if any, and
    `unterminated_at` is where it opens (0-based offset in the whole text)."""

    text: str
    start: int
    line: int
    column: int
    index: int
    unterminated: str | None = None
    unterminated_at: int | None = None

    def position(self, line: int | None, column: int | None) -> tuple[int, int]:
        """Map a 1-based (line, column) inside `text` to one in the whole text; None means
        the start of the statement."""
        if line is None or line < 1:
            return self.line, self.column
        col = column if column is not None and column >= 1 else 1
        if line == 1:
            return self.line, self.column + col - 1
        return self.line + line - 1, col


def split_statements(text: str) -> list[Statement]:
    """Split `text` into its non-empty statements, as psql would send them to the server."""
    out: list[Statement] = []
    n = len(text)
    pos = 0
    line, line_start, counted_to = 1, 0, 0
    while pos < n:
        begin = _end(_WHITESPACE_ONLY, text, pos)
        if begin >= n:
            break
        end, next_pos, has_token, unterminated, opened = _scan_statement(text, begin)
        if has_token or unterminated:
            line += text.count("\n", counted_to, begin)
            counted_to = begin
            nl = text.rfind("\n", line_start, begin)
            if nl >= 0:
                line_start = nl + 1
            body = text[begin:end].rstrip(_SPACE)
            out.append(Statement(body, begin, line, begin - line_start + 1, len(out) + 1, unterminated, opened))
        pos = next_pos
    return out


def _scan_statement(text: str, pos: int) -> tuple[int, int, bool, str | None, int | None]:
    """Scan one statement from `pos`; return (end of its text, where the next one starts,
    whether it holds anything but comments, what is left unterminated and where it opens)."""
    n = len(text)
    track_begin = _is_routine_head(text, pos)
    boring = _BORING if not track_begin else _BORING_NO_IDENT
    depth = begin_depth = 0
    has_token = False
    while True:
        run_end = _end(boring, text, pos)
        if run_end > pos:
            if not has_token and _end(_WHITESPACE_ONLY, text, pos) < run_end:
                has_token = True
            pos = run_end
        if pos >= n:
            return n, n, has_token, None, None
        c = text[pos]
        opened = pos
        if c == ";":
            if depth == 0 and begin_depth == 0:
                return pos, pos + 1, has_token, None, None
            has_token = True
            pos += 1
            continue
        if c == "-":  # `--` (a lone `-` is consumed above)
            pos = _end(_LINE_COMMENT, text, pos)
            continue
        if c == "/":  # `/*`
            pos = _skip_block_comment(text, pos)
            if pos < 0:
                return n, n, has_token, "comment", opened
            continue
        has_token = True
        if c == "(":
            depth += 1
            pos += 1
        elif c == ")":
            depth = max(depth - 1, 0)
            pos += 1
        elif c == "'":
            pos = _skip_string(text, pos + 1, _STANDARD_BODY)
        elif c in "eE" and pos + 1 < n and text[pos + 1] == "'":
            pos = _skip_string(text, pos + 2, _ESCAPE_BODY)
        elif c == '"':
            found = _IDENT_BODY.match(text, pos + 1)
            if found is None:
                return n, n, True, "quoted identifier", opened
            pos = found.end()
        elif c == "$":
            delim = _DOLLAR_DELIM.match(text, pos)
            assert delim is not None  # a `$` that opens no quote is consumed as boring
            close = text.find(delim.group(), delim.end())
            if close < 0:
                return n, n, True, "dollar-quoted string", opened
            pos = close + len(delim.group())
        else:  # identifier while tracking BEGIN ... END (routine bodies only)
            word = _IDENT_ONLY.match(text, pos)
            assert word is not None
            pos = word.end()
            if depth == 0:
                begin_depth = _count_block(word.group().lower(), begin_depth)
            continue
        if pos < 0:
            return n, n, True, "quoted string", opened


_BORING_NO_IDENT = compile_pattern(
    _BORING_TEXT.replace(rf"| (?![eE]'){_IDENT}", rf"| (?={_START})(?!)"),
    re.VERBOSE,
)


def _end(pattern: re.Pattern[str], text: str, pos: int) -> int:
    """Where a match of `pattern` (one that always matches, maybe empty) at `pos` ends."""
    m = pattern.match(text, pos)
    assert m is not None
    return m.end()


def _count_block(word: str, begin_depth: int) -> int:
    # psql's heuristic: BEGIN opens a block, CASE too once inside one, END closes one.
    if word == "begin":
        return begin_depth + 1
    if word == "case" and begin_depth >= 1:
        return begin_depth + 1
    if word == "end" and begin_depth > 0:
        return begin_depth - 1
    return begin_depth


def _is_routine_head(text: str, pos: int) -> bool:
    if text[pos] not in "cC-/":
        return False
    return _ROUTINE_HEAD.match(text, pos) is not None


def _skip_string(text: str, pos: int, body: re.Pattern[str]) -> int:
    """Skip a string body starting after its opening quote, following continuations; return
    the position after it, or -1 when it never closes."""
    while True:
        m = body.match(text, pos)
        if m is None:
            return -1
        cont = _QUOTE_CONTINUE.match(text, m.end())
        if cont is None:
            return m.end()
        pos = cont.end()


def _skip_block_comment(text: str, pos: int) -> int:
    """Skip a (nested) /* */ comment starting at `pos`; -1 when it never closes."""
    depth = 1
    pos += 2
    while True:
        m = _COMMENT_TOKEN.search(text, pos)
        if m is None:
            return -1
        depth += 1 if m.group() == "/*" else -1
        pos = m.end()
        if depth == 0:
            return pos
