"""What a policy lets its role read of each relation, as the database can enforce it.

One decision per relation of the schema, shared by `pgmcp policy grants` (which writes the
SQL that gives exactly this) and the privilege audit (which compares it with what the role can
read now). It follows the checker's table rules (`pgmcp.policy.rules.relations`): a relation
is readable when an allow rule matches and no deny does; foreign tables only by exact name; an
inheritance child or partition of a denied table is denied, and of a row-filtered one is read
through its parent (whose row-level security covers its rows) unless it has a filter of its own.

Two things the database does differently are decided here:
- a view reads with its owner's rights (src/backend/rewrite/rewriteHandler.c, unless it is
  `security_invoker`), so a view over a denied table or column or over a row-filtered table
  is left out, even where the policy allows it by name; a materialized view holds a copy of
  what it read, so one over protected data is left out too;
- row-level security exists only on tables and partitioned tables (ALTER TABLE ... ENABLE
  ROW LEVEL SECURITY), so a row filter on any other kind, or one that names a claim of the
  caller's token (different for each caller), cannot be expressed: that relation is not
  granted, and the problem names the policy rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from pgmcp.errors import SourceLocation
from pgmcp.policy.compiler import CompiledPolicy
from pgmcp.policy.lineage import ancestors, view_reads
from pgmcp.policy.spec import RowFilter
from pgmcp.schema.snapshot import RelationInfo, SchemaSnapshot

Grant = Literal["all", "columns", "none"]
_RLS_KINDS = ("table", "partitioned_table")


@dataclass(frozen=True)
class Access:
    """What the role may read of `relation`: everything, some columns, or nothing (and why)."""

    relation: RelationInfo
    grant: Grant
    columns: tuple[str, ...] = ()  # grant "columns": the allowed ones, in table order
    denied_columns: tuple[str, ...] = ()
    row_filter: RowFilter | None = None  # enforced with row-level security
    reason: str = ""  # why "none" or "columns"
    left_out_view: bool = False  # a view the policy allows, left out because it reads protected data
    problem: str | None = None  # a policy rule the database cannot express, named

    @property
    def name(self) -> str:
        return self.relation.qualified_name


def rule_name(source: SourceLocation | None, fallback: str) -> str:
    """`policies/shop.yaml:12 row_filters.public.orders`, the way errors name a policy rule."""
    if source is None:
        return fallback
    line = f":{source.line}" if source.line is not None else ""
    key = f" {source.key_path}" if source.key_path else f" {fallback}"
    return f"{source.file}{line}{key}"


def plan_access(snapshot: SchemaSnapshot, policy: CompiledPolicy) -> list[Access]:
    """The decision for every relation of `snapshot` (taken with scope "all"), in name order."""
    return [_decide(snapshot, policy, rel) for rel in sorted(snapshot.relations, key=lambda r: (r.schema, r.name))]


def _decide(snapshot: SchemaSnapshot, policy: CompiledPolicy, rel: RelationInfo) -> Access:
    decision = policy.table_decision(rel.schema, rel.name)
    if not decision.allowed:
        return Access(rel, "none", reason=decision.reason)
    if rel.kind == "foreign_table" and not decision.explicit:
        return Access(rel, "none", reason="a foreign table is allowed only by its exact name")
    own_filter = policy.row_filter(rel.schema, rel.name)
    for anc in ancestors(snapshot, rel.schema, rel.name):
        anc_decision = policy.table_decision(*anc)
        if not anc_decision.allowed:
            return Access(rel, "none", reason=f"its rows belong to {anc[0]}.{anc[1]}, which is {anc_decision.reason}")
        if own_filter is None and policy.row_filter(*anc) is not None:
            return Access(rel, "none", reason=f"its rows are read through the row-filtered {anc[0]}.{anc[1]}")
    if rel.kind in ("view", "materialized_view"):
        protected = _protected_reads(snapshot, policy, rel)
        if protected and not (rel.kind == "view" and rel.security_invoker):
            why = ("it reads with its owner's rights" if rel.kind == "view"
                   else "it holds a copy of what it read")
            return Access(rel, "none", reason=f"{why}, and it reads {protected}", left_out_view=True)
    denied = tuple(c.name for c in rel.columns if not policy.column_decision(rel.schema, rel.name, c.name).allowed)
    allowed = tuple(c.name for c in rel.columns if c.name not in denied)
    if own_filter is not None:
        problem = _filter_problem(rel, own_filter)
        if problem is not None:
            return Access(rel, "none", reason=problem, problem=problem)
    if denied and not allowed:
        return Access(rel, "none", denied_columns=denied, reason="the policy denies every column")
    if denied:
        return Access(rel, "columns", allowed, denied, own_filter, reason=f"the policy denies {', '.join(denied)}")
    return Access(rel, "all", row_filter=own_filter)


def _protected_reads(snapshot: SchemaSnapshot, policy: CompiledPolicy, rel: RelationInfo) -> str:
    reads = view_reads(snapshot, rel.schema, rel.name)
    for schema, name in reads.tables:
        if not policy.table_decision(schema, name).allowed:
            return f"the denied {schema}.{name}"
        if policy.row_filter(schema, name) is not None:
            return f"the row-filtered {schema}.{name}"
    for schema, table, column in reads.columns:
        if not policy.column_decision(schema, table, column).allowed:
            return f"the denied column {schema}.{table}.{column}"
    return ""


def _filter_problem(rel: RelationInfo, rf: RowFilter) -> str | None:
    rule = rule_name(rf.source, f"row_filters.{rf.table}")
    if rel.kind not in _RLS_KINDS:
        kind = rel.kind.replace("_", " ")
        return (f"row filter {rule} applies to {rel.qualified_name}, a {kind}: PostgreSQL has row-level "
                "security only on tables, so it is not granted")
    claims = claim_names(rf.condition)
    if claims:
        return (f"row filter {rule} depends on the caller's claim(s) {', '.join(':' + c for c in claims)}, "
                "which the database cannot know: one role serves every caller, so it is not granted")
    return None


def claim_names(condition: str) -> tuple[str, ...]:
    """The `:name` claim parameters a row filter names (see the team-deployment issue)."""
    try:
        tree = sqlglot.parse_one(condition, read="postgres")
    except SqlglotError:
        return ()
    return tuple(dict.fromkeys(p.name for p in tree.find_all(exp.Placeholder) if p.name))
