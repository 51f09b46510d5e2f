"""Policy rules that match nothing in a live schema: most often a typo that protects nothing.

`columns.deny: ["hr.employee.ssn"]` (the table is `employees`) and `"hr.audit_secret": deny`
are valid documents that hide nothing: the SSNs stay visible, and `check-config --connect`
would say "ok". Every table glob, column glob and row-filter table of a policy is matched here
against a snapshot; the ones that match no relation (or column) are reported with a
did-you-mean when one is close (`pgmcp.policy.suggest`).

Not reported: rules of the shipped policies (written for every database, e.g. baseline's
`pg_catalog.*`), and table rules about the system schemas (`pg_*`, `information_schema`),
which introspection leaves out. A snapshot holds only what the connecting role may read;
the caller passes every relation and column the catalog knows (`existing_tables`,
`existing_columns`: pg_class and pg_attribute are readable by every role), so a deny rule
about a relation the grants already hide (as `pgmcp policy grants` advises) is not a typo.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from pgmcp.documents.resources import policies_dir
from pgmcp.errors import SourceLocation
from pgmcp.policy.spec import PolicySpec
from pgmcp.policy.suggest import did_you_mean
from pgmcp.schema.snapshot import SchemaSnapshot

_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class UnmatchedRule:
    """One rule that matches nothing: its section (`tables`, `columns.deny`, `row_filters`...),
    its pattern, where it was written, and a message saying so with what it may have meant."""

    section: str
    pattern: str
    source: SourceLocation | None
    message: str


def _shipped(source: SourceLocation | None) -> bool:
    if source is None:
        return True
    try:
        return Path(source.file).resolve().parent == policies_dir().resolve()
    except OSError:
        return False


def _system_pattern(pattern: str) -> bool:
    schema = pattern.split(".", 1)[0]
    return not (_GLOB_CHARS & set(schema)) and (schema.startswith("pg_") or schema == "information_schema")


def _hint(pattern: str, names: list[str]) -> str:
    return "" if _GLOB_CHARS & set(pattern) else did_you_mean(pattern, names)


def unmatched_rules(
    spec: PolicySpec, snapshot: SchemaSnapshot, *, existing_tables: Iterable[str] = (),
    existing_columns: Iterable[str] = (),
) -> list[UnmatchedRule]:
    """Every table rule, column rule and row filter of `spec` that matches nothing in `snapshot`
    nor among the `existing_*` names ("schema.table", "schema.table.column") of the catalog."""
    tables = sorted({r.qualified_name for r in snapshot.relations} | set(existing_tables))
    columns = sorted({f"{r.qualified_name}.{c.name}" for r in snapshot.relations for c in r.columns}
                     | set(existing_columns))
    out: list[UnmatchedRule] = []
    for table_rule in spec.tables:
        if _shipped(table_rule.source) or _system_pattern(table_rule.pattern):
            continue
        if not any(fnmatchcase(name, table_rule.pattern) for name in tables):
            out.append(UnmatchedRule(
                "tables", table_rule.pattern, table_rule.source,
                f'{table_rule.action} rule "{table_rule.pattern}" matches no relation in the live schema'
                f"{_hint(table_rule.pattern, tables)}",
            ))
    for column_rule in spec.columns:
        if _shipped(column_rule.source) or _system_pattern(column_rule.pattern):
            continue
        if not any(fnmatchcase(name, column_rule.pattern) for name in columns):
            out.append(UnmatchedRule(
                f"columns.{column_rule.action}", column_rule.pattern, column_rule.source,
                f'"{column_rule.pattern}" matches no column in the live schema{_hint(column_rule.pattern, columns)}',
            ))
    for row_filter in spec.row_filters:
        if _shipped(row_filter.source) or row_filter.table in tables:
            continue
        out.append(UnmatchedRule(
            "row_filters", row_filter.table, row_filter.source,
            f'row filter table "{row_filter.table}" is not in the live schema{did_you_mean(row_filter.table, tables)}',
        ))
    return out
