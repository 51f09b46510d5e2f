"""Which physical columns a query reads, and what about its reads cannot be proven.

`column_reads` walks every scope of one vetted read-only query (sqlglot postgres tree whose
physical tables carry their resolved schema in `table.args["db"]`) and reports:

- `reads`: every column of a physical table used anywhere (select list, WHERE, JOIN ON and
  USING, GROUP BY, HAVING, ORDER BY, windows, subqueries, CTEs, LATERAL, set operations). A
  column used only to filter still leaks through the filtering, so it counts.
- `unprovable`: what the analysis cannot pin to named columns: `*` over a table the snapshot
  does not describe (or with no snapshot), whole-row references (`SELECT u FROM users u`,
  `row_to_json(u)`, `u.*` inside a call), unqualified names that could belong to several
  tables, and names no source provides.

Columns of derived tables and CTEs are counted where the physical table is read (inside
them), so a reference to a derived table's output needs no tracing: whatever it exposes was
already counted. pgmcp's own row-filter fences are read as the table they fence; their
policy-written conditions are not user reads.

With a snapshot, sqlglot's `qualify` expands stars and attributes every column; without one,
`pgmcp.policy.column_scopes` attributes what the query text alone proves.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.optimizer.normalize_identifiers import normalize_identifiers
from sqlglot.optimizer.qualify import qualify
from sqlglot.schema import MappingSchema

from pgmcp.policy.column_scopes import (
    ColumnReads,
    ColumnRef,
    Unprovable,
    UnprovableKind,
    analyse,
    physical_key,
    position,
)
from pgmcp.policy.fields import field_selections
from pgmcp.policy.messages import unresolved_name
from pgmcp.policy.rewrite import fence_table
from pgmcp.schema.snapshot import SchemaSnapshot

__all__ = [
    "ColumnReads", "ColumnRef", "Unprovable", "UnprovableKind", "column_reads", "physical_tables", "unfence",
]


# The start of the message of a column the snapshot cannot resolve (rules/columns.py: PGM304).
UNRESOLVED = "the schema cannot resolve a column"

def physical_tables(tree: exp.Expression) -> list[exp.Table]:
    """Every reference to a physical table in `tree` (table functions and CTE names excluded).

    A table counts as physical when it carries a schema (`db`), which the checker writes into
    every relation it resolved; CTE references never get one.
    """
    return [t for t in tree.find_all(exp.Table) if physical_key(t)]


def column_reads(tree: exp.Expression, snapshot: SchemaSnapshot | None) -> ColumnReads:
    """Every physical column `tree` reads, plus what cannot be proven (see the module doc)."""
    work = unfence(tree)
    normalize_identifiers(work, dialect="postgres")
    if snapshot is not None:
        _stash_star_positions(work)
        _row_fields_as_columns(work, snapshot)
        qualified = work.copy()
        mapping: dict[str, object] = dict(snapshot.qualify_schema())
        # The snapshot holds names as PostgreSQL stores them; normalising them again would
        # fold "Accounts" to accounts. The query's own identifiers were folded above.
        try:
            qualify(
                qualified,
                schema=MappingSchema(mapping, dialect="postgres", normalize=False),
                dialect="postgres",
                validate_qualify_columns=True,
                identify=False,
                quote_identifiers=False,
            )
        except SqlglotError as err:
            found = analyse(work, qualified=False)
            name = unresolved_name(err)
            problem = Unprovable(
                kind="unknown_column",
                tables=(),
                message=f"{UNRESOLVED}: {name.message}",
                column=name.column,
                line=name.line,
                column_pos=name.column_pos,
            )
            return ColumnReads(found.reads, (problem, *found.unprovable))
        return analyse(qualified, qualified=True)
    return analyse(work, qualified=False)


def unfence(tree: exp.Expression) -> exp.Expression:
    """A copy of `tree` with each pgmcp fence replaced by the plain table it fences."""
    out = tree.copy()
    for sub in list(out.find_all(exp.Subquery)):
        table = fence_table(sub)
        if table is None:
            continue
        plain = table.copy()
        plain.set("alias", sub.args["alias"].copy())
        sub.replace(plain)
    return out


def _row_fields_as_columns(tree: exp.Expression, snapshot: SchemaSnapshot) -> None:
    # `(u).name` proven to select the column name of FROM item u reads exactly u.name (not
    # every column, as the whole-row reference `u` alone would): judge it as that column.
    for found in field_selections(tree, snapshot).values():
        if found.row_alias is not None:
            base = found.node.this.unnest()
            table = base.this.copy() if isinstance(base, exp.Column) else exp.to_identifier(found.row_alias)
            found.node.replace(exp.Column(this=found.node.expression.copy(), table=table))


def _stash_star_positions(tree: exp.Expression) -> None:
    # qualify replaces `*` by generated columns without positions; remember where the star was
    # so that a denied column reached through it can still be pointed at.
    for select in tree.find_all(exp.Select):
        for projection in select.expressions:
            if isinstance(projection, exp.Star) or (
                isinstance(projection, exp.Column) and isinstance(projection.this, exp.Star)
            ):
                select.meta["pgmcp_star"] = position(projection)
                break
