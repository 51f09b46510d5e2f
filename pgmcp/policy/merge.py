"""How policy documents combine (`extends`, and several policies named for one database).

Documents are merged parents first; "more derived" means later in that order:
- deny rules (tables, columns, functions) accumulate from every document;
- allow rules of a section (tables, columns, functions) come from the most derived document
  that declares any allow rule in that section, so a child's `"public.*": allow` replaces
  baseline's `"*.*": allow` instead of adding to it;
- row filters accumulate;
- scalars (statements, explain_analyze, limits, search_path) come from the most derived
  document that sets them; name, description and tests come from the named documents only.
Deny always wins over allow at check time, whatever the order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from pgmcp.errors import SourceLocation
from pgmcp.policy.spec import (
    ColumnRule,
    FunctionRule,
    PolicySpec,
    PolicyTest,
    RowFilter,
    StatementKind,
    TableRule,
)

R = TypeVar("R", TableRule, ColumnRule, FunctionRule)


@dataclass(frozen=True)
class PolicyDocument:
    """One file's own content, before merging; None means "not set here"."""

    file: str
    name: str
    description: str | None
    extends: tuple[tuple[str, SourceLocation], ...]
    statements: tuple[frozenset[StatementKind], SourceLocation] | None
    explain_analyze: bool | None
    tables: tuple[TableRule, ...]
    column_allow: tuple[ColumnRule, ...]
    column_deny: tuple[ColumnRule, ...]
    function_allow: tuple[FunctionRule, ...]
    function_deny: tuple[FunctionRule, ...]
    row_filters: tuple[RowFilter, ...]
    max_rows: tuple[int, SourceLocation] | None
    statement_timeout_ms: int | None
    search_path: tuple[str, ...] | None
    tests: tuple[PolicyTest, ...]
    max_sql_bytes: int | None = None


def _section(allow_per_doc: list[tuple[R, ...]], deny_per_doc: list[tuple[R, ...]]) -> tuple[R, ...]:
    allow: tuple[R, ...] = ()
    for rules in allow_per_doc:
        if rules:
            allow = rules  # the most derived document with any allow rule wins
    denied = tuple(rule for rules in deny_per_doc for rule in rules)
    return allow + denied


def merge_documents(order: Sequence[PolicyDocument], top: Sequence[PolicyDocument]) -> PolicySpec:
    """Merge `order` (parents first); `top` are the documents named directly (name, tests)."""
    tables = _section(
        [tuple(r for r in d.tables if r.action == "allow") for d in order],
        [tuple(r for r in d.tables if r.action == "deny") for d in order],
    )
    columns = _section([d.column_allow for d in order], [d.column_deny for d in order])
    functions = _section([d.function_allow for d in order], [d.function_deny for d in order])
    spec = PolicySpec(
        name="+".join(d.name for d in top),
        files=tuple(d.file for d in reversed(order)),
        tables=tables,
        columns=columns,
        functions=functions,
        row_filters=tuple(f for d in order for f in d.row_filters),
        tests=tuple(t for d in top for t in d.tests),
    )
    changes: dict[str, object] = {}
    for d in order:  # later documents override earlier ones
        if d.statements is not None:
            changes["statements"], changes["statements_source"] = d.statements
        if d.explain_analyze is not None:
            changes["explain_analyze"] = d.explain_analyze
        if d.max_rows is not None:
            changes["max_rows"], changes["max_rows_source"] = d.max_rows
        if d.statement_timeout_ms is not None:
            changes["statement_timeout_ms"] = d.statement_timeout_ms
        if d.max_sql_bytes is not None:
            changes["max_sql_bytes"] = d.max_sql_bytes
        if d.search_path is not None:
            changes["search_path"] = d.search_path
    # A parent's description describes the parent, so only the named documents' count.
    described = [d.description for d in top if d.description is not None]
    if described:
        changes["description"] = described[-1]
    return replace(spec, **changes)  # type: ignore[arg-type]
