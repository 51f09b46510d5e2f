"""What is decided from the tokens, before sqlglot's parser runs.

Tokenizing (one tokenizer per thread), peeling an EXPLAIN prefix off (sqlglot only sees EXPLAIN
as an opaque Command), refusing writes, DDL and opaque commands from their first token, and the
checks that need tokens, not a tree: nesting depth, `U&"..."` unicode-escaped identifiers
(sqlglot misreads them) and pgmcp's reserved `_pgmcp_` identifiers. Each function returns
values (violations, the peeled prefix, the refused leading words); `pgmcp.policy.parse`
records them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from itertools import accumulate, repeat
from operator import attrgetter

from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import SqlglotError, TokenError
from sqlglot.tokenizer_core import Token, TokenType

from pgmcp.policy.messages import Position, tokenize_violation
from pgmcp.policy.rules import PGM001, PGM002, PGM003, PGM004, PGM005, PGM006, violation
from pgmcp.policy.verdict import Violation

MAX_PAREN_DEPTH = 100  # PostgreSQL's own parser gives up far later; real queries stay far below
# sqlglot's parser backtracks exponentially on nested ARRAY[...] (18 levels: seconds).
MAX_BRACKET_DEPTH = 10  # keeps sqlglot's recursive generator and optimizer well inside the stack

RESERVED_PREFIX = "_pgmcp_"

DIALECT = Postgres()

# The first tokens of every statement a policy can allow. Only these (and the few leading
# words below that sqlglot itself misreads) go on to the parser; the root allow-list is
# applied again to the parsed tree.
QUERY_STARTS = frozenset({TokenType.SELECT, TokenType.WITH, TokenType.VALUES, TokenType.TABLE, TokenType.L_PAREN})
# Statements refused from their first token, unparsed (most of what is not a query). Other
# first tokens (SET, LISTEN, CHECKPOINT, unknown words...) are parsed and refused by the root
# allow-list, which keeps their refusal codes as sqlglot classifies them.
WRITE_STARTS = frozenset({
    TokenType.ALTER, TokenType.ANALYZE, TokenType.BEGIN, TokenType.COMMENT, TokenType.COMMIT,
    TokenType.COPY, TokenType.CREATE, TokenType.DELETE, TokenType.DROP, TokenType.END,
    TokenType.GRANT, TokenType.INSERT, TokenType.MERGE, TokenType.REVOKE, TokenType.ROLLBACK,
    TokenType.TRUNCATE, TokenType.UPDATE,
})  # fmt: skip
# Leading tokens sqlglot turns into an opaque `Command` (DO, CALL, VACUUM, EXECUTE, LOCK...),
# in the parser's own order: a statement parser for the token type would win over the fallback.
OPAQUE_STARTS = frozenset(Postgres.Tokenizer.COMMANDS - set(Postgres.Parser.STATEMENT_PARSERS))
# Words that may follow CREATE/ALTER/DROP/COMMENT before the object kind, for the message.
_KIND_MODIFIERS = frozenset({
    "OR", "REPLACE", "TEMP", "TEMPORARY", "UNLOGGED", "UNIQUE", "MATERIALIZED", "GLOBAL", "LOCAL",
    "RECURSIVE", "TRUSTED", "PROCEDURAL", "ON", "FOREIGN", "DEFAULT", "TEXT", "EVENT", "ACCESS", "CONSTRAINT",
})  # fmt: skip


_local = threading.local()


def tokenize(text: str) -> list[Token]:
    """Tokenize `text` with this thread's postgres tokenizer (raises TokenError/SqlglotError)."""
    # One tokenizer per thread: building one costs more than a short query.
    tokenizer = getattr(_local, "tokenizer", None)
    if tokenizer is None:
        tokenizer = _local.tokenizer = DIALECT.tokenizer_class(dialect=DIALECT)
    return list(tokenizer.tokenize(text))


@dataclass(frozen=True)
class Explain:
    """The EXPLAIN prefix peeled off a statement (kept verbatim for a rewritten statement).

    The inner statement starts at `len(prefix)`.
    """

    prefix: str
    analyze: bool
    options: tuple[str, ...]


@dataclass(frozen=True)
class Leading:
    """A statement refused from its first token(s), before parsing: what it is, for the message.

    `opaque` marks the statements sqlglot only knows as an uncheckable `Command`.
    """

    words: str
    opaque: bool


def is_explain(tokens: list[Token]) -> bool:
    """Whether the statement starts with EXPLAIN (a Command token to sqlglot)."""
    return bool(tokens) and tokens[0].token_type == TokenType.COMMAND and tokens[0].text.upper() == "EXPLAIN"


def peel_explain(sql: str, first: Token) -> Explain | Violation:
    """Split `EXPLAIN [ (options) | ANALYZE VERBOSE ]` off `sql`; the rest is the statement."""
    rest_at = first.end + 1
    try:
        tokens = tokenize(sql[rest_at:])
    except (TokenError, SqlglotError):
        return tokenize_violation(sql)
    options: list[str] = []
    analyze = False
    i = 0
    if tokens and tokens[0].token_type == TokenType.L_PAREN:
        words: list[list[str]] = [[]]
        i = 1
        while i < len(tokens) and tokens[i].token_type != TokenType.R_PAREN:
            tok = tokens[i]
            if tok.token_type == TokenType.COMMA:
                words.append([])
            elif tok.token_type in (TokenType.STRING, TokenType.L_PAREN, TokenType.SEMICOLON):
                return violation(PGM003, "unsupported EXPLAIN option list")
            else:
                words[-1].append(tok.text.lower())
            i += 1
        if i >= len(tokens):
            return violation(PGM001, "unterminated EXPLAIN option list")
        i += 1
        for word in words:
            if not word:
                continue
            options.append(" ".join(word))
            if word[0] in ("analyze", "analyse") and (len(word) == 1 or word[1] not in ("false", "off", "0")):
                analyze = True
    else:
        while i < len(tokens) and tokens[i].text.lower() in ("analyze", "analyse", "verbose"):
            options.append(tokens[i].text.lower())
            analyze = analyze or tokens[i].text.lower() != "verbose"
            i += 1
    if i >= len(tokens):
        return violation(PGM001, "EXPLAIN without a statement")
    body_at = rest_at + tokens[i].start
    # Comments before the inner statement belong to the prefix; keep the text verbatim.
    return Explain(sql[:body_at], analyze, tuple(options))


def leading_refusal(body: str, tokens: list[Token]) -> Leading | Violation | None:
    """A write, DDL or opaque command refused from its first token; None when it goes on to the parser.

    An allow-list with a shortcut: whatever is not refused here is parsed and judged in full.
    More than one statement is refused as such (PGM002).
    """
    first = tokens[0]
    opaque = first.token_type in OPAQUE_STARTS
    if not opaque and first.token_type not in WRITE_STARTS:
        return None
    count = _statement_count(body, tokens)
    if count > 1:
        return violation(PGM002, f"expected exactly one statement, got {count} statements; send one at a time")
    words = [first.text.upper()]
    if first.token_type in (TokenType.CREATE, TokenType.ALTER, TokenType.DROP, TokenType.COMMENT):
        for tok in tokens[1:5]:
            word = tok.text.upper()
            if tok.token_type == TokenType.IDENTIFIER or not word.isalpha() or len(word) > 20:
                break
            words.append(word)
            if word not in _KIND_MODIFIERS:
                break
    return Leading(" ".join(words), opaque)


def _statement_count(body: str, tokens: list[Token]) -> int:
    """Statements in `tokens` as sqlglot's parser splits them: at every `;`, empty ones dropped."""
    if ";" not in body:
        return 1 if tokens else 0
    count = 0
    pending = False
    for tok in tokens:
        if tok.token_type == TokenType.SEMICOLON:
            if pending:
                count += 1
            pending = False
        else:
            pending = True
    return count + 1 if pending else count


def check_tokens(body: str, tokens: list[Token], allow_reserved: bool, position: Position) -> list[Violation]:
    """Nesting depth (PGM006), unicode escapes (PGM004) and reserved names (PGM005) in `body`.

    The statement is refused when the list is not empty. `position` turns an offset in `body`
    into the (line, column) a violation reports.
    """
    # Each check below needs a character in the text: a token's text is part of it (a quoted
    # identifier's only loses quote doubling), so text without any needs no walk over tokens.
    deep = body.count("(") > MAX_PAREN_DEPTH or body.count("[") > MAX_BRACKET_DEPTH
    plain = "&" not in body and (allow_reserved or RESERVED_PREFIX not in body.lower())
    if plain and (not deep or _shallow(tokens)):
        return []
    found: list[Violation] = []
    depth = brackets = 0
    for i, tok in enumerate(tokens):
        kind = tok.token_type
        if kind == TokenType.L_PAREN:
            depth += 1
            if depth > MAX_PAREN_DEPTH:
                found.append(
                    violation(
                        PGM006,
                        f"parentheses nest more than {MAX_PAREN_DEPTH} levels deep; flatten the query",
                        *position(tok.start),
                    )
                )
                return found
        elif kind == TokenType.R_PAREN:
            depth -= 1
        elif kind == TokenType.L_BRACKET:
            brackets += 1
            if brackets > MAX_BRACKET_DEPTH:
                found.append(
                    violation(
                        PGM006,
                        f"brackets nest more than {MAX_BRACKET_DEPTH} levels deep; flatten the query",
                        *position(tok.start),
                    )
                )
                return found
        elif kind == TokenType.R_BRACKET:
            brackets -= 1
        elif kind == TokenType.AMP and i > 0:
            prev = tokens[i - 1]
            if (
                prev.text in ("U", "u")
                and prev.end + 1 == tok.start
                and i + 1 < len(tokens)
                and tokens[i + 1].start == tok.end + 1
            ):
                raw = body[tokens[i + 1].start : tokens[i + 1].end + 1]
                raw = raw[1:-1].replace('""', '"') if len(raw) > 1 and raw[0] == raw[-1] == '"' else raw
                decoded = decode_unicode_identifier(raw, _uescape(tokens, i + 2))
                if not allow_reserved and (decoded is None or decoded.lower().startswith(RESERVED_PREFIX)):
                    shown = decoded if decoded is not None else tokens[i + 1].text
                    found.append(
                        violation(
                            PGM005,
                            f"U&\"{shown}\" spells a name reserved for pgmcp (prefix {RESERVED_PREFIX}) or cannot "
                            "be decoded; rename it",
                            *position(prev.start),
                        )
                    )
                found.append(
                    violation(
                        PGM004,
                        'U&"..." identifiers with unicode escapes are refused; write the name plainly',
                        *position(prev.start),
                    )
                )
        elif (
            not allow_reserved
            and kind in (TokenType.VAR, TokenType.IDENTIFIER)
            and tok.text.lower().startswith(RESERVED_PREFIX)
        ):
            found.append(
                violation(
                    PGM005,
                    f"identifier {tok.text} is reserved for pgmcp (prefix {RESERVED_PREFIX}); rename it",
                    *position(tok.start),
                )
            )
    return found


def _shallow(tokens: list[Token]) -> bool:
    """Whether parentheses and brackets nest within the limits (measured without a loop in
    Python: a long statement has many tokens; the loop in `check_tokens` says where)."""
    return (
        _deepest(tokens, TokenType.L_PAREN, TokenType.R_PAREN) <= MAX_PAREN_DEPTH
        and _deepest(tokens, TokenType.L_BRACKET, TokenType.R_BRACKET) <= MAX_BRACKET_DEPTH
    )


def _deepest(tokens: list[Token], opening: TokenType, closing: TokenType) -> int:
    """The deepest nesting of `opening`/`closing` tokens (0 when none)."""
    step = {opening: 1, closing: -1}
    return max(accumulate(map(step.get, map(_TOKEN_TYPE, tokens), repeat(0))), default=0)


_TOKEN_TYPE = attrgetter("token_type")


def _uescape(tokens: list[Token], at: int) -> str:
    """The escape character of `U&"..." UESCAPE 'c'` (backslash when there is no UESCAPE)."""
    if at + 1 < len(tokens) and tokens[at].text.upper() == "UESCAPE" and len(tokens[at + 1].text) == 1:
        return tokens[at + 1].text
    return "\\"


def decode_unicode_identifier(text: str, escape: str = "\\") -> str | None:
    """The name a `U&"..."` identifier spells (scan.l, check_unicode_value): `\\XXXX`,
    `\\+XXXXXX` and a doubled escape character; None when the escapes are malformed."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != escape:
            out.append(ch)
            i += 1
            continue
        if text[i + 1 : i + 2] == escape:
            out.append(escape)
            i += 2
            continue
        width = 6 if text[i + 1 : i + 2] == "+" else 4
        start = i + 2 if width == 6 else i + 1
        digits = text[start : start + width]
        if len(digits) != width or any(c not in "0123456789abcdefABCDEF" for c in digits):
            return None
        try:
            out.append(chr(int(digits, 16)))
        except ValueError:
            return None
        i = start + width
    return "".join(out)
