"""PGM3xx: no denied column may be read in any way (named, `*`, whole row, WHERE/JOIN/ORDER...).

The analysis of which physical columns a query reads lives in `pgmcp.policy.columns`; this
module only judges its result against the policy. A `*` or whole-row reference that cannot
be expanded is refused only where the policy restricts some column of the tables concerned.
"""

from __future__ import annotations

from typing import cast

from sqlglot import exp

from pgmcp.policy.columns import UNRESOLVED, column_reads, physical_tables
from pgmcp.policy.compiler import CompiledPolicy
from pgmcp.policy.lineage import TableKey, ancestors
from pgmcp.policy.parse import Parsed
from pgmcp.policy.rules import violation
from pgmcp.policy.suggest import column_hint, table_hint
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
        # An inherited column is the ancestor's column: its rules follow it into children.
        for anc in ancestors(snapshot, ref.schema, ref.table):
            if decision.allowed and _has_column(snapshot, anc, ref.column):
                decision = policy.column_decision(anc[0], anc[1], ref.column)
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
            restricted = [t for t in tables if _restricted(policy, snapshot, t)]
            if item.column is not None:
                restricted = [
                    t for t in restricted
                    if not all(policy.column_decision(s, n, item.column).allowed
                               for s, n in (t, *ancestors(snapshot, *t)))
                ]
            if not restricted:
                continue
        if item.kind == "unknown_column" and snapshot is not None and item.message.startswith(UNRESOLVED):
            # Most often a typo: say so as PostgreSQL would, rather than "cannot prove", so the
            # caller can fix it.
            read = physical_keys(tree)
            unknown = [t for t in read if snapshot.relation(*t) is None]
            if unknown:
                # The columns are unknown because their table is: say that, as PostgreSQL would.
                name = ".".join(unknown[0])
                out.append(violation("PGM203", f'relation "{name}" does not exist{table_hint(name, snapshot, policy)}'
                                     "; name an existing table (describe_schema lists them)",
                                     item.line, item.column_pos))
                continue
            hint = column_hint(item.column, read, snapshot, policy) if item.column else ""
            message = (f"{item.message.removeprefix(UNRESOLVED + ': ')}{hint}; check the columns with "
                       "describe_schema and name an existing one")
            out.append(violation("PGM304", message, item.line, item.column_pos))
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


def physical_keys(tree: exp.Expr) -> list[tuple[str, str]]:
    """The (schema, table) of every physical table `tree` reads."""
    return [(t.args["db"].name, t.name) for t in physical_tables(cast(exp.Expression, tree))]


def _restricted(policy: CompiledPolicy, snapshot: SchemaSnapshot | None, table: TableKey) -> bool:
    return any(policy.columns_restricted(*t) for t in (table, *ancestors(snapshot, *table)))


def _has_column(snapshot: SchemaSnapshot | None, table: TableKey, column: str) -> bool:
    info = snapshot.relation(*table) if snapshot is not None else None
    return info is None or info.column(column) is not None
