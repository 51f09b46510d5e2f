"""PGM205: a type reference may not name a relation the policy hides.

A relation's row type carries its name and columns (`NULL::secrets` with json_populate_record
lists them), and a regclass/regtype value tells whether a relation exists and its OID. So a
cast to a relation's row type (or an array of it, or a column definition of that type) is
judged like reading the relation: the relation must be allowed, and with a snapshot it must
have no denied column (without one: no deny rule may match its columns). A regclass/regtype
computed from anything but a literal name may name any relation: it is allowed only where
the policy already shows every name (pg_catalog.pg_class for regclass, pg_type for regtype).
Casts to ordinary types are untouched. An untyped string literal that meets a regclass or
regtype value is read as a name too (`pg_typeof(1) = 'secrets'`): it is judged as that
value's literal would be (`implicit`).
"""

from __future__ import annotations

from pgmcp.policy.analysis import TypeRef
from pgmcp.policy.compiler import CompiledPolicy
from pgmcp.policy.parse import Parsed
from pgmcp.policy.rules import PGM205, violation
from pgmcp.policy.rules.columns import column_decision
from pgmcp.policy.verdict import Violation
from pgmcp.schema.snapshot import SchemaSnapshot


def type_violations(
    parsed: Parsed, refs: list[TypeRef], policy: CompiledPolicy, snapshot: SchemaSnapshot | None
) -> list[Violation]:
    out: list[Violation] = []
    for ref in refs:
        problem = _problem(ref, policy, snapshot)
        if problem is not None:
            out.append(violation(PGM205, problem, *parsed.node_position(ref.node)))
    return out


def _problem(ref: TypeRef, policy: CompiledPolicy, snapshot: SchemaSnapshot | None) -> str | None:
    if ref.kind == "reg_value":
        if policy.table_decision("pg_catalog", ref.catalog).allowed:
            return None
        return (f"a {ref.name} computed from a value can name any relation, including those policy "
                f"{policy.name} hides; write the relation's name as a string literal ('orders'::{ref.name})")
    what = "the row type of" if ref.kind == "row_type" else f"the {ref.kind} value of"
    if ref.implicit and not ref.candidates:
        return (f"the string {ref.name!r} meets a {ref.kind} value, so PostgreSQL reads it as a name, and its "
                "escapes hide which; write the name without escapes or give the literal a type ('...'::text)")
    if ref.implicit:
        for schema in ref.candidates:
            decision = policy.table_decision(schema, ref.name)
            if not decision.allowed:
                return (f"the string '{ref.name}' meets a {ref.kind} value, so PostgreSQL reads it as the "
                        f"{ref.kind} of {schema}.{ref.name}, a relation that is {decision.reason}; give the "
                        f"literal a type of its own ('...'::text) or leave the {ref.kind} value out")
        return None
    if not ref.candidates:
        return f"{ref.name} names no relation pgmcp can resolve ({ref.kind}); name an existing, allowed table"
    for schema in ref.candidates:
        qualified = f"{schema}.{ref.name}"
        decision = policy.table_decision(schema, ref.name)
        if not decision.allowed:
            return (f"{what} {qualified} names a relation that is {decision.reason}; "
                    "leave the type reference out (if you meant a type, not a table, schema-qualify it)")
        if ref.kind != "row_type":
            continue
        info = snapshot.relation(schema, ref.name) if snapshot is not None else None
        if info is not None:
            hidden = [c.name for c in info.columns if not column_decision(policy, snapshot, schema, ref.name,
                                                                          c.name).allowed]
            if hidden:
                return (f"{what} {qualified} holds denied column {', '.join(hidden)}; "
                        "leave the type reference out")
        elif policy.columns_restricted(schema, ref.name):
            return (f"{what} {qualified} may hold a column policy {policy.name} denies (no schema to tell); "
                    "leave the type reference out")
    return None
