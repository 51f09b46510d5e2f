"""`check(sql, policy, snapshot)`: one SQL statement in, a `Verdict` out. Pure and fail-closed.

The checker is the ordered `STAGES` table below (as sqlglot's optimizer lists its RULES), each
stage a function over one `Context`. A stage marked `clean` runs only while nothing has been
refused; `stop` ends the check once the stage has refused something:

1. size: `limits.max_sql_bytes`, before anything is parsed (PGM007);
2. parse: exactly one statement, EXPLAIN peeled, token-level refusals (`parse.py`, `tokens.py`);
3. statement kind: root allow-list, no write/INTO/lock anywhere (`rules/statements.py`);
4. reserved names: `_pgmcp_` in any token form, on the tree (`rules/reserved.py`);
5. resolve: the one resolution pass (`pgmcp.policy.analysis`): relations, columns, calls on
   rows, field selections; the resolved schema is written into the tree;
6. relations (`rules/relations.py`), type references (`rules/types.py`), functions and
   attribute calls (`rules/functions.py`);
7. columns (`rules/columns.py`);
8. rewrite: row-filter fences and the row cap (`rules/limits.py`); the generated text is
   checked again from stage 1, with the places of the checker's own rewrites (`Written`),
   and is what runs.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlglot import exp
from sqlglot.errors import SqlglotError

from pgmcp.policy.analysis import Analysis, AnalysisError, analyse, implicit_refs, reg_kinds, type_refs
from pgmcp.policy.analysis.calls import FunctionRef, function_refs
from pgmcp.policy.analysis.typerefs import REG_LOOKUPS
from pgmcp.policy.compiler import CompiledPolicy
from pgmcp.policy.parse import Parsed, parse_statement
from pgmcp.policy.rewrite import generate
from pgmcp.policy.rules import PGM003, PGM006, PGM007, PGM105, PGM106, PGM501, PGM502, violation
from pgmcp.policy.rules.columns import column_violations
from pgmcp.policy.rules.functions import attribute_calls, function_violations
from pgmcp.policy.rules.limits import Written, recognise, rewrite, verify_rewritten
from pgmcp.policy.rules.relations import relation_violations
from pgmcp.policy.rules.reserved import owned_names, reserved_names
from pgmcp.policy.rules.statements import root_kind, writes_in_tree
from pgmcp.policy.rules.types import type_violations
from pgmcp.policy.verdict import TraceEntry, Verdict, Violation
from pgmcp.schema.snapshot import SchemaSnapshot


@dataclass
class Context:
    """Everything the stages share while judging one statement."""

    sql: str
    policy: CompiledPolicy
    snapshot: SchemaSnapshot | None
    written: Written | None = None  # set on the re-check of a statement the checker rewrote
    long_lists: bool = True  # parse long literal lists as placeholders (`pgmcp.policy.longlists`)
    parsed: Parsed | None = None
    analysis: Analysis | None = None
    calls: list[FunctionRef] = field(default_factory=list)
    fences: dict[int, exp.Table] = field(default_factory=dict)
    violations: list[Violation] = field(default_factory=list)
    trace: list[TraceEntry] = field(default_factory=list)
    kind: str | None = None
    rewritten: str | None = None
    done: bool = False  # a stage decided the verdict

    @property
    def tree(self) -> exp.Expr:
        assert self.parsed is not None and self.parsed.tree is not None
        return self.parsed.tree

    def refuse(self, found: list[Violation]) -> None:
        self.violations += found


def _size(ctx: Context) -> None:
    if ctx.written is not None:
        return  # the checker's own rewrite of a statement that passed
    size = len(ctx.sql.encode("utf-8"))
    limit = ctx.policy.spec.max_sql_bytes
    if size > limit:
        ctx.refuse([violation(PGM007, f"the statement is {size} bytes, more than policy {ctx.policy.name}'s "
                                      f"limits.max_sql_bytes ({limit}); send a shorter query")])


def _parse(ctx: Context) -> None:
    parsed = ctx.parsed = parse_statement(ctx.sql, allow_reserved=ctx.written is not None, long_lists=ctx.long_lists)
    ctx.trace += [TraceEntry("PGM003", "sqlglot", "info", line) for line in parsed.log]
    if parsed.leading is not None:
        ctx.kind = "explain" if parsed.explain else None
        ctx.refuse(root_kind(parsed, ctx.policy))
        ctx.done = True
    elif parsed.tree is None:
        ctx.refuse(parsed.violations)
    else:
        ctx.kind = "explain" if parsed.explain else "select"


def _statement(ctx: Context) -> None:
    assert ctx.parsed is not None
    ctx.refuse(root_kind(ctx.parsed, ctx.policy) + writes_in_tree(ctx.parsed))
    if any(v.rule not in (PGM105.code, PGM106.code) for v in ctx.violations):
        ctx.done = True


def _reserved(ctx: Context) -> None:
    assert ctx.parsed is not None
    ours: list[exp.Expr] = []
    if ctx.written is not None:
        ctx.fences, ours, problems = recognise(ctx.tree, ctx.written)
        ctx.refuse(problems)
    ctx.refuse(reserved_names(ctx.parsed, ctx.tree, owned_names(ours)))


def _resolve(ctx: Context) -> None:
    assert ctx.parsed is not None
    try:
        ctx.analysis = analyse(ctx.tree, ctx.policy.search_path, ctx.snapshot, ctx.fences, ctx.parsed.nodes)
    except AnalysisError as err:
        ctx.refuse([violation(PGM003, f"the query's names cannot be resolved: {err}; simplify the query")])
        ctx.done = True


def _relations(ctx: Context) -> None:
    assert ctx.parsed is not None and ctx.analysis is not None
    a = ctx.analysis
    ctx.refuse(relation_violations(ctx.parsed, a.relations, a.unresolved, ctx.policy, ctx.snapshot, ctx.trace))


def _types(ctx: Context) -> None:
    assert ctx.parsed is not None
    refs = type_refs(ctx.parsed.nodes.types, ctx.policy.search_path, ctx.snapshot)
    ctx.refuse(type_violations(ctx.parsed, refs, ctx.policy, ctx.snapshot))


def _functions(ctx: Context) -> None:
    assert ctx.parsed is not None and ctx.analysis is not None
    a = ctx.analysis
    nodes = ctx.parsed.nodes
    ctx.calls = function_refs(nodes.calls, ctx.parsed.body, a.fields)
    ctx.refuse(function_violations(ctx.parsed, ctx.calls, ctx.policy, ctx.trace))
    ctx.refuse(attribute_calls(ctx.parsed, nodes.columns, ctx.policy, a.fields.values(), a.row_calls, ctx.trace))


def _implicit_types(ctx: Context) -> None:
    """Untyped string literals that PostgreSQL reads as relation names (`implicit_refs`)."""
    assert ctx.parsed is not None and ctx.analysis is not None
    snapshot = ctx.snapshot
    column_kinds: list[str] = []
    reg_columns = snapshot.reg_columns if snapshot is not None else None
    if reg_columns:  # most schemas have none: then no read needs looking at
        column_kinds = [reg_columns[read] for access in ctx.analysis.accesses for read in access.reads
                        if read in reg_columns]
    kinds = reg_kinds(ctx.parsed.nodes.types, (c.name for c in ctx.calls), column_kinds)
    kinds = {k for k in kinds if not ctx.policy.table_decision("pg_catalog", REG_LOOKUPS[k]).allowed}
    if not kinds:
        return
    if ctx.parsed.short is not None:
        raise _WholeText  # a long list's items are literals of their own here: judge each
    refs = implicit_refs(ctx.tree, kinds, ctx.policy.search_path, snapshot)
    ctx.refuse(type_violations(ctx.parsed, refs, ctx.policy, snapshot))


def _columns(ctx: Context) -> None:
    assert ctx.parsed is not None and ctx.analysis is not None
    ctx.refuse(column_violations(ctx.parsed, ctx.analysis, ctx.policy, ctx.snapshot))


def _rewrite(ctx: Context) -> None:
    assert ctx.parsed is not None and ctx.analysis is not None
    if ctx.written is not None:
        ctx.refuse(verify_rewritten(ctx.parsed, ctx.tree, ctx.analysis.relations, ctx.policy))
        # What was judged is what runs: the text must be exactly what its tree generates.
        if not ctx.violations and generate(ctx.tree, copy=False) != ctx.parsed.body:
            ctx.refuse([violation(PGM502, "the rewritten query does not survive a round trip through the parser")])
        return
    tree, written, problems = rewrite(ctx.parsed, ctx.tree, ctx.analysis.relations, ctx.policy, ctx.trace)
    ctx.refuse(problems)
    if problems or written is None:
        return
    text = ctx.parsed.restore(generate(tree, copy=False))  # the rewritten tree is ours alone
    if text is None:
        raise _WholeText  # a long list's placeholder did not come out of the generator as it went in
    rewritten = (ctx.parsed.explain.prefix if ctx.parsed.explain else "") + text
    again = _run(Context(rewritten, ctx.policy, ctx.snapshot, written=written))
    if not again.allowed:
        ctx.refuse([violation(PGM502, f"the rewritten query failed its re-check: {again.reason()}")])
        return
    ctx.rewritten = rewritten


class _WholeText(Exception):
    """The statement must be judged again with its long lists parsed item by item."""


@dataclass(frozen=True)
class Stage:
    name: str
    run: Callable[[Context], None]
    clean: bool = False  # runs only while nothing has been refused
    stop: bool = False  # a refusal here ends the check


STAGES: tuple[Stage, ...] = (
    Stage("size", _size, stop=True),
    Stage("parse", _parse, stop=True),
    Stage("statement", _statement),
    Stage("reserved-names", _reserved, stop=True),
    Stage("resolve", _resolve),
    Stage("relations", _relations),
    Stage("types", _types),
    Stage("functions", _functions),
    Stage("implicit-types", _implicit_types),
    Stage("columns", _columns, clean=True),
    Stage("rewrite", _rewrite, clean=True),
)


def check(sql: str, policy: CompiledPolicy, snapshot: SchemaSnapshot | None = None) -> Verdict:
    """Judge one statement. Never raises on bad SQL: every problem is a violation."""
    with _collector_paused():
        return _run(Context(sql, policy, snapshot))


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector stays off while one statement is judged.

    A statement's tree is cyclic (every node links to its parent), so each collection during
    the check walks all of it, again and again as it grows: a third of the time of a 4,000-CTE
    statement, a tenth of a TPC-H query's. What one check allocates is bounded by the
    statement; its cyclic garbage is collected once the collector runs again.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _run(ctx: Context) -> Verdict:
    try:
        for stage in STAGES:
            if ctx.done or (stage.clean and ctx.violations):
                break
            stage.run(ctx)
            if stage.stop and ctx.violations:
                break
    except _WholeText:
        return _run(Context(ctx.sql, ctx.policy, ctx.snapshot, ctx.written, long_lists=False))
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, SqlglotError) as err:
        # An analysis step met a tree shape it does not handle: refuse, never pass.
        message = f"the query could not be analysed ({type(err).__name__}); simplify it"
        return Verdict(ctx.sql, False, (violation(PGM003, message),))
    except RecursionError:
        message = "the statement is nested too deeply to be checked; flatten the query"
        return Verdict(ctx.sql, False, (violation(PGM006, message),))
    return _verdict(ctx)


def _verdict(ctx: Context) -> Verdict:
    a = ctx.analysis
    relations = tuple(sorted({f"{r.schema}.{r.name}" for r in a.relations})) if a is not None else ()
    functions = tuple(sorted({f"{c.schema}.{c.name}" if c.schema else c.name for c in ctx.calls}))
    allowed = not ctx.violations
    capped = ctx.policy.max_rows if allowed and any(e.rule == PGM501.code for e in ctx.trace) else None
    return Verdict(
        ctx.sql, allowed, tuple(ctx.violations), ctx.rewritten if allowed else None, ctx.kind,
        relations, functions, tuple(ctx.trace), row_cap=capped,
    )
