"""A policy document after loading and `extends` resolution: plain frozen values.

`pgmcp.policy.document` builds a `PolicySpec` from YAML (validated against
`schemas/policy.schema.json`); `pgmcp.policy.compiler` turns it into a `CompiledPolicy`.
Every rule keeps the `SourceLocation` it was written at, so a verdict can say which line of
which file decided it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pgmcp.errors import SourceLocation

DEFAULT_MAX_SQL_BYTES = 100_000
StatementKind = Literal["select", "explain"]
Action = Literal["allow", "deny"]


@dataclass(frozen=True)
class TableRule:
    """`tables: {"public.*": allow}`: a glob over schema-qualified relation names."""

    pattern: str
    action: Action
    source: SourceLocation


@dataclass(frozen=True)
class ColumnRule:
    """`columns: {deny: ["public.users.password_hash", "*.*.ssn"]}`: a glob over schema.table.column."""

    pattern: str
    action: Action
    source: SourceLocation


@dataclass(frozen=True)
class RowFilter:
    """`row_filters: {public.orders: "tenant_id = 1"}`: a boolean SQL condition over the table's columns."""

    table: str  # schema-qualified, as written (globs not allowed)
    condition: str
    source: SourceLocation


@dataclass(frozen=True)
class FunctionRule:
    """`functions: {allow: ["st_*"]}`: a glob over function names (bare or schema-qualified)."""

    pattern: str
    action: Action
    source: SourceLocation


@dataclass(frozen=True)
class PolicyTest:
    """One entry of a policy's `tests:` list (run by `pgmcp policy test`)."""

    sql: str
    expect: Action
    rules: tuple[str, ...] = ()
    rows: tuple[tuple[object, ...], ...] | None = None
    source: SourceLocation | None = None
    # Claims bound into claim-bound row filters for this test (None: `policy test --claims`).
    claims: dict[str, Any] | None = field(default=None, hash=False)


@dataclass(frozen=True)
class PolicySpec:
    """One effective policy: the document merged with everything it extends.

    Merge rules for `extends` (see `pgmcp.policy.merge`): deny rules and row filters
    accumulate, parents first; the allow rules of a section (tables, columns, functions) come
    from the most derived document that declares any allow rule in it; scalar settings
    (statements, explain_analyze, limits, search_path) are taken from the most derived
    document that sets them. Deny always wins over allow at check time, whatever the order.
    """

    name: str
    files: tuple[str, ...]  # every file that contributed, most derived first
    statements: frozenset[StatementKind] = frozenset({"select"})
    statements_source: SourceLocation | None = None
    explain_analyze: bool = False
    tables: tuple[TableRule, ...] = ()
    columns: tuple[ColumnRule, ...] = ()
    row_filters: tuple[RowFilter, ...] = ()
    functions: tuple[FunctionRule, ...] = ()
    # Deny every built-in function in the dangerous set (always on; kept as a flag so the
    # effective policy can show it).
    deny_dangerous_functions: bool = True
    max_rows: int | None = None
    max_rows_source: SourceLocation | None = None
    statement_timeout_ms: int | None = None
    # The longest statement the checker parses (bytes of UTF-8); longer ones are refused (PGM007).
    max_sql_bytes: int = DEFAULT_MAX_SQL_BYTES
    search_path: tuple[str, ...] = ("public",)
    description: str = ""
    tests: tuple[PolicyTest, ...] = field(default=(), compare=False)
