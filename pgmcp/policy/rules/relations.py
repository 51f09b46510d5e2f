"""PGM2xx: every relation read, after resolution, must be allowed (views and foreign tables too)."""

from __future__ import annotations

from pgmcp.policy.analysis import RelationRef, Unresolved
from pgmcp.policy.compiler import CompiledPolicy
from pgmcp.policy.lineage import ancestors, view_reads
from pgmcp.policy.parse import Parsed
from pgmcp.policy.rules import PGM201, PGM203, PGM204, PGM502, violation
from pgmcp.policy.suggest import table_hint
from pgmcp.policy.verdict import TraceEntry, Violation
from pgmcp.schema.snapshot import SchemaSnapshot


def relation_violations(
    parsed: Parsed,
    refs: list[RelationRef],
    unresolved: list[Unresolved],
    policy: CompiledPolicy,
    snapshot: SchemaSnapshot | None,
    trace: list[TraceEntry],
) -> list[Violation]:
    out: list[Violation] = []
    for miss in unresolved:
        hint = table_hint(miss.node.name, snapshot, policy)
        out.append(
            violation(
                PGM203,
                f"{miss.reason}{hint}; name an existing table, schema-qualified",
                *parsed.node_position(miss.node),
            )
        )
    seen: set[tuple[str, str]] = set()
    for ref in refs:
        where = parsed.node_position(ref.node)
        for schema in ref.candidates:
            if (schema, ref.name) in seen:
                continue
            seen.add((schema, ref.name))
            qualified = f"{schema}.{ref.name}"
            decision = policy.table_decision(schema, ref.name)
            if not decision.allowed:
                hint = "query another table" if decision.code is PGM201 else "query a table the policy allows"
                out.append(
                    violation(
                        decision.rule,
                        f"table {qualified} is {decision.reason}; {hint}",
                        *where,
                        source=decision.source,
                    )
                )
                trace.append(TraceEntry(decision.rule.code, "table", "deny", qualified, decision.source))
                continue
            trace.append(TraceEntry("PGM2xx", "table", "allow", f"{qualified}: {decision.reason}", decision.source))
            if snapshot is None:
                continue
            info = snapshot.relation(schema, ref.name)
            if info is None:
                continue
            if info.kind == "foreign_table" and not decision.explicit:
                out.append(
                    violation(
                        PGM201,
                        f"{qualified} is a foreign table (another server); it is denied "
                        "unless the policy allows it by its exact name",
                        *where,
                    )
                )
            if info.kind in ("view", "materialized_view") and not decision.explicit:
                out += _view_violations(snapshot, policy, schema, ref.name, where)
            if not decision.explicit:
                out += _child_violations(snapshot, policy, schema, ref.name, where)
    return out


def _view_violations(
    snapshot: SchemaSnapshot, policy: CompiledPolicy, schema: str, name: str, where: tuple[int | None, int | None]
) -> list[Violation]:
    """PGM204: a view is as protected as everything it reads (through nested views too): a denied
    relation, a row-filtered one (the filter applies to the table, not to views over it) or a
    denied column (under whatever name the view gives it, or only in its WHERE)."""
    out: list[Violation] = []
    qualified = f"{schema}.{name}"
    hint = "query the underlying allowed tables instead (or allow the view by its exact name)"
    reads = view_reads(snapshot, schema, name)
    for dep_schema, dep_name in reads.tables:
        dep = policy.table_decision(dep_schema, dep_name)
        if not dep.allowed:
            why = f"which is {dep.reason}"
            source = dep.source
        elif (rf := policy.row_filter(dep_schema, dep_name)) is not None:
            why = "whose row filter applies only where the table itself is read"
            source = rf.source
        else:
            continue
        out.append(violation(PGM204, f"view {qualified} reads {dep_schema}.{dep_name}, {why}; {hint}",
                             *where, source=source))
    for col_schema, col_table, column in reads.columns:
        col = policy.column_decision(col_schema, col_table, column)
        if not col.allowed and policy.table_visible(col_schema, col_table):
            out.append(violation(PGM204, f"view {qualified} reads column {col_schema}.{col_table}.{column}, "
                                 f"which is {col.reason}; {hint}", *where, source=col.source))
    return out


def _child_violations(
    snapshot: SchemaSnapshot, policy: CompiledPolicy, schema: str, name: str, where: tuple[int | None, int | None]
) -> list[Violation]:
    """An inheritance child or partition holds its ancestors' rows: a denied ancestor denies it
    (PGM201), and a row-filtered ancestor's filter cannot be bypassed by naming the child (PGM502)."""
    out: list[Violation] = []
    qualified = f"{schema}.{name}"
    own_filter = policy.row_filter(schema, name) is not None
    for anc_schema, anc_name in ancestors(snapshot, schema, name):
        anc = policy.table_decision(anc_schema, anc_name)
        if not anc.allowed:
            out.append(violation(PGM201, f"table {qualified} inherits from (or is a partition of) "
                                 f"{anc_schema}.{anc_name}, which is {anc.reason}; its rows are "
                                 f"{anc_schema}.{anc_name}'s rows; query another table", *where, source=anc.source))
        elif not own_filter and (rf := policy.row_filter(anc_schema, anc_name)) is not None:
            out.append(violation(PGM502, f"table {qualified} inherits from (or is a partition of) the row-filtered "
                                 f"{anc_schema}.{anc_name}; query {anc_schema}.{anc_name}, whose filter "
                                 f"covers {qualified}'s rows", *where, source=rf.source))
    return out
