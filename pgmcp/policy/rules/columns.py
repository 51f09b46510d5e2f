"""PGM3xx: no denied column may be read in any way (named, `*`, whole row, WHERE/JOIN/ORDER...).

Which physical columns each reference reads is the resolution pass's result
(`pgmcp.policy.analysis`); this module only judges it. A read pgmcp cannot name (a `*` or a
renamed column without a snapshot) is refused only where the policy restricts some column
of the table; a whole-row reference only when the table really has a denied column (or,
without a snapshot, when a deny rule could match one of its columns).
"""

from __future__ import annotations

from pgmcp.errors import SourceLocation
from pgmcp.policy.analysis import Access, Analysis
from pgmcp.policy.compiler import CompiledPolicy, Decision
from pgmcp.policy.lineage import TableKey, ancestors
from pgmcp.policy.messages import missing_column
from pgmcp.policy.parse import Parsed
from pgmcp.policy.rules import PGM301, PGM302, PGM303, PGM304, Rule, violation
from pgmcp.policy.suggest import column_hint
from pgmcp.policy.verdict import Violation
from pgmcp.schema.snapshot import SchemaSnapshot

_HINT = "leave it out of the query (also out of WHERE, JOIN, GROUP BY and ORDER BY)"


def column_violations(
    parsed: Parsed, analysis: Analysis, policy: CompiledPolicy, snapshot: SchemaSnapshot | None
) -> list[Violation]:
    if not policy.spec.columns:
        return []  # no column rules: nothing a column read could violate
    out: list[Violation] = []
    seen: set[tuple[str, str, int | None, int | None]] = set()
    for access in analysis.accesses:
        where = parsed.node_position(access.node)
        for rule, message, source in _judge(access, policy, snapshot):
            if (rule.code, message, *where) in seen:
                continue
            seen.add((rule.code, message, *where))
            out.append(violation(rule, message, *where, source=source))
    if snapshot is not None and analysis.unknown:
        tables = {(r.schema, r.name) for r in analysis.relations}
        if any(_restricted(policy, snapshot, t) for t in tables):
            for miss in analysis.unknown:
                # Most often a typo: say so as PostgreSQL would, with the nearest visible names.
                hint = column_hint(miss.name, sorted(tables), snapshot, policy)
                out.append(violation(
                    PGM304,
                    f"{missing_column(miss.name)}{hint}; check the columns with describe_schema and name an "
                    "existing one",
                    *parsed.node_position(miss.node),
                ))
    return out


def _judge(
    access: Access, policy: CompiledPolicy, snapshot: SchemaSnapshot | None
) -> list[tuple[Rule, str, SourceLocation | None]]:
    """The violations one reference makes: each denied column it reads, or what it cannot name."""
    denied: list[tuple[tuple[str, str, str], Decision]] = []
    unnamed: list[str] = []
    for schema, table, column in sorted(access.reads, key=lambda r: (r[0], r[1], r[2] or "")):
        if column is None:
            if _restricted(policy, snapshot, (schema, table)):
                unnamed.append(f"{schema}.{table}")
            continue
        decision = column_decision(policy, snapshot, schema, table, column)
        if not decision.allowed:
            denied.append(((schema, table, column), decision))
    if not denied and not unnamed:
        return []
    first_source = denied[0][1].source if denied else None
    if access.kind == "ambiguous":
        names = ", ".join(sorted({".".join(r[:2]) for r in access.reads}))
        return [(PGM302, f"column {access.label} could belong to any of {names}, and policy {policy.name} denies "
                         "some columns there; qualify it with its table alias", first_source)]
    if access.kind == "whole_row":
        named = ", ".join(".".join(key) for key, _ in denied)
        what = f"denied column {named}" if denied else f"columns of {', '.join(unnamed)} it cannot name"
        return [(PGM303, f"whole-row reference {access.label} reads every column, including {what} "
                         f"(policy {policy.name}); name the columns you need instead", first_source)]
    if denied:
        how = " (through *)" if access.kind == "star" else ""
        return [(PGM301, f"column {'.'.join(key)}{how} is {decision.reason}; {_HINT}", decision.source)
                for key, decision in denied]
    why = ("NATURAL JOIN compares every column the joined tables share" if access.kind == "natural"
           else f"{access.label} reads a column pgmcp cannot name")
    return [(PGM302, f"{why}: without a schema pgmcp cannot expand it over {', '.join(dict.fromkeys(unnamed))} "
                     f"(policy {policy.name} denies some columns there); name the columns instead", None)]


def column_decision(policy: CompiledPolicy, snapshot: SchemaSnapshot | None, schema: str, table: str,
                    column: str) -> Decision:
    """The decision for one physical column; an inherited column follows its ancestor's rules."""
    decision = policy.column_decision(schema, table, column)
    for anc in ancestors(snapshot, schema, table):
        if decision.allowed and _has_column(snapshot, anc, column):
            decision = policy.column_decision(anc[0], anc[1], column)
    return decision


def _restricted(policy: CompiledPolicy, snapshot: SchemaSnapshot | None, table: TableKey) -> bool:
    return any(policy.columns_restricted(*t) for t in (table, *ancestors(snapshot, *table)))


def _has_column(snapshot: SchemaSnapshot | None, table: TableKey, column: str) -> bool:
    info = snapshot.relation(*table) if snapshot is not None else None
    return info is None or info.column(column) is not None
