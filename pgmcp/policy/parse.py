"""From SQL text to one checked sqlglot tree, or the structural violations that stop it.

This stage fails closed: a tokenizer or parser error, more than one statement, an opaque
`Command`, a unicode-escaped identifier (sqlglot misreads `U&"..."`), a reserved `_pgmcp_`
identifier or a tree too deep to walk safely all end here with a violation. EXPLAIN is
peeled off textually (sqlglot only sees it as an opaque Command) and the inner statement is
parsed and judged like any other. The checks made on tokens before parsing are in
`pgmcp.policy.tokens`; this module runs them, parses, and records where things are.
"""

from __future__ import annotations

import logging
import threading
from contextvars import ContextVar
from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError, TokenError
from sqlglot.tokenizer_core import Token

from pgmcp.policy.longlists import Shortened, shorten, verify
from pgmcp.policy.messages import syntax_violation, tokenize_violation
from pgmcp.policy.nodes import MAX_TREE_DEPTH, Nodes, index
from pgmcp.policy.rules import PGM001, PGM002, PGM006, violation
from pgmcp.policy.tokens import (
    DIALECT,
    QUERY_STARTS,
    Explain,
    Leading,
    check_tokens,
    is_explain,
    leading_refusal,
    peel_explain,
    tokenize,
)
from pgmcp.policy.verdict import Violation

_local = threading.local()


def _parse(tokens: list[Token], text: str) -> list[exp.Expr | None]:
    # One parser per thread: building one costs more than a short query.
    parser = getattr(_local, "parser", None)
    if parser is None:
        parser = _local.parser = DIALECT.parser()
    return list(parser.parse(tokens, text))


def parse_text(text: str) -> list[exp.Expr | None]:
    """Tokenize and parse `text` with this thread's postgres tokenizer and parser (raises SqlglotError)."""
    return _parse(tokenize(text), text)


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


@dataclass
class Parsed:
    """One statement after parsing. `tree` is None when `violations` stopped it.

    `body` is the text that was parsed (the inner statement for EXPLAIN) and `offset` where
    it starts in `sql`; positions in the tree are relative to `body`. When long literal lists
    were replaced by placeholders (`short`, `pgmcp.policy.longlists`), `body` is cut from the
    short text; `position` maps back to `sql` and `restore` puts the lists back.
    """

    sql: str
    body: str
    offset: int = 0
    short: Shortened | None = None
    explain: Explain | None = None
    tree: exp.Expr | None = None
    leading: Leading | None = None  # set (and `tree` None) when refused before parsing
    violations: list[Violation] = field(default_factory=list)
    nodes: Nodes = field(default_factory=Nodes)  # the tree's nodes the stages read (`pgmcp.policy.nodes`)
    log: list[str] = field(default_factory=list)

    @property
    def flagged(self) -> list[exp.Expr]:
        """Write, INTO, lock and WITH nodes, in tree order."""
        return self.nodes.flagged

    def position(self, start: int | None) -> tuple[int | None, int | None]:
        """1-based (line, column) in `sql` of offset `start` in `body`."""
        if start is None:
            return None, None
        absolute = self.offset + start
        if self.short is not None:
            absolute = self.short.original_offset(absolute)
        before = self.sql[:absolute]
        line = before.count("\n") + 1
        return line, absolute - (before.rfind("\n") + 1) + 1

    def restore(self, generated: str) -> str | None:
        """SQL generated from this statement's (rewritten) tree, with the long lists put back;
        None when that cannot be done exactly (`Shortened.restore`)."""
        return generated if self.short is None else self.short.restore(generated)

    def node_position(self, node: exp.Expr) -> tuple[int | None, int | None]:
        """Where `node` (or its first descendant that knows) starts in `sql`."""
        for sub in node.walk():
            meta = sub.meta if sub._meta else None
            if meta and "start" in meta:
                return self.position(int(meta["start"]))
        return None, None


def parse_statement(sql: str, *, allow_reserved: bool = False, long_lists: bool = True) -> Parsed:
    """Parse `sql` as exactly one statement, peeling EXPLAIN; never raises on bad input.

    With `long_lists`, long lists of plain literals are parsed as one placeholder each
    (`pgmcp.policy.longlists`); a statement refused that way as unreadable (PGM001) is parsed
    again whole, so that what the refusal quotes is the text as written (positions are mapped
    back either way).
    """
    short = shorten(sql) if long_lists else None
    if short is not None:
        parsed = _parse_statement(sql, allow_reserved, short)
        if parsed.short is not None and not any(v.rule == PGM001.code for v in parsed.violations):
            return parsed  # proven, and not refused as unreadable
    return _parse_statement(sql, allow_reserved, None)


def _parse_statement(sql: str, allow_reserved: bool, short: Shortened | None) -> Parsed:
    parsed = Parsed(sql=sql, body=sql)
    sink: list[str] = []
    token = _captured.set(sink)
    try:
        _parse_into(parsed, allow_reserved, short)
    except RecursionError:
        parsed.tree = None
        parsed.violations.append(
            violation(PGM006, "the statement is nested too deeply to be checked; flatten the query")
        )
    finally:
        _captured.reset(token)
        parsed.log = sink
    return parsed


def _parse_into(parsed: Parsed, allow_reserved: bool, short: Shortened | None) -> None:
    """Parse `parsed.sql`, or the text `short` made of it: then `parsed.short` is set only
    when the placeholders are proven sound (`longlists.verify`), and the caller parses the
    whole text instead when it is not set or anything was refused."""
    text = parsed.body = parsed.sql if short is None else short.text
    try:
        tokens = tokenize(text)
    except (TokenError, SqlglotError):
        parsed.violations.append(tokenize_violation(text, parsed.position))
        return
    if is_explain(tokens):
        peeled = peel_explain(text, tokens[0])
        if isinstance(peeled, Violation):
            parsed.violations.append(peeled)
            return
        parsed.explain = peeled
        parsed.offset = len(peeled.prefix)
        parsed.body = text[parsed.offset :]
        try:
            tokens = tokenize(parsed.body)
        except (TokenError, SqlglotError):
            parsed.violations.append(tokenize_violation(parsed.sql))
            return
    if short is not None:
        parsed.short = verify(short, tokens, parsed.offset)
        if parsed.short is None:
            return
    found = check_tokens(parsed.body, tokens, allow_reserved, parsed.position)
    if found:
        parsed.violations.extend(found)
        return
    if tokens and tokens[0].token_type not in QUERY_STARTS:
        refused = leading_refusal(parsed.body, tokens)
        if isinstance(refused, Violation):
            parsed.violations.append(refused)
            return
        if refused is not None:
            parsed.leading = refused
            return
    try:
        trees = _parse(tokens, parsed.body)
    except (ParseError, TokenError, SqlglotError) as err:
        parsed.violations.append(syntax_violation(err, parsed.body, parsed.position))
        return
    except (TypeError, ValueError, AttributeError, KeyError, IndexError) as err:
        # sqlglot's own bugs on odd input (seen: a TypeError in a JSONB operator builder).
        parsed.violations.append(violation(PGM001, f"the SQL could not be parsed ({type(err).__name__})"))
        return
    # A comment after the last ';' yields an extra Semicolon node: it is not a statement.
    statements = [t for t in trees if t is not None and not isinstance(t, exp.Semicolon)]
    if len(statements) != 1:
        what = "no statement" if not statements else f"{len(statements)} statements"
        parsed.violations.append(
            violation(
                PGM002 if statements else PGM001,
                f"expected exactly one statement, got {what}; send one at a time",
            )
        )
        return
    tree = statements[0]
    nodes = index(tree)
    if nodes.depth > MAX_TREE_DEPTH:
        parsed.violations.append(
            violation(PGM006, f"the statement is nested more than {MAX_TREE_DEPTH} levels deep; flatten the query")
        )
        return
    parsed.tree = tree
    parsed.nodes = nodes
