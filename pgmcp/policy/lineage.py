"""Where a relation's rows come from, per the schema snapshot: what a view really reads, and
which tables a child table's rows also belong to.

A view (or materialized view) over a view reads whatever the inner view reads: the snapshot
records only direct dependencies (pg_depend of the rewrite rule), so they are followed here
to the end. An inheritance child or partition holds rows that a scan of each ancestor
returns: they are the ancestor's rows, under the ancestor's table, column and row rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from pgmcp.schema.snapshot import SchemaSnapshot

TableKey = tuple[str, str]
ColumnKey = tuple[str, str, str]

_VIEW_KINDS = ("view", "materialized_view")


@dataclass(frozen=True)
class ViewReads:
    """Every relation and column a view reads, through nested views (the views included)."""

    tables: tuple[TableKey, ...]
    columns: tuple[ColumnKey, ...]


def view_reads(snapshot: SchemaSnapshot, schema: str, name: str) -> ViewReads:
    """What view `schema.name` reads, transitively; empty for a relation that is not a view."""
    tables: dict[TableKey, None] = {}
    columns: dict[ColumnKey, None] = {}
    seen: set[TableKey] = set()
    stack: list[TableKey] = [(schema, name)]
    while stack:
        key = stack.pop()
        if key in seen:
            continue
        seen.add(key)
        info = snapshot.relation(*key)
        if info is None or info.kind not in _VIEW_KINDS:
            continue
        for dep in info.depends_on:
            tables[dep] = None
            stack.append(dep)
        for col in info.depends_on_columns:
            columns[col] = None
    return ViewReads(tuple(tables), tuple(columns))


def ancestors(snapshot: SchemaSnapshot | None, schema: str, name: str) -> tuple[TableKey, ...]:
    """The tables `schema.name` inherits from (or is a partition of), nearest first."""
    if snapshot is None:
        return ()
    info = snapshot.relation(schema, name)
    return info.inherits_from if info is not None else ()
