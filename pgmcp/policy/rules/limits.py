"""PGM5xx: the rewrites a policy demands: row-filter fences and the row cap.

The rewriting itself lives in `pgmcp.policy.rewrite`; this module decides what to rewrite
and, when judging the rewritten text again, verifies that every filtered table is read only
through a pgmcp fence and that the row cap holds.
"""

from __future__ import annotations

from functools import lru_cache
from typing import cast

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from pgmcp.errors import PolicyDenied
from pgmcp.policy.compiler import CompiledPolicy
from pgmcp.policy.names import RelationRef
from pgmcp.policy.parse import Parsed
from pgmcp.policy.rewrite import apply_row_cap, apply_row_filters, is_pgmcp_fence, row_cap_needed
from pgmcp.policy.rules import violation
from pgmcp.policy.verdict import TraceEntry, Violation


@lru_cache(maxsize=256)
def _condition(text: str) -> exp.Expression:
    return cast(exp.Expression, sqlglot.parse_one(text, read="postgres"))


def rewrite(
    parsed: Parsed,
    tree: exp.Expr,
    refs: list[RelationRef],
    policy: CompiledPolicy,
    trace: list[TraceEntry],
) -> tuple[exp.Expr, bool, list[Violation]]:
    """Apply row filters and the row cap; return (tree, changed, violations)."""
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
                    return tree, False, [violation(
                        "PGM502", f"row filter of {rf.table} names a claim that was not bound", source=rf.source)]
            except SqlglotError as err:
                return (
                    tree,
                    False,
                    [violation("PGM502", f"row filter of {rf.table} does not parse: {err}", source=rf.source)],
                )
            if schema != ref.schema:
                # Without a snapshot the reference might resolve to another schema at run time.
                return (
                    tree,
                    False,
                    [
                        violation(
                            "PGM502",
                            f"{ref.name} may resolve to the row-filtered {schema}.{ref.name}; "
                            "write the table schema-qualified",
                            *parsed.node_position(ref.node),
                            source=rf.source,
                        )
                    ],
                )
            trace.append(TraceEntry("PGM5xx", "row-filter", "rewrite", f"{rf.table}: {rf.condition}", rf.source))
    changed = False
    try:
        if filters:
            tree = apply_row_filters(cast(exp.Expression, tree), filters)
            changed = True
    except PolicyDenied as err:
        return tree, False, [violation("PGM502", f"{err.message}; query the table from a plain FROM clause")]
    if policy.max_rows is not None:
        # The checker owns `tree` (parsed for this call, or the filtered copy): no second copy.
        tree, capped = apply_row_cap(cast(exp.Expression, tree), policy.max_rows, copy=False)
        if capped:
            changed = True
            trace.append(
                TraceEntry(
                    "PGM501",
                    "limit-rewritten",
                    "rewrite",
                    f"row cap {policy.max_rows} enforced by rewriting",
                    policy.spec.max_rows_source,
                )
            )
    return tree, changed, []


def verify_rewritten(
    parsed: Parsed, tree: exp.Expr, refs: list[RelationRef], policy: CompiledPolicy
) -> list[Violation]:
    """On the re-check: every filtered table is fenced and the cap needs no further rewrite."""
    out: list[Violation] = []
    for ref in refs:
        if policy.row_filter(ref.schema, ref.name) is None:
            continue
        if not _fenced(ref.node):
            out.append(
                violation(
                    "PGM502",
                    f"{ref.schema}.{ref.name} is read outside its row-filter fence",
                    *parsed.node_position(ref.node),
                )
            )
    if policy.max_rows is not None and row_cap_needed(cast(exp.Expression, tree), policy.max_rows):
        out.append(violation("PGM502", "the rewritten query does not enforce the row cap"))
    return out


def _fenced(table: exp.Table) -> bool:
    """True when `table` is the FROM of a pgmcp fence: Subquery(Select(From(table)))."""
    source = table.parent
    select = source.parent if isinstance(source, exp.From) else None
    subquery = select.parent if select is not None else None
    return isinstance(subquery, exp.Subquery) and is_pgmcp_fence(cast(exp.Expression, subquery))
