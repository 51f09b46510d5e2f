"""PGM4xx: every function called, however spelled and wherever called, must be allowed."""

from __future__ import annotations

from collections.abc import Iterable

from sqlglot import exp

from pgmcp.policy.analysis import FieldSelection, RowCall, fold
from pgmcp.policy.analysis.calls import FunctionRef
from pgmcp.policy.compiler import CompiledPolicy
from pgmcp.policy.functions import pg_catalog_functions
from pgmcp.policy.parse import Parsed
from pgmcp.policy.rules import PGM401, violation
from pgmcp.policy.verdict import TraceEntry, Violation


def function_violations(
    parsed: Parsed, refs: list[FunctionRef], policy: CompiledPolicy, trace: list[TraceEntry]
) -> list[Violation]:
    out: list[Violation] = []
    builtins = pg_catalog_functions()
    for ref in refs:
        schema = ref.schema
        if ref.quoted and schema is None and ref.name not in builtins and policy.search_path:
            # "coalesce"(...) is no SQL syntax and pg_catalog has no such function: PostgreSQL
            # calls whatever the search path finds, so it is judged as that schema's function.
            schema = policy.search_path[0]
        decision = policy.function_decision(schema, ref.name)
        shown = f"{schema}.{ref.name}" if schema else ref.name
        if decision.allowed:
            trace.append(TraceEntry("PGM4xx", "function", "allow", f"{shown}: {decision.reason}", decision.source))
            continue
        where = parsed.position(ref.start) if ref.start is not None else parsed.node_position(ref.node)
        how = " (attribute notation calls it)" if isinstance(ref.node, exp.Dot) else ""
        out.append(
            violation(
                decision.rule,
                f"function {shown}{how} is refused: {decision.reason}; rewrite the query without it",
                *where,
                source=decision.source,
            )
        )
        trace.append(TraceEntry(decision.rule.code, "function", "deny", shown, decision.source))
    return out


def attribute_calls(
    parsed: Parsed,
    columns: Iterable[exp.Column],
    policy: CompiledPolicy,
    fields: Iterable[FieldSelection] = (),
    on_rows: Iterable[RowCall] = (),
    trace: list[TraceEntry] | None = None,
) -> list[Violation]:
    """`t.name` and `(x).name` may be calls (PostgreSQL's attribute notation): judge them.

    `columns` are the statement's column references (`Parsed.nodes.columns`).

    `on_rows` are the `t.name` references a schema snapshot could not prove to be columns of
    FROM item t (`pgmcp.policy.analysis`): each is the call name(t), judged as any call of
    name. Every other `t.name` with a dangerous name is refused too: without a snapshot (offline
    check-sql) nothing proves it a column, and with one the proof may be older than the
    catalogs. A `(x).pg_sleep` proven a field selection (`fields`) is refused for that reason.
    """
    out: list[Violation] = []
    for found in fields:
        if policy.functions.is_dangerous(found.name):
            out.append(
                violation(
                    PGM401,
                    f"(...).{found.name} may call the dangerous function {found.name} "
                    "(attribute notation); rewrite the query without it",
                    *parsed.node_position(found.node),
                )
            )
    judged: set[int] = set()
    for call in on_rows:
        judged.add(id(call.node))
        decision = policy.function_decision(None, call.name)
        if decision.allowed:
            if trace is not None:
                shown = f"{call.alias}.{call.name} as {call.name}({call.alias})"
                trace.append(TraceEntry("PGM4xx", "function", "allow", f"{shown}: {decision.reason}", decision.source))
            continue
        out.append(
            violation(
                decision.rule,
                f"{call.alias}.{call.name}: {call.why}, so PostgreSQL would call {call.name}({call.alias}) "
                f"(attribute notation); function {call.name} is refused: {decision.reason}; "
                "name an existing column or rewrite the query without it",
                *parsed.node_position(call.node),
                source=decision.source,
            )
        )
    for column in columns:
        if not column.table or not isinstance(column.this, exp.Identifier) or id(column) in judged:
            continue
        name = fold(column.this)
        if policy.functions.is_dangerous(name):
            out.append(
                violation(
                    PGM401,
                    f"{column.table}.{name} may call the dangerous function {name} "
                    "(attribute notation); rewrite the query without it",
                    *parsed.node_position(column),
                )
            )
    return out
