"""`SchemaSnapshot`: what one database contains, as a frozen value.

Built by `pgmcp.schema.introspect` from the catalogs; read by the policy engine (star
expansion, view dependencies, known functions) and by the prompt builder (through the
policy-filtered view). Names are stored as PostgreSQL stores them (folded, unquoted).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

RelationKind = Literal["table", "view", "materialized_view", "foreign_table", "partitioned_table", "sequence"]
Volatility = Literal["immutable", "stable", "volatile"]


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str  # format_type() text, e.g. "character varying(200)"
    nullable: bool = True
    default: str | None = None
    comment: str | None = None
    # Whether the introspecting role may SELECT it. PostgreSQL expands `*` and whole-row
    # references over every column and then checks privileges, so the checker sees them all;
    # the filtered view (what the model is shown) keeps only readable ones.
    readable: bool = True


@dataclass(frozen=True)
class ForeignKey:
    name: str
    columns: tuple[str, ...]
    ref_schema: str
    ref_table: str
    ref_columns: tuple[str, ...]


@dataclass(frozen=True)
class IndexInfo:
    name: str
    definition: str  # pg_get_indexdef()
    unique: bool = False
    primary: bool = False
    # Every column the index reads: key and INCLUDE columns, and those its expressions and
    # predicate mention (so a filtered view can drop an index over a hidden column).
    columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class RelationInfo:
    schema: str
    name: str
    kind: RelationKind
    columns: tuple[ColumnInfo, ...]
    comment: str | None = None
    primary_key: tuple[str, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = ()
    indexes: tuple[IndexInfo, ...] = ()
    row_estimate: int | None = None
    # For views and materialized views: the relations (schema, name) they read.
    depends_on: tuple[tuple[str, str], ...] = ()
    # For views: the (schema, table, column) triples they read.
    depends_on_columns: tuple[tuple[str, str, str], ...] = ()
    # For inheritance children and partitions: every ancestor (schema, name), parents first.
    # A scan of an ancestor returns this relation's rows, so they are the ancestor's rows too.
    inherits_from: tuple[tuple[str, str], ...] = ()
    # For views: `WITH (security_invoker)` (PostgreSQL 15+), so the view reads with the
    # privileges and row-level security of whoever queries it, not of its owner.
    security_invoker: bool = False

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"

    def column(self, name: str) -> ColumnInfo | None:
        for col in self.columns:
            if col.name == name:
                return col
        return None


@dataclass(frozen=True)
class EnumType:
    schema: str
    name: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class CompositeType:
    """A standalone composite type (CREATE TYPE ... AS (...)) and its fields, in order.

    `formatted` is the type's name as `format_type` writes it (schema-qualified, quoted where
    needed), which is how a column of this type spells its `ColumnInfo.type`.
    """

    schema: str
    name: str
    formatted: str
    fields: tuple[ColumnInfo, ...]

    def get_field(self, name: str) -> ColumnInfo | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None


@dataclass(frozen=True)
class FunctionInfo:
    schema: str
    name: str
    volatility: Volatility
    arguments: str = ""  # pg_get_function_identity_arguments()
    returns: str = ""
    returns_set: bool = False


@dataclass(frozen=True)
class SchemaSnapshot:
    """Every relation, enum, composite type and (non-system) function of one database at one moment."""

    database: str
    relations: tuple[RelationInfo, ...] = ()
    enums: tuple[EnumType, ...] = ()
    functions: tuple[FunctionInfo, ...] = ()
    taken_at: float = 0.0  # time.time() when introspected
    catalog_queries: int = 0  # how many catalog queries introspection took
    extras: Mapping[str, str] = field(default_factory=dict)
    composites: tuple[CompositeType, ...] = ()

    @cached_property
    def _by_name(self) -> dict[tuple[str, str], RelationInfo]:
        return {(r.schema, r.name): r for r in self.relations}

    def relation(self, schema: str, name: str) -> RelationInfo | None:
        return self._by_name.get((schema, name))

    @cached_property
    def reg_columns(self) -> dict[tuple[str, str, str], str]:
        """(schema, relation, column) -> "regclass" or "regtype", for every column of that type
        (or an array of it): a value of such a column stands for a relation or type name."""
        found: dict[tuple[str, str, str], str] = {}
        for r in self.relations:
            for c in r.columns:
                base = c.type.removesuffix("[]").rsplit(".", 1)[-1]
                if base in ("regclass", "regtype"):
                    found[(r.schema, r.name, c.name)] = base
        return found

    @cached_property
    def _composites(self) -> dict[str, CompositeType]:
        return {c.formatted: c for c in self.composites}

    def composite(self, type_text: str) -> CompositeType | None:
        """The composite type a column of type `type_text` (format_type text) holds, if known."""
        return self._composites.get(type_text)

    def schemas(self) -> frozenset[str]:
        return frozenset(r.schema for r in self.relations)

    def qualify_schema(self) -> dict[str, dict[str, dict[str, str]]]:
        """The nested mapping sqlglot's `qualify` wants: {schema: {table: {column: type}}}."""
        out: dict[str, dict[str, dict[str, str]]] = {}
        for rel in self.relations:
            out.setdefault(rel.schema, {})[rel.name] = {c.name: c.type for c in rel.columns}
        return out
