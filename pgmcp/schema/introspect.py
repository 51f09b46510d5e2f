"""Build a `SchemaSnapshot` from PostgreSQL's catalogs in a fixed number of queries.

Seven catalog queries, whatever the size of the database (never one per table), inside one
read-only REPEATABLE READ transaction so that they all see the same catalog state. The
transaction pins `search_path` to `pg_catalog`, which makes `format_type`, `pg_get_expr` and
`pg_get_function_result` schema-qualify every user type (`shop.order_status`, not a name that
depends on whoever introspected).

What is shown is what the connecting role could read: relations in schemas it has USAGE on
and on which it holds SELECT on the table or on at least one column (with all their columns,
each marked `readable` or not: PostgreSQL expands `*` over every column before it checks
column privileges, so the checker must see them all), enum and composite types it may use,
and functions it may EXECUTE. System schemas (`pg_*`,
`information_schema`) are left out; view dependencies still name them, because a view that
reads `pg_catalog.pg_authid` is exactly what the policy engine must see.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any, Literal, cast

import asyncpg

from pgmcp.errors import DatabaseError, DatabaseUnavailable, PermissionDenied
from pgmcp.schema.snapshot import (
    ColumnInfo,
    CompositeType,
    EnumType,
    ForeignKey,
    FunctionInfo,
    IndexInfo,
    RelationInfo,
    RelationKind,
    SchemaSnapshot,
    Volatility,
)

_USER_SCHEMA = "n.nspname NOT LIKE 'pg\\_%' AND n.nspname <> 'information_schema'"
# Every relation kind a query can read: tables, views, materialized views, foreign tables,
# partitioned tables and sequences (pg_class.relkind, src/include/catalog/pg_class.h).
_RELKINDS = "c.relkind IN ('r', 'v', 'm', 'f', 'p', 'S')"
# The relations a snapshot describes; every per-relation query repeats this filter.
_VISIBLE = f"""
    {_RELKINDS} AND {_USER_SCHEMA}
    AND has_schema_privilege(n.oid, 'USAGE') AND has_any_column_privilege(c.oid, 'SELECT')
"""
# `scope="all"`: every relation and column whatever the connected role may read (for
# `pgmcp policy grants` and the privilege audit, which judge what a role should read).
_EVERY = f"{_RELKINDS} AND {_USER_SCHEMA}"
_COLUMN_VISIBLE = "has_column_privilege(a.attrelid, a.attnum, 'SELECT')"
_FROM_VISIBLE = "pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"

RELATIONS = f"""
SELECT c.oid, n.nspname, c.relname, c.relkind::text AS relkind, d.description,
       c.reltuples::float8 AS reltuples,
       EXISTS (SELECT 1 FROM pg_options_to_table(c.reloptions) o
               WHERE CASE WHEN o.option_name = 'security_invoker' THEN o.option_value::bool END)
         AS security_invoker,
       ARRAY(WITH RECURSIVE up(oid, depth) AS (
               SELECT i.inhparent, 1 FROM pg_inherits i WHERE i.inhrelid = c.oid
               UNION
               SELECT i.inhparent, up.depth + 1 FROM pg_inherits i JOIN up ON i.inhrelid = up.oid)
             SELECT ARRAY[pn.nspname::text, pc.relname::text]
             FROM up JOIN pg_class pc ON pc.oid = up.oid JOIN pg_namespace pn ON pn.oid = pc.relnamespace
             ORDER BY up.depth, pn.nspname, pc.relname) AS ancestors
FROM {_FROM_VISIBLE}
LEFT JOIN pg_description d
  ON d.objoid = c.oid AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0
WHERE {_VISIBLE}
ORDER BY n.nspname, c.relname
"""

COLUMNS = f"""
SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull,
       pg_get_expr(ad.adbin, ad.adrelid) AS default, d.description, {_COLUMN_VISIBLE} AS readable
FROM {_FROM_VISIBLE}
JOIN pg_attribute a ON a.attrelid = c.oid
LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
LEFT JOIN pg_description d
  ON d.objoid = a.attrelid AND d.classoid = 'pg_class'::regclass AND d.objsubid = a.attnum
WHERE {_VISIBLE} AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""

# Primary and foreign keys with their columns in key order. A foreign key that references a
# partitioned table is copied by PostgreSQL once per referenced partition, on the same
# referencing table (conparentid set, parent on the same relation): those copies are noise.
CONSTRAINTS = f"""
SELECT con.conrelid, con.conname, con.contype::text AS contype,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(num, ord)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.num
             ORDER BY k.ord) AS cols,
       rn.nspname AS ref_schema, rc.relname AS ref_table,
       ARRAY(SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY k(num, ord)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.num
             ORDER BY k.ord) AS ref_cols
FROM {_FROM_VISIBLE}
JOIN pg_constraint con ON con.conrelid = c.oid
LEFT JOIN pg_class rc ON rc.oid = con.confrelid
LEFT JOIN pg_namespace rn ON rn.oid = rc.relnamespace
WHERE {_VISIBLE} AND con.contype IN ('p', 'f')
  AND (con.contype = 'p' OR con.conparentid = 0
       OR (SELECT pc.conrelid FROM pg_constraint pc WHERE pc.oid = con.conparentid) <> con.conrelid)
ORDER BY con.conrelid, con.conname
"""

# Index columns: key and INCLUDE columns from indkey, plus the columns that expressions and
# predicates read (recorded in pg_depend; constraint indexes have none there, but their
# columns are all in indkey).
INDEXES = f"""
SELECT i.indrelid, ic.relname, pg_get_indexdef(i.indexrelid) AS definition,
       i.indisunique, i.indisprimary,
       ARRAY(SELECT a.attname FROM pg_attribute a
             WHERE a.attrelid = i.indrelid AND a.attnum > 0
               AND (a.attnum = ANY (i.indkey::int2[])
                    OR a.attnum IN (SELECT dp.refobjsubid FROM pg_depend dp
                                    WHERE dp.classid = 'pg_class'::regclass
                                      AND dp.objid = i.indexrelid
                                      AND dp.refclassid = 'pg_class'::regclass
                                      AND dp.refobjid = i.indrelid))
             ORDER BY a.attnum) AS cols
FROM {_FROM_VISIBLE}
JOIN pg_index i ON i.indrelid = c.oid
JOIN pg_class ic ON ic.oid = i.indexrelid
WHERE {_VISIBLE}
ORDER BY i.indrelid, ic.relname
"""

# Enum types with their labels and standalone composite types (CREATE TYPE ... AS (...)) with
# their fields, in one query: the checker needs the fields to tell a field selection
# `(address).city` from the call city(address).
TYPES = f"""
SELECT n.nspname, t.typname, t.typtype::text AS typtype, format_type(t.oid, NULL) AS formatted,
       ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid
             ORDER BY e.enumsortorder) AS labels,
       ARRAY(SELECT ARRAY[a.attname::text, format_type(a.atttypid, a.atttypmod)] FROM pg_attribute a
             WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attnum) AS fields
FROM pg_type t
JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE {_USER_SCHEMA} AND has_schema_privilege(n.oid, 'USAGE') AND has_type_privilege(t.oid, 'USAGE')
  AND ((t.typtype = 'e' AND EXISTS (SELECT 1 FROM pg_enum e WHERE e.enumtypid = t.oid))
       OR (t.typtype = 'c' AND (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c'))
ORDER BY n.nspname, t.typname
"""

# What each view and materialized view reads: its rewrite rule depends on whole relations
# (refobjsubid = 0) and on single columns (refobjsubid > 0).
VIEW_DEPENDENCIES = f"""
SELECT DISTINCT r.ev_class, rn.nspname AS ref_schema, rc.relname AS ref_table, a.attname AS ref_column
FROM {_FROM_VISIBLE}
JOIN pg_rewrite r ON r.ev_class = c.oid
JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> r.ev_class
JOIN pg_class rc ON rc.oid = d.refobjid
JOIN pg_namespace rn ON rn.oid = rc.relnamespace
LEFT JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid AND d.refobjsubid > 0
WHERE {_VISIBLE} AND c.relkind IN ('v', 'm')
ORDER BY r.ev_class, rn.nspname, rc.relname, a.attname
"""

FUNCTIONS = f"""
SELECT n.nspname, p.proname, p.provolatile::text AS provolatile,
       pg_get_function_identity_arguments(p.oid) AS args,
       pg_get_function_result(p.oid) AS result, p.proretset
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE {_USER_SCHEMA} AND p.prokind IN ('f', 'a', 'w')
  AND has_schema_privilege(n.oid, 'USAGE') AND has_function_privilege(p.oid, 'EXECUTE')
ORDER BY n.nspname, p.proname, args
"""

CATALOG_QUERIES = (RELATIONS, COLUMNS, CONSTRAINTS, INDEXES, TYPES, VIEW_DEPENDENCIES, FUNCTIONS)
Scope = Literal["readable", "all"]
_ALL_QUERIES = tuple(
    q.replace(_VISIBLE, _EVERY) for q in CATALOG_QUERIES
)

_KINDS: dict[str, RelationKind] = {
    "r": "table", "v": "view", "m": "materialized_view", "f": "foreign_table", "p": "partitioned_table",
    "S": "sequence",
}
_VOLATILITY: dict[str, Volatility] = {"i": "immutable", "s": "stable", "v": "volatile"}
Row = Any  # asyncpg.Record (asyncpg ships no type information)


async def introspect(conn: asyncpg.Connection, database: str, *, scope: Scope = "readable") -> SchemaSnapshot:
    """Read what `conn`'s role can see of its database into a `SchemaSnapshot` named `database`
    (with `scope="all"`: every relation and column of the user schemas, readable or not).

    Runs the `CATALOG_QUERIES` (their count is recorded in `snapshot.catalog_queries`) in one
    read-only transaction, whatever the number of tables. asyncpg failures are
    translated: a lost or refused connection raises `DatabaseUnavailable`, a missing catalog
    privilege `PermissionDenied`, anything else `DatabaseError`.
    """
    taken_at = time.time()
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            await conn.execute("SET LOCAL search_path = pg_catalog")
            queries = CATALOG_QUERIES if scope == "readable" else _ALL_QUERIES
            results = [cast(list[Row], await conn.fetch(sql)) for sql in queries]
    except asyncpg.InsufficientPrivilegeError as exc:
        raise PermissionDenied(
            f"cannot read the catalogs of {database!r}: {exc}", sqlstate=exc.sqlstate
        ) from exc
    except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, OSError) as exc:
        raise DatabaseUnavailable(f"lost the connection to {database!r} while introspecting: {exc}") from exc
    except asyncpg.PostgresError as exc:
        raise DatabaseError(f"introspecting {database!r} failed: {exc}", sqlstate=exc.sqlstate) from exc
    relations, columns, constraints, indexes, types, dependencies, functions = results
    return SchemaSnapshot(
        database=database,
        relations=_build_relations(relations, columns, constraints, indexes, dependencies),
        enums=tuple(EnumType(r["nspname"], r["typname"], tuple(r["labels"])) for r in types if r["typtype"] == "e"),
        functions=tuple(_function(r) for r in functions),
        taken_at=taken_at,
        catalog_queries=len(results),
        composites=tuple(_composite(r) for r in types if r["typtype"] == "c"),
    )


async def introspect_dsn(dsn: str, database: str, *, timeout: float = 10.0) -> SchemaSnapshot:
    """Connect to `dsn`, introspect, disconnect: a loader for tools and tests without a pool.

    A server that cannot be reached (refused, timed out, starting up, database missing)
    raises `DatabaseUnavailable`. The DSN is never put in the message (it may hold a password).
    """
    try:
        # statement_cache_size=0: each query runs once per connection, caching buys nothing.
        conn = await asyncpg.connect(dsn, timeout=timeout, statement_cache_size=0)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise DatabaseUnavailable(
            f"cannot connect to database {database!r}: {type(exc).__name__}: {exc}",
            hint="check that the server is running and the connection settings are right",
        ) from exc
    try:
        return await introspect(conn, database)
    finally:
        await conn.close()


def _build_relations(
    relations: list[Row], columns: list[Row], constraints: list[Row], indexes: list[Row],
    dependencies: list[Row],
) -> tuple[RelationInfo, ...]:
    cols: defaultdict[int, list[ColumnInfo]] = defaultdict(list)
    for r in columns:
        cols[r["attrelid"]].append(
            ColumnInfo(r["attname"], r["type"], not r["attnotnull"], r["default"], r["description"], r["readable"])
        )
    pkeys: dict[int, tuple[str, ...]] = {}
    fkeys: defaultdict[int, list[ForeignKey]] = defaultdict(list)
    for r in constraints:
        if r["contype"] == "p":
            pkeys[r["conrelid"]] = tuple(r["cols"])
        else:
            fkeys[r["conrelid"]].append(ForeignKey(
                r["conname"], tuple(r["cols"]), r["ref_schema"], r["ref_table"], tuple(r["ref_cols"])
            ))
    idx: defaultdict[int, list[IndexInfo]] = defaultdict(list)
    for r in indexes:
        idx[r["indrelid"]].append(
            IndexInfo(r["relname"], r["definition"], r["indisunique"], r["indisprimary"], tuple(r["cols"]))
        )
    deps: defaultdict[int, dict[tuple[str, str], None]] = defaultdict(dict)
    dep_cols: defaultdict[int, list[tuple[str, str, str]]] = defaultdict(list)
    for r in dependencies:
        deps[r["ev_class"]][(r["ref_schema"], r["ref_table"])] = None
        if r["ref_column"] is not None:
            dep_cols[r["ev_class"]].append((r["ref_schema"], r["ref_table"], r["ref_column"]))
    out = []
    for r in relations:
        oid, kind = r["oid"], _KINDS[r["relkind"]]
        # reltuples is -1 for a table never vacuumed or analyzed (PostgreSQL 14+), and is
        # meaningless for views and partitioned parents.
        has_rows = kind in ("table", "materialized_view") and r["reltuples"] >= 0
        out.append(
            RelationInfo(
                schema=r["nspname"], name=r["relname"], kind=kind, columns=tuple(cols.get(oid, ())),
                comment=r["description"], primary_key=pkeys.get(oid, ()),
                foreign_keys=tuple(fkeys.get(oid, ())), indexes=tuple(idx.get(oid, ())),
                row_estimate=int(r["reltuples"]) if has_rows else None,
                depends_on=tuple(deps.get(oid, {})), depends_on_columns=tuple(dep_cols.get(oid, ())),
                inherits_from=_ancestors(r["ancestors"]),
                security_invoker=r["security_invoker"],
            )
        )
    return tuple(out)


def _ancestors(rows: list[list[str]] | None) -> tuple[tuple[str, str], ...]:
    # One (schema, name) per ancestor, nearest first; a table reached twice (multiple
    # inheritance) is named once.
    return tuple(dict.fromkeys((row[0], row[1]) for row in rows or ()))


def _composite(r: Row) -> CompositeType:
    fields = tuple(ColumnInfo(name, type_) for name, type_ in r["fields"] or ())
    return CompositeType(r["nspname"], r["typname"], r["formatted"], fields)


def _function(r: Row) -> FunctionInfo:
    result: str = r["result"] or ""
    # pg_get_function_result says "SETOF x"; returns_set already carries the SETOF.
    if r["proretset"] and result.startswith("SETOF "):
        result = result[len("SETOF "):]
    return FunctionInfo(
        schema=r["nspname"], name=r["proname"], volatility=_VOLATILITY[r["provolatile"]],
        arguments=r["args"] or "", returns=result, returns_set=r["proretset"],
    )
