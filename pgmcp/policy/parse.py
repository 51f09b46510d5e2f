"""From SQL text to one checked sqlglot tree, or the structural violations that stop it.

This stage fails closed: a tokenizer or parser error, more than one statement, an opaque
`Command`, a unicode-escaped identifier (sqlglot misreads `U&"..."`), a reserved `_pgmcp_`
identifier or a tree too deep to walk safely all end here with a violation. EXPLAIN is
peeled off textually (sqlglot only sees it as an opaque Command) and the inner statement is
parsed and judged like any other.
"""

from __future__ import annotations

import logging
import threading
from contextvars import ContextVar
from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import ParseError, SqlglotError, TokenError
from sqlglot.tokenizer_core import Token, TokenType

from pgmcp.policy.rules import violation
from pgmcp.policy.verdict import Violation

MAX_PAREN_DEPTH = 100  # PostgreSQL's own parser gives up far later; real queries stay far below
MAX_TREE_DEPTH = 400
# sqlglot's parser backtracks exponentially on nested ARRAY[...] (18 levels: seconds).
MAX_BRACKET_DEPTH = 10  # keeps sqlglot's recursive generator and optimizer well inside the stack

_DIALECT = Postgres()

# Statement nodes that must not appear anywhere in a read query.
WRITE_NODES: tuple[type[exp.Expr], ...] = (
    exp.DML,
    exp.DDL,
    exp.Drop,
    exp.Alter,
    exp.Command,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
    exp.Set,
    exp.Grant,
    exp.Revoke,
    exp.TruncateTable,
    exp.Comment,
    exp.Analyze,
    exp.Use,
    exp.Refresh,
    exp.Cache,
    exp.Uncache,
    exp.LoadData,
    exp.Describe,
    exp.Pragma,
    exp.Kill,
    exp.Show,
    exp.Execute,
    exp.Declare,
    exp.Install,
    exp.Attach,
    exp.Detach,
    exp.Export,
)
FLAGGED_NODES: tuple[type[exp.Expr], ...] = (exp.Into, exp.Lock, exp.With, *WRITE_NODES)

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


def _tokenize(text: str) -> list[Token]:
    # One tokenizer and one parser per thread: building them costs more than a short query.
    tokenizer = getattr(_local, "tokenizer", None)
    if tokenizer is None:
        tokenizer = _local.tokenizer = _DIALECT.tokenizer_class(dialect=_DIALECT)
    return list(tokenizer.tokenize(text))


def _parse(tokens: list[Token], text: str) -> list[exp.Expr | None]:
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = _DIALECT.parser()
    return list(parser.parse(tokens, text))


def parse_text(text: str) -> list[exp.Expr | None]:
    """Tokenize and parse `text` with this thread's postgres tokenizer and parser (raises SqlglotError)."""
    return _parse(_tokenize(text), text)


RESERVED_PREFIX = "_pgmcp_"

_captured: ContextVar[list[str] | None] = ContextVar("pgmcp_sqlglot_log", default=None)


class _SqlglotLogCapture(logging.Filter):
    """While a statement is being checked, sqlglot's WARNINGs go into its verdict's trace, not stderr.

    A filter on the logger (not a handler): logging setup may replace the logger's handlers,
    but filters stay, and a record they reject reaches no handler at all.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        sink = _captured.get()
        if sink is None:
            return True
        sink.append(record.getMessage())
        return False


logging.getLogger("sqlglot").addFilter(_SqlglotLogCapture())


@dataclass(frozen=True)
class Explain:
    """The EXPLAIN prefix peeled off a statement (kept verbatim for a rewritten statement)."""

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


@dataclass
class Parsed:
    """One statement after parsing. `tree` is None when `violations` stopped it.

    `body` is the text that was parsed (the inner statement for EXPLAIN) and `offset` where
    it starts in `sql`; positions in the tree are relative to `body`.
    """

    sql: str
    body: str
    offset: int = 0
    explain: Explain | None = None
    tree: exp.Expr | None = None
    leading: Leading | None = None  # set (and `tree` None) when refused before parsing
    violations: list[Violation] = field(default_factory=list)
    flagged: list[exp.Expr] = field(default_factory=list)  # write/INTO/lock nodes, in tree order
    log: list[str] = field(default_factory=list)

    def position(self, start: int | None) -> tuple[int | None, int | None]:
        """1-based (line, column) in `sql` of offset `start` in `body`."""
        if start is None:
            return None, None
        absolute = self.offset + start
        before = self.sql[:absolute]
        line = before.count("\n") + 1
        return line, absolute - (before.rfind("\n") + 1) + 1

    def node_position(self, node: exp.Expr) -> tuple[int | None, int | None]:
        """Where `node` (or its first descendant that knows) starts in `sql`."""
        for sub in node.walk():
            meta = sub.meta if sub._meta else None
            if meta and "start" in meta:
                return self.position(int(meta["start"]))
        return None, None


def parse_statement(sql: str, *, allow_reserved: bool = False) -> Parsed:
    """Parse `sql` as exactly one statement, peeling EXPLAIN; never raises on bad input."""
    parsed = Parsed(sql=sql, body=sql)
    sink: list[str] = []
    token = _captured.set(sink)
    try:
        _parse_into(parsed, allow_reserved)
    except RecursionError:
        parsed.tree = None
        parsed.violations.append(
            violation("PGM006", "the statement is nested too deeply to be checked; flatten the query")
        )
    finally:
        _captured.reset(token)
        parsed.log = sink
    return parsed


def _parse_into(parsed: Parsed, allow_reserved: bool) -> None:
    try:
        tokens = _tokenize(parsed.sql)
    except (TokenError, SqlglotError) as err:
        parsed.violations.append(violation("PGM001", f"the SQL could not be tokenized: {_short(err)}"))
        return
    if tokens and tokens[0].token_type == TokenType.COMMAND and tokens[0].text.upper() == "EXPLAIN":
        if not _peel_explain(parsed, tokens[0]):
            return
        try:
            tokens = _tokenize(parsed.body)
        except (TokenError, SqlglotError) as err:
            parsed.violations.append(violation("PGM001", f"the SQL could not be tokenized: {_short(err)}"))
            return
    if not _check_tokens(parsed, tokens, allow_reserved):
        return
    if tokens and tokens[0].token_type not in QUERY_STARTS and not _leading(parsed, tokens):
        return
    try:
        trees = _parse(tokens, parsed.body)
    except (ParseError, TokenError, SqlglotError) as err:
        parsed.violations.append(violation("PGM001", f"the SQL could not be parsed: {_short(err)}"))
        return
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as err:
        # sqlglot's own bugs on odd input (seen: a TypeError in a JSONB operator builder).
        parsed.violations.append(violation("PGM001", f"the SQL could not be parsed ({type(err).__name__})"))
        return
    # A comment after the last ';' yields an extra Semicolon node: it is not a statement.
    statements = [t for t in trees if t is not None and not isinstance(t, exp.Semicolon)]
    if len(statements) != 1:
        what = "no statement" if not statements else f"{len(statements)} statements"
        parsed.violations.append(
            violation(
                "PGM002" if statements else "PGM001",
                f"expected exactly one statement, got {what}; send one at a time",
            )
        )
        return
    tree = statements[0]
    # A node takes at least one token, give or take a few wrappers: short input is never deep.
    if len(tokens) * 4 > MAX_TREE_DEPTH and _tree_depth(tree) > MAX_TREE_DEPTH:
        parsed.violations.append(
            violation("PGM006", f"the statement is nested more than {MAX_TREE_DEPTH} levels deep; flatten the query")
        )
        return
    parsed.tree = tree
    parsed.flagged = list(tree.find_all(*FLAGGED_NODES))


def _leading(parsed: Parsed, tokens: list[Token]) -> bool:
    """Refuse a write, DDL or opaque command from its first token; False when refused.

    An allow-list with a shortcut: whatever is not refused here is parsed and judged in full.
    """
    first = tokens[0]
    opaque = first.token_type in OPAQUE_STARTS
    if not opaque and first.token_type not in WRITE_STARTS:
        return True
    count = _statement_count(parsed.body, tokens)
    if count > 1:
        parsed.violations.append(
            violation("PGM002", f"expected exactly one statement, got {count} statements; send one at a time")
        )
        return False
    words = [first.text.upper()]
    if first.token_type in (TokenType.CREATE, TokenType.ALTER, TokenType.DROP, TokenType.COMMENT):
        for tok in tokens[1:5]:
            word = tok.text.upper()
            if tok.token_type == TokenType.IDENTIFIER or not word.isalpha() or len(word) > 20:
                break
            words.append(word)
            if word not in _KIND_MODIFIERS:
                break
    parsed.leading = Leading(" ".join(words), opaque)
    return False


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


def _peel_explain(parsed: Parsed, first: Token) -> bool:
    """Split `EXPLAIN [ (options) | ANALYZE VERBOSE ]` off; the rest becomes the body."""
    rest_at = first.end + 1
    try:
        tokens = _tokenize(parsed.sql[rest_at:])
    except (TokenError, SqlglotError) as err:
        parsed.violations.append(violation("PGM001", f"the SQL could not be tokenized: {_short(err)}"))
        return False
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
                parsed.violations.append(violation("PGM003", "unsupported EXPLAIN option list"))
                return False
            else:
                words[-1].append(tok.text.lower())
            i += 1
        if i >= len(tokens):
            parsed.violations.append(violation("PGM001", "unterminated EXPLAIN option list"))
            return False
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
        parsed.violations.append(violation("PGM001", "EXPLAIN without a statement"))
        return False
    body_at = rest_at + tokens[i].start
    # Comments before the inner statement belong to the prefix; keep the text verbatim.
    parsed.explain = Explain(parsed.sql[:body_at], analyze, tuple(options))
    parsed.offset = body_at
    parsed.body = parsed.sql[body_at:]
    return True


def _check_tokens(parsed: Parsed, tokens: list[Token], allow_reserved: bool) -> bool:
    # Each check below needs a character in the text: a token's text is part of it (a quoted
    # identifier's only loses quote doubling), so text without any needs no walk over tokens.
    body = parsed.body
    if (
        body.count("(") <= MAX_PAREN_DEPTH
        and body.count("[") <= MAX_BRACKET_DEPTH
        and "&" not in body
        and (allow_reserved or RESERVED_PREFIX not in body.lower())
    ):
        return True
    ok = True
    depth = brackets = 0
    for i, tok in enumerate(tokens):
        kind = tok.token_type
        if kind == TokenType.L_PAREN:
            depth += 1
            if depth > MAX_PAREN_DEPTH:
                parsed.violations.append(
                    violation(
                        "PGM006",
                        f"parentheses nest more than {MAX_PAREN_DEPTH} levels deep; flatten the query",
                        *_at(parsed, tok),
                    )
                )
                return False
        elif kind == TokenType.R_PAREN:
            depth -= 1
        elif kind == TokenType.L_BRACKET:
            brackets += 1
            if brackets > MAX_BRACKET_DEPTH:
                parsed.violations.append(
                    violation(
                        "PGM006",
                        f"brackets nest more than {MAX_BRACKET_DEPTH} levels deep; flatten the query",
                        *_at(parsed, tok),
                    )
                )
                return False
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
                parsed.violations.append(
                    violation(
                        "PGM004",
                        'U&"..." identifiers with unicode escapes are refused; write the name plainly',
                        *_at(parsed, prev),
                    )
                )
                ok = False
        elif (
            not allow_reserved
            and kind in (TokenType.VAR, TokenType.IDENTIFIER)
            and tok.text.lower().startswith(RESERVED_PREFIX)
        ):
            parsed.violations.append(
                violation(
                    "PGM005",
                    f"identifier {tok.text} is reserved for pgmcp (prefix {RESERVED_PREFIX}); rename it",
                    *_at(parsed, tok),
                )
            )
            ok = False
    return ok


def _at(parsed: Parsed, tok: Token) -> tuple[int | None, int | None]:
    return parsed.position(tok.start)


def _tree_depth(tree: exp.Expr) -> int:
    """The depth of `tree` (iterative), stopping as soon as it passes MAX_TREE_DEPTH."""
    deepest = 0
    stack: list[tuple[exp.Expr, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if deepest > MAX_TREE_DEPTH:
                return deepest
        stack.extend((child, depth + 1) for child in node.iter_expressions())
    return deepest


def _short(err: Exception) -> str:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text[:300]
