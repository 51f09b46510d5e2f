"""PGM2xx: every relation read, after resolution, must be allowed (views and foreign tables too)."""

from __future__ import annotations

from pgmcp.policy.compiler import CompiledPolicy
from pgmcp.policy.names import RelationRef, Unresolved
from pgmcp.policy.parse import Parsed
from pgmcp.policy.rules import violation
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
        out.append(
            violation(
                "PGM203",
                f"{miss.reason}; name an existing table, schema-qualified",
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
                hint = "query another table" if decision.code == "PGM201" else "query a table the policy allows"
                out.append(
                    violation(
                        decision.code,
                        f"table {qualified} is {decision.reason}; {hint}",
                        *where,
                        source=decision.source,
                    )
                )
                trace.append(TraceEntry(decision.code, "table", "deny", qualified, decision.source))
                continue
            trace.append(TraceEntry("PGM2xx", "table", "allow", f"{qualified}: {decision.reason}", decision.source))
            info = snapshot.relation(schema, ref.name) if snapshot is not None else None
            if info is None:
                continue
            if info.kind == "foreign_table" and not decision.explicit:
                out.append(
                    violation(
                        "PGM201",
                        f"{qualified} is a foreign table (another server); it is denied "
                        "unless the policy allows it by its exact name",
                        *where,
                    )
                )
            if info.kind in ("view", "materialized_view") and not decision.explicit:
                for dep_schema, dep_name in info.depends_on:
                    dep = policy.table_decision(dep_schema, dep_name)
                    if not dep.allowed:
                        out.append(
                            violation(
                                "PGM204",
                                f"view {qualified} reads {dep_schema}.{dep_name}, which is {dep.reason}; "
                                "query the underlying allowed tables instead (or allow the view "
                                "by its exact name)",
                                *where,
                                source=dep.source,
                            )
                        )
    return out
