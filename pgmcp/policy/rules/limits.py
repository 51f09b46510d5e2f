"""PGM5xx: the rewrites a policy demands: row-filter fences and the row cap.

The rewriting itself lives in `pgmcp.policy.rewrite`; this module decides what to rewrite,
records where it wrote each fence and the row-cap wrapper (`Written`), and, when judging the
rewritten text again, finds them at exactly those places (`recognise`) and verifies that every
filtered table is read only through one of them and that the row cap holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import cast

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from pgmcp.errors import PolicyDenied
from pgmcp.policy.analysis import RelationRef
from pgmcp.policy.compiler import CompiledPolicy
from pgmcp.policy.messages import syntax_message
from pgmcp.policy.parse import Parsed
from pgmcp.policy.rewrite import (
    CAP_ALIAS,
    Path,
    apply_row_cap,
    at_path,
    fence_shape,
    fence_tables,
    node_path,
    row_cap_needed,
)
from pgmcp.policy.rules import PGM501, PGM502, violation
from pgmcp.policy.verdict import TraceEntry, Violation


@dataclass(frozen=True)
class Written:
    """Where the checker wrote its fences and the row-cap wrapper in the rewritten tree."""

    fences: tuple[Path, ...] = ()
    cap: Path | None = None


@lru_cache(maxsize=256)
def _condition(text: str) -> exp.Expression:
    return cast(exp.Expression, sqlglot.parse_one(text, read="postgres"))


def rewrite(
    parsed: Parsed,
    tree: exp.Expr,
    refs: list[RelationRef],
    policy: CompiledPolicy,
    trace: list[TraceEntry],
) -> tuple[exp.Expr, Written | None, list[Violation]]:
    """Apply row filters and the row cap to `tree` (in place: the checker owns it); return
    (tree, where the rewrites are or None when nothing changed, violations)."""
    filters: dict[tuple[str, str], exp.Expression] = {}
    for ref in refs:
        for schema in ref.candidates:
            rf = policy.row_filter(schema, ref.name)
            if rf is None or (schema, ref.name) in filters:
                continue
            try:
                filters[(schema, ref.name)] = _condition(rf.condition)
                if filters[(schema, ref.name)].find(exp.Placeholder) is not None:
                    # A claim parameter nobody bound (pgmcp.policy.claims binds them): fail closed.
                    return tree, None, [violation(
                        PGM502, f"row filter of {rf.table} names a claim that was not bound", source=rf.source)]
            except SqlglotError as err:
                return (
                    tree,
                    None,
                    [violation(PGM502, f"row filter of {rf.table} does not parse: {syntax_message(err, rf.condition)}",
                               source=rf.source)],
                )
            if schema != ref.schema:
                # Without a snapshot the reference might resolve to another schema at run time.
                return (
                    tree,
                    None,
                    [
                        violation(
                            PGM502,
                            f"{ref.name} may resolve to the row-filtered {schema}.{ref.name}; "
                            "write the table schema-qualified",
                            *parsed.node_position(ref.node),
                            source=rf.source,
                        )
                    ],
                )
            trace.append(TraceEntry("PGM5xx", "row-filter", "rewrite", f"{rf.table}: {rf.condition}", rf.source))
    fences: list[exp.Subquery] = []
    try:
        targets = [(r.node, filters[(r.schema, r.name)]) for r in refs if (r.schema, r.name) in filters]
        fences = fence_tables(targets)
    except PolicyDenied as err:
        return tree, None, [violation(PGM502, f"{err.message}; query the table from a plain FROM clause")]
    capped = False
    if policy.max_rows is not None:
        tree, capped = apply_row_cap(cast(exp.Expression, tree), policy.max_rows, copy=False)
        if capped:
            trace.append(
                TraceEntry(
                    PGM501.code,
                    PGM501.name,
                    "rewrite",
                    f"row cap {policy.max_rows} enforced by rewriting",
                    policy.spec.max_rows_source,
                )
            )
    if not fences and not capped:
        return tree, None, []
    wrapper = _cap_wrapper(tree) if capped else None
    written = Written(tuple(node_path(f) for f in fences), node_path(wrapper) if wrapper is not None else None)
    return tree, written, []


def _cap_wrapper(tree: exp.Expr) -> exp.Subquery | None:
    """The `(<query>) AS _pgmcp_capped` subquery when the cap wrapped the query."""
    source = tree.args.get("from_") if isinstance(tree, exp.Select) else None
    inner = source.this if isinstance(source, exp.From) else None
    alias = inner.args.get("alias") if isinstance(inner, exp.Subquery) else None
    if isinstance(inner, exp.Subquery) and isinstance(alias, exp.TableAlias) and alias.name == CAP_ALIAS:
        return inner
    return None


def recognise(
    tree: exp.Expr, written: Written
) -> tuple[dict[int, exp.Table], list[exp.Expr], list[Violation]]:
    """Find the checker's own fences and wrapper in the re-parsed `tree`, at the recorded places.

    Returns (fence subquery id -> the table it fences, every node the checker wrote, problems).
    """
    fences: dict[int, exp.Table] = {}
    ours: list[exp.Expr] = []
    for path in written.fences:
        node = at_path(tree, path)
        table = fence_shape(node) if node is not None else None
        if node is None or table is None:
            return {}, [], [violation(PGM502, "the rewritten query does not hold pgmcp's row-filter fence where "
                                              "pgmcp wrote it")]
        fences[id(node)] = table
        ours.append(node.this)
        ours.append(table)
    if written.cap is not None:
        node = at_path(tree, written.cap)
        # `(VALUES ...) AS x` parses back as an aliased Values node, a query as a Subquery.
        alias = node.args.get("alias") if isinstance(node, (exp.Subquery, exp.Values)) else None
        if not isinstance(alias, exp.TableAlias) or alias.name != CAP_ALIAS:
            return {}, [], [violation(PGM502, "the rewritten query does not hold pgmcp's row cap where pgmcp wrote it")]
        ours.append(alias)
    return fences, ours, []


def verify_rewritten(
    parsed: Parsed, tree: exp.Expr, refs: list[RelationRef], policy: CompiledPolicy
) -> list[Violation]:
    """On the re-check: every filtered table is read through a fence pgmcp wrote; the cap holds."""
    out: list[Violation] = []
    for ref in refs:
        if policy.row_filter(ref.schema, ref.name) is None or ref.fenced:
            continue
        out.append(
            violation(
                PGM502,
                f"{ref.schema}.{ref.name} is read outside its row-filter fence",
                *parsed.node_position(ref.node),
            )
        )
    if policy.max_rows is not None and row_cap_needed(cast(exp.Expression, tree), policy.max_rows):
        out.append(violation(PGM502, "the rewritten query does not enforce the row cap"))
    return out
