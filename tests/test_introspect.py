"""Introspection against a real PostgreSQL: every part of the snapshot, privileges, query count."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from pgmcp.errors import DatabaseUnavailable
from pgmcp.schema.introspect import CATALOG_QUERIES, introspect
from pgmcp.schema.snapshot import ColumnInfo, EnumType, ForeignKey, FunctionInfo, SchemaSnapshot
from tests.conftest import TestDatabase, TestServer
from tests.schema_fixture import SHOP_SQL, dsn_as, snapshot_of

# Every other relation kind a query can read: a standalone sequence, a security-invoker view
# and a foreign table (a wrapper without handler: it exists in the catalogs, enough here).
KINDS_SQL = """
CREATE SEQUENCE shop.invoice_no START 100;
CREATE VIEW shop.paid_orders WITH (security_invoker = on) AS
    SELECT id, total FROM shop.orders WHERE status = 'paid';
CREATE FOREIGN DATA WRAPPER introspect_fdw;
CREATE SERVER introspect_remote FOREIGN DATA WRAPPER introspect_fdw;
CREATE FOREIGN TABLE shop.remote_orders (id bigint, total numeric) SERVER introspect_remote;
"""


@pytest.fixture(scope="module")
def shop(pg_database: TestDatabase) -> TestDatabase:
    pg_database.run_sql(SHOP_SQL + KINDS_SQL)
    return pg_database


@pytest.fixture(scope="module")
async def snap(shop: TestDatabase) -> SchemaSnapshot:
    return await snapshot_of(shop.dsn, "shop")


KINDS = [
    ("shop", "customers", "table"),
    ("shop", "orders", "table"),
    ("shop", "order_lines", "table"),
    ("hr", "employees", "table"),
    ("shop", "customer_orders", "view"),
    ("hr", "payroll", "view"),
    ("shop", "order_totals", "materialized_view"),
    ("shop", "events", "partitioned_table"),
    ("shop", "events_2024", "table"),
    # serial and identity columns own sequences; a standalone one too
    ("shop", "customers_id_seq", "sequence"),
    ("shop", "orders_id_seq", "sequence"),
    ("shop", "invoice_no", "sequence"),
    ("shop", "paid_orders", "view"),
    ("shop", "remote_orders", "foreign_table"),
]


def test_relations_and_kinds(snap: SchemaSnapshot) -> None:
    assert {(r.schema, r.name, r.kind) for r in snap.relations} == set(KINDS)
    seq = snap.relation("shop", "invoice_no")
    assert seq is not None and [c.name for c in seq.columns] == ["last_value", "log_cnt", "is_called"]
    assert [r.qualified_name for r in snap.relations if r.security_invoker] == ["shop.paid_orders"]
    assert snap.schemas() == {"shop", "hr"}  # no pg_catalog, information_schema, pg_toast
    assert snap.database == "shop"
    assert snap.taken_at > 0


def test_columns_types_nullability_defaults_comments(snap: SchemaSnapshot) -> None:
    customers = snap.relation("shop", "customers")
    assert customers is not None
    assert customers.comment == "People who buy"
    assert customers.columns == (
        ColumnInfo("id", "integer", False, "nextval('shop.customers_id_seq'::regclass)"),
        ColumnInfo("email", "text", False, None, "Login e-mail"),
        ColumnInfo("name", "character varying(200)", True),
        ColumnInfo("created_at", "timestamp with time zone", False, "now()"),
    )
    orders = snap.relation("shop", "orders")
    assert orders is not None
    # User types are schema-qualified whatever the connection's search_path.
    assert orders.column("status") == ColumnInfo(
        "status", "shop.order_status", False, "'new'::shop.order_status"
    )
    assert orders.column("total") == ColumnInfo("total", "numeric(12,2)")
    employees = snap.relation("hr", "employees")
    assert employees is not None and employees.comment is None
    salary = employees.column("salary")
    assert salary is not None and salary.comment == "Yearly, in EUR"


@pytest.mark.parametrize(
    ("schema", "table", "primary_key"),
    [("shop", "customers", ("id",)), ("shop", "order_lines", ("order_id", "line_no")),
     ("shop", "customer_orders", ()), ("shop", "events", ())],
)
def test_primary_keys(snap: SchemaSnapshot, schema: str, table: str, primary_key: tuple[str, ...]) -> None:
    rel = snap.relation(schema, table)
    assert rel is not None and rel.primary_key == primary_key


def test_foreign_keys(snap: SchemaSnapshot) -> None:
    def fks(schema: str, table: str) -> tuple[ForeignKey, ...]:
        rel = snap.relation(schema, table)
        assert rel is not None
        return rel.foreign_keys

    assert fks("shop", "orders") == (
        ForeignKey("orders_customer_id_fkey", ("customer_id",), "shop", "customers", ("id",)),
    )
    assert fks("shop", "order_lines") == (
        ForeignKey("order_lines_order_id_fkey", ("order_id",), "shop", "orders", ("id",)),
    )
    assert fks("hr", "employees") == (
        ForeignKey("employees_manager_id_fkey", ("manager_id",), "hr", "employees", ("id",)),
    )
    assert fks("shop", "customers") == ()


def test_indexes_with_the_columns_they_read(snap: SchemaSnapshot) -> None:
    orders = snap.relation("shop", "orders")
    assert orders is not None
    got = {i.name: (i.unique, i.primary, i.columns) for i in orders.indexes}
    assert got == {
        "orders_pkey": (True, True, ("id",)),
        "orders_customer_idx": (False, False, ("customer_id",)),
        "orders_noted_idx": (False, False, ("customer_id", "note")),  # predicate column too
        "orders_lower_note_idx": (False, False, ("note",)),  # expression column
    }
    by_name = {i.name: i for i in orders.indexes}
    assert by_name["orders_noted_idx"].definition == (
        "CREATE INDEX orders_noted_idx ON shop.orders USING btree (customer_id) WHERE (note IS NOT NULL)"
    )
    customers = snap.relation("shop", "customers")
    assert customers is not None
    unique = {i.name: i.unique for i in customers.indexes}
    assert unique == {"customers_pkey": True, "customers_email_key": True}


def test_enums_keep_label_order(snap: SchemaSnapshot) -> None:
    assert snap.enums == (EnumType("shop", "order_status", ("new", "paid", "shipped", "cancelled")),)


@pytest.mark.parametrize(
    ("schema", "table", "estimate"),
    [("shop", "customers", 50),  # analyzed
     ("shop", "orders", None),  # never analyzed: reltuples = -1
     ("shop", "customer_orders", None), ("shop", "events", None)],
)
def test_row_estimates(snap: SchemaSnapshot, schema: str, table: str, estimate: int | None) -> None:
    rel = snap.relation(schema, table)
    assert rel is not None and rel.row_estimate == estimate


def test_view_dependencies_name_relations_and_columns(snap: SchemaSnapshot) -> None:
    view = snap.relation("shop", "customer_orders")
    assert view is not None
    assert view.depends_on == (("shop", "customers"), ("shop", "orders"))
    assert set(view.depends_on_columns) == {
        ("shop", "customers", "id"), ("shop", "customers", "name"),
        ("shop", "orders", "customer_id"), ("shop", "orders", "total"),
    }
    matview = snap.relation("shop", "order_totals")
    assert matview is not None
    assert matview.depends_on == (("shop", "orders"),)
    assert set(matview.depends_on_columns) == {("shop", "orders", "customer_id"), ("shop", "orders", "total")}
    table = snap.relation("shop", "orders")
    assert table is not None and table.depends_on == () and table.depends_on_columns == ()


def test_functions_with_volatility(snap: SchemaSnapshot) -> None:
    assert snap.functions == (
        FunctionInfo("hr", "bump", "volatile", "", "void", False),
        FunctionInfo("hr", "team", "stable", "mgr integer", "hr.employees", True),
        FunctionInfo("shop", "net", "immutable", "amount numeric, rate numeric", "numeric", False),
        FunctionInfo("shop", "order_count", "stable", "cid integer", "bigint", False),
    )


@pytest.fixture(scope="module")
def analyst_role(shop: TestDatabase) -> Iterator[str]:
    role = f"analyst_{uuid.uuid4().hex[:8]}"
    shop.run_sql(
        f"CREATE ROLE {role} LOGIN; GRANT USAGE ON SCHEMA shop TO {role};"
        f"GRANT SELECT (name, created_at) ON shop.customers TO {role};"
        f"GRANT SELECT ON shop.customer_orders TO {role};"
        f"REVOKE EXECUTE ON FUNCTION shop.net(numeric, numeric) FROM PUBLIC;"
    )
    try:
        yield role
    finally:
        shop.run_sql(f"DROP OWNED BY {role}; DROP ROLE {role};")


async def test_only_what_the_role_may_read_is_shown(shop: TestDatabase, analyst_role: str) -> None:
    snap = await snapshot_of(dsn_as(shop.dsn, analyst_role), "shop")
    assert {r.qualified_name for r in snap.relations} == {"shop.customers", "shop.customer_orders"}
    customers = snap.relation("shop", "customers")
    assert customers is not None
    # Every column is listed (PostgreSQL expands * over all of them), each marked readable or not.
    assert [(c.name, c.readable) for c in customers.columns] == [
        ("id", False), ("email", False), ("name", True), ("created_at", True)]
    # No USAGE on hr: its functions are hidden; shop.net lost EXECUTE.
    assert [(f.schema, f.name) for f in snap.functions] == [("shop", "order_count")]
    assert [e.name for e in snap.enums] == ["order_status"]


class CountingConnection:
    """A real connection that counts the statements sent through it."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.fetches = 0

    def transaction(self, **kwargs: object) -> object:
        return self.conn.transaction(**kwargs)

    async def execute(self, sql: str) -> str:
        return str(await self.conn.execute(sql))

    async def fetch(self, sql: str) -> list[object]:
        self.fetches += 1
        return list(await self.conn.fetch(sql))


@pytest.fixture
async def sized_databases(pg_server: TestServer) -> AsyncIterator[dict[int, str]]:
    names = {}
    for tables in (3, 300):
        name = f"t_introspect_{tables}_{uuid.uuid4().hex[:8]}"
        pg_server.run_sql(f'CREATE DATABASE "{name}"')
        pg_server.run_sql(
            "".join(
                f"CREATE TABLE t{i} (id serial PRIMARY KEY, ref integer REFERENCES t0(id), a text, b date);"
                f"CREATE INDEX ON t{i} (a);"
                for i in range(tables)
            ),
            name,
        )
        names[tables] = name
    yield names
    for name in names.values():
        pg_server.run_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_query_count_does_not_grow_with_the_database(
    pg_server: TestServer, sized_databases: dict[int, str]
) -> None:
    counts = {}
    for tables, name in sized_databases.items():
        conn = await asyncpg.connect(pg_server.dsn(name))
        try:
            counting = CountingConnection(conn)
            snap = await introspect(counting, name)  # type: ignore[arg-type]
        finally:
            await conn.close()
        # each table and the sequence of its serial column
        assert len([r for r in snap.relations if r.kind == "table"]) == tables
        assert len([r for r in snap.relations if r.kind == "sequence"]) == tables
        assert snap.catalog_queries == counting.fetches
        counts[tables] = counting.fetches
    assert counts[3] == counts[300] == len(CATALOG_QUERIES)


async def test_a_closed_connection_is_reported_as_unavailable(shop: TestDatabase) -> None:
    conn = await asyncpg.connect(shop.dsn)
    await conn.close()
    with pytest.raises(DatabaseUnavailable):
        await introspect(conn, "shop")
