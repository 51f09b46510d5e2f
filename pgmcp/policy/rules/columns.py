"""PGM3xx: no denied column may be read in any way (named, `*`, whole row, WHERE/JOIN/ORDER...).

The analysis of which physical columns a query reads lives in `pgmcp.policy.columns`; this
module only judges its result against the policy. A `*` or whole-row reference that cannot
be expanded is refused only where the policy restricts some column of the tables concerned.
"""

from __future__ import annotations

from typing import cast

from sqlglot import exp

from pgmcp.policy.columns import column_reads
from pgmcp.policy.compiler import CompiledPolicy
from pgmcp.policy.parse import Parsed
from pgmcp.policy.rules import violation
from pgmcp.policy.verdict import Violation
from pgmcp.schema.snapshot import SchemaSnapshot


def column_violations(
    parsed: Parsed, tree: exp.Expr, policy: CompiledPolicy, snapshot: SchemaSnapshot | None
) -> list[Violation]:
    if not policy.spec.columns:
        return []  # no column rules: nothing a column read could violate
    reads = column_reads(cast(exp.Expression, tree), snapshot)
    out: list[Violation] = []
    for ref in sorted(reads.reads):
        decision = policy.column_decision(ref.schema, ref.table, ref.column)
        if not decision.allowed:
            out.append(
                violation(
                    "PGM301",
                    f"column {ref.schema}.{ref.table}.{ref.column} is {decision.reason}; "
                    "leave it out of the query (also out of WHERE, JOIN, GROUP BY and ORDER BY)",
                    ref.line,
                    ref.column_pos,
                    source=decision.source,
                )
            )
    for item in reads.unprovable:
        tables = item.tables
        if tables:
            restricted = [t for t in tables if policy.columns_restricted(*t)]
            if item.column is not None:
                restricted = [t for t in restricted if not policy.column_decision(t[0], t[1], item.column).allowed]
            if not restricted:
                continue
        code = "PGM303" if item.kind == "whole_row" else "PGM302"
        out.append(
            violation(
                code,
                f"{item.message} (policy {policy.name} denies some columns here)",
                item.line,
                item.column_pos,
            )
        )
    return out
