"""The policy-filtered view of a snapshot: what the LLM and the user may be shown.

`filter_snapshot` removes every relation, column, key, index, dependency and function the
policy would refuse, so that nothing shown names a denied table or column. `describe` and
`render_text` turn a (filtered) snapshot into JSON-ready data and into compact text for
prompts and the `pgmcp://{db}/schema` resource; they show whatever snapshot they are given,
so give them a filtered one.

The policy is anything with the `VisibilityPolicy` methods (`CompiledPolicy` has them); this
module does not depend on how a policy decides.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Protocol

from pgmcp.schema.snapshot import (
    ColumnInfo,
    EnumType,
    ForeignKey,
    FunctionInfo,
    IndexInfo,
    RelationInfo,
    SchemaSnapshot,
)


class DecisionLike(Protocol):
    @property
    def allowed(self) -> bool: ...

    @property
    def explicit(self) -> bool: ...


class VisibilityPolicy(Protocol):
    """What filtering needs from a compiled policy."""

    def table_decision(self, schema: str, name: str) -> DecisionLike: ...

    def table_visible(self, schema: str, name: str) -> bool: ...

    def column_visible(self, schema: str, table: str, column: str) -> bool: ...

    def function_decision(self, schema: str | None, name: str) -> DecisionLike: ...

    def row_filter(self, schema: str, table: str) -> object | None: ...


def filter_snapshot(snapshot: SchemaSnapshot, policy: VisibilityPolicy) -> SchemaSnapshot:
    """`snapshot` without anything `policy` hides.

    Kept: relations the policy shows, and in them only visible columns the role may read; primary keys,
    foreign keys and indexes whose every column (and referenced table and column) is
    visible; dependencies on visible relations and columns. A view or materialized view
    that reads a hidden relation or column is hidden too, unless the policy allows it by
    name (no wildcard): the checker refuses it anyway (PGM204), and its columns may carry
    what it read. A row-filtered relation loses its row estimate (it counts rows the
    filter hides). Functions the policy refuses are dropped; enum types are kept only when
    a visible column uses them.
    """
    visible = {
        (r.schema, r.name) for r in snapshot.relations
        if policy.table_visible(r.schema, r.name) and not _reads_hidden(r, policy)
    }
    relations = tuple(
        _filter_relation(r, policy, visible) for r in snapshot.relations if (r.schema, r.name) in visible
    )
    return dataclasses.replace(
        snapshot,
        relations=relations,
        enums=_enums_used(snapshot.enums, relations),
        functions=tuple(f for f in snapshot.functions if policy.function_decision(f.schema, f.name).allowed),
    )


def _reads_hidden(rel: RelationInfo, policy: VisibilityPolicy) -> bool:
    if not rel.depends_on or policy.table_decision(rel.schema, rel.name).explicit:
        return False
    return any(not policy.table_visible(s, t) for s, t in rel.depends_on) or any(
        not policy.column_visible(s, t, c) for s, t, c in rel.depends_on_columns
    )


def _filter_relation(
    rel: RelationInfo, policy: VisibilityPolicy, visible: set[tuple[str, str]]
) -> RelationInfo:
    unreadable = {c.name for c in rel.columns if not c.readable}  # the role lacks the column privilege

    def shown(columns: Sequence[str], schema: str = rel.schema, table: str = rel.name) -> bool:
        own = (schema, table) == (rel.schema, rel.name)
        return all(policy.column_visible(schema, table, c) and not (own and c in unreadable) for c in columns)

    def fk_shown(fk: ForeignKey) -> bool:
        return (
            shown(fk.columns) and (fk.ref_schema, fk.ref_table) in visible
            and shown(fk.ref_columns, fk.ref_schema, fk.ref_table)
        )

    return dataclasses.replace(
        rel,
        columns=tuple(c for c in rel.columns if c.readable and policy.column_visible(rel.schema, rel.name, c.name)),
        primary_key=rel.primary_key if shown(rel.primary_key) else (),
        foreign_keys=tuple(fk for fk in rel.foreign_keys if fk_shown(fk)),
        # An index with no known columns might read anything: not shown.
        indexes=tuple(i for i in rel.indexes if i.columns and shown(i.columns)),
        depends_on=tuple(d for d in rel.depends_on if policy.table_visible(*d)),
        depends_on_columns=tuple(d for d in rel.depends_on_columns if policy.column_visible(*d)),
        row_estimate=None if policy.row_filter(rel.schema, rel.name) is not None else rel.row_estimate,
    )


def _enums_used(enums: Sequence[EnumType], relations: Sequence[RelationInfo]) -> tuple[EnumType, ...]:
    used = {c.type.rstrip("[]") for r in relations for c in r.columns}
    return tuple(e for e in enums if _type_names(e) & used)


def _type_names(enum: EnumType) -> set[str]:
    """The spellings format_type() may give the enum: each part quoted or not."""
    schemas = {enum.schema, _quoted(enum.schema)}
    names = {enum.name, _quoted(enum.name)}
    return {f"{s}.{n}" for s in schemas for n in names} | names


def _quoted(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


# -- describing ----------------------------------------------------------------------------


def select_relations(
    snapshot: SchemaSnapshot, tables: Sequence[str] | None
) -> tuple[list[RelationInfo], list[str]]:
    """The relations `tables` names ("schema.name", or "name" in any schema), and the unknown names.

    None selects every relation. Names are matched as stored, then case-folded.
    """
    if tables is None:
        return list(snapshot.relations), []
    found: dict[tuple[str, str], RelationInfo] = {}
    unknown: list[str] = []
    for wanted in tables:
        matches = _lookup(snapshot, wanted) or _lookup(snapshot, wanted.lower())
        if not matches:
            unknown.append(wanted)
        for rel in matches:
            found.setdefault((rel.schema, rel.name), rel)
    return list(found.values()), unknown


def _lookup(snapshot: SchemaSnapshot, wanted: str) -> list[RelationInfo]:
    if "." in wanted:
        schema, name = wanted.split(".", 1)
        rel = snapshot.relation(schema, name)
        return [rel] if rel is not None else []
    return [r for r in snapshot.relations if r.name == wanted]


def describe(snapshot: SchemaSnapshot, tables: Sequence[str] | None = None) -> dict[str, Any]:
    """A JSON-ready description of `snapshot`, whole or only the relations `tables` names.

    Keys: database, relations, enums (those the described columns use, or all), functions
    (only when describing everything), unknown (names in `tables` that matched nothing; a
    hidden relation is unknown, never "denied").
    """
    relations, unknown = select_relations(snapshot, tables)
    enums = snapshot.enums if tables is None else _enums_used(snapshot.enums, relations)
    out: dict[str, Any] = {
        "database": snapshot.database,
        "relations": [_relation_dict(r) for r in relations],
        "enums": [{"schema": e.schema, "name": e.name, "labels": list(e.labels)} for e in enums],
    }
    if tables is None:
        out["functions"] = [_function_dict(f) for f in snapshot.functions]
    out["unknown"] = unknown
    return out


def _relation_dict(rel: RelationInfo) -> dict[str, Any]:
    return {
        "schema": rel.schema,
        "name": rel.name,
        "kind": rel.kind,
        "comment": rel.comment,
        "row_estimate": rel.row_estimate,
        "columns": [_column_dict(c) for c in rel.columns],
        "primary_key": list(rel.primary_key),
        "foreign_keys": [
            {"name": fk.name, "columns": list(fk.columns), "references": f"{fk.ref_schema}.{fk.ref_table}",
             "ref_columns": list(fk.ref_columns)}
            for fk in rel.foreign_keys
        ],
        "indexes": [{"name": i.name, "definition": i.definition, "unique": i.unique, "primary": i.primary}
                    for i in rel.indexes],
        "depends_on": [f"{s}.{t}" for s, t in rel.depends_on],
    }


def _column_dict(col: ColumnInfo) -> dict[str, Any]:
    out = dataclasses.asdict(col)
    del out["readable"]  # a filtered snapshot shows readable columns only
    return out


def _function_dict(fn: FunctionInfo) -> dict[str, Any]:
    return {"schema": fn.schema, "name": fn.name, "arguments": fn.arguments, "returns": fn.returns,
            "returns_set": fn.returns_set, "volatility": fn.volatility}


# -- text ----------------------------------------------------------------------------------

_KIND_WORDS = {
    "table": "TABLE", "view": "VIEW", "materialized_view": "MATERIALIZED VIEW",
    "foreign_table": "FOREIGN TABLE", "partitioned_table": "PARTITIONED TABLE", "sequence": "SEQUENCE",
}


def render_text(snapshot: SchemaSnapshot, tables: Sequence[str] | None = None) -> str:
    """A compact, DDL-like text of `snapshot` (or of the relations `tables` names) for prompts."""
    relations, unknown = select_relations(snapshot, tables)
    lines = [f"-- database {snapshot.database}: {len(relations)} relations"]
    for rel in relations:
        lines += _relation_lines(rel)
    for enum in snapshot.enums if tables is None else _enums_used(snapshot.enums, relations):
        labels = ", ".join("'" + label.replace("'", "''") + "'" for label in enum.labels)
        lines.append(f"ENUM {enum.schema}.{enum.name}: {labels}")
    for fn in snapshot.functions if tables is None else ():
        setof = "SETOF " if fn.returns_set else ""
        lines.append(f"FUNCTION {fn.schema}.{fn.name}({fn.arguments}) RETURNS {setof}{fn.returns} "
                     f"{fn.volatility.upper()}")
    if unknown:
        lines.append(f"-- unknown: {', '.join(unknown)}")
    return "\n".join(lines) + "\n"


def _relation_lines(rel: RelationInfo) -> list[str]:
    head = f"{_KIND_WORDS[rel.kind]} {rel.qualified_name}"
    if rel.row_estimate is not None:
        head += f" (~{rel.row_estimate} rows)"
    if rel.depends_on:
        head += " reads " + ", ".join(f"{s}.{t}" for s, t in rel.depends_on)
    lines = [head + (f"  -- {_one_line(rel.comment)}" if rel.comment else "")]
    lines += [_column_line(c, c.name in rel.primary_key) for c in rel.columns]
    if len(rel.primary_key) > 1:
        lines.append(f"  PRIMARY KEY ({', '.join(rel.primary_key)})")
    for fk in rel.foreign_keys:
        lines.append(f"  FOREIGN KEY ({', '.join(fk.columns)}) REFERENCES "
                     f"{fk.ref_schema}.{fk.ref_table}({', '.join(fk.ref_columns)})")
    lines += [f"  {_index_text(i)}" for i in rel.indexes if not i.primary]
    return lines


def _column_line(col: ColumnInfo, in_pk: bool) -> str:
    text = f"  {col.name} {col.type}"
    if not col.nullable:
        text += " NOT NULL"
    if col.default is not None:
        text += f" DEFAULT {col.default}"
    if in_pk:
        text += " PK"
    return text + (f"  -- {_one_line(col.comment)}" if col.comment else "")


def _index_text(index: IndexInfo) -> str:
    # "CREATE UNIQUE INDEX x ON s.t USING btree (a, b) WHERE ..." -> "UNIQUE INDEX x btree (a, b) WHERE ..."
    _, _, method = index.definition.partition(" USING ")
    return f"{'UNIQUE ' if index.unique else ''}INDEX {index.name} {method or index.definition}"


def _one_line(text: str) -> str:
    return " ".join(text.split())
