"""Relation names resolved as PostgreSQL resolves them (RangeVarGetRelidExtended, namespace.c).

An unqualified relation or type name resolves in pg_catalog first (when pg_catalog has it),
then along the policy's pinned search_path (with a snapshot: the first schema that has it).
Unquoted identifiers fold to lower case, quoted ones stay as written. The resolved, folded
schema and name are written back into the tree, so that what runs is what was checked.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from pgmcp.policy.functions import pg_catalog_relations
from pgmcp.schema.snapshot import SchemaSnapshot

TableKey = tuple[str, str]


@dataclass(frozen=True)
class RelationRef:
    """One physical relation read: the node, the schema written into the tree, every candidate.

    `candidates` holds every schema the name might resolve to at run time (more than one only
    without a snapshot); the checker requires all of them to be allowed. `fenced` is True for
    the table inside a row-filter fence the checker itself wrote (known by identity).
    """

    node: exp.Table
    schema: str
    name: str
    candidates: tuple[str, ...]
    fenced: bool = False


@dataclass(frozen=True)
class Unresolved:
    node: exp.Expr
    reason: str


def fold(ident: exp.Expr | str | None) -> str:
    """PostgreSQL case folding: unquoted identifiers become lower case, quoted stay as written."""
    if ident is None:
        return ""
    if isinstance(ident, str):
        return ident.lower()
    if isinstance(ident, exp.Identifier):
        text = str(ident.this)
        return text if ident.quoted else text.lower()
    return ident.name.lower()


def plain(name: str) -> bool:
    """Whether `name` can be written unquoted (lower case letters, digits, underscores)."""
    return name.replace("_", "a").isalnum() and not name[:1].isdigit() and name == name.lower()


def candidate_schemas(
    name: str, schema: str | None, search_path: tuple[str, ...], snapshot: SchemaSnapshot | None
) -> tuple[str, ...]:
    """The schemas an (optionally qualified) relation name may resolve to; () when it resolves nowhere."""
    if schema is not None:
        return (schema,)
    if name in pg_catalog_relations() or (snapshot is not None and snapshot.relation("pg_catalog", name)):
        return ("pg_catalog",)
    if snapshot is not None:
        found = [s for s in search_path if snapshot.relation(s, name) is not None]
        return (found[0],) if found else ()
    # Without a snapshot the name may resolve in any schema of the path (or, for a pg_ name
    # newer than the bundled catalog list, in pg_catalog): every one is checked.
    return (("pg_catalog",) if name.startswith("pg_") else ()) + tuple(search_path)


def resolve_table(
    table: exp.Table, search_path: tuple[str, ...], snapshot: SchemaSnapshot | None, *, fenced: bool = False
) -> RelationRef | Unresolved:
    """Resolve the physical relation `table` names and write its folded schema and name into it."""
    if not isinstance(table.this, exp.Identifier):
        return Unresolved(table, "the relation reference has an unsupported shape")
    if table.args.get("catalog"):
        return Unresolved(table, "cross-database references (db.schema.table) are not supported")
    name = fold(table.this)
    db = table.args.get("db")
    schema = fold(db) if db is not None else None
    candidates = candidate_schemas(name, schema, search_path, snapshot)
    if not candidates:
        return Unresolved(table, f'relation "{name}" does not exist in the search path {", ".join(search_path)}')
    _write(table, "db", candidates[0])
    _write(table, "this", name)
    return RelationRef(table, candidates[0], name, candidates, fenced)


def _write(table: exp.Table, key: str, folded: str) -> None:
    old = table.args.get(key)
    quoted = (isinstance(old, exp.Identifier) and bool(old.quoted)) or not plain(folded)
    if isinstance(old, exp.Identifier) and str(old.this) == folded and bool(old.quoted) == quoted:
        return
    new = exp.to_identifier(folded, quoted=quoted)
    if isinstance(old, exp.Identifier) and old._meta:
        new.meta.update(old.meta)
    table.set(key, new)
