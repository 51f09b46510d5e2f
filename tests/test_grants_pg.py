"""`pgmcp policy grants` proven on real PostgreSQL, without pgmcp's checker in the path.

1. The database has a denied table, denied columns, a row-filtered table, views over each, a
   materialized view over the denied table and security-invoker views; the reader starts with
   far too much (SELECT on everything, a PUBLIC grant, a group that reads the denied table).
2. The generated SQL is applied by the admin; the reader connects with plain asyncpg.
3-4. Every read the policy forbids, in many spellings, is refused by PostgreSQL or filtered;
   what the policy allows still reads. Another role's reads and writes are unchanged.
5. Applying the SQL a second time changes nothing in the catalogs.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from pgmcp.cli import policy_grants
from pgmcp.config.loader import load_config
from pgmcp.demo.environment import with_database
from pgmcp.policy.checker import check
from pgmcp.policy.effective import effective_policy
from pgmcp.schema.filtered import filter_snapshot
from pgmcp.schema.introspect import introspect
from tests.conftest import TestDatabase

SETUP = """
CREATE TABLE public.customers (id int PRIMARY KEY, name text, email text, ssn text);
INSERT INTO customers VALUES (1, 'ann', 'ann@example.com', '111-11'), (2, 'bob', 'bob@example.com', '222-22');
CREATE TABLE public.orders (id int PRIMARY KEY, tenant_id int NOT NULL, amount int NOT NULL, note text);
INSERT INTO orders SELECT g, 1 + g % 2, g * 10, CASE WHEN g % 2 = 1 THEN 'SECRET-T2' ELSE 'ok' END
  FROM generate_series(1, 10) g;
CREATE TABLE public.payments (id int PRIMARY KEY, card text);
INSERT INTO payments VALUES (1, '4111-1111');
CREATE SEQUENCE public.order_seq START 7;
SELECT nextval('order_seq');
CREATE VIEW public.v_payments AS SELECT * FROM payments;
CREATE VIEW public.v_emails AS SELECT id, email AS contact FROM customers;
CREATE VIEW public.v_orders AS SELECT * FROM orders;
CREATE VIEW public.v_names AS SELECT id, name FROM customers;
CREATE VIEW public.v_orders_inv WITH (security_invoker = on) AS SELECT * FROM orders;
CREATE VIEW public.v_emails_inv WITH (security_invoker = on) AS SELECT id, email FROM customers;
CREATE MATERIALIZED VIEW public.m_payments AS SELECT count(*) AS n, max(card) AS last_card FROM payments;
"""

POLICY = """\
name: grants-test
tables:
  "public.*": allow
  "public.payments": deny
columns:
  deny: [public.customers.email, "*.*.ssn"]
row_filters:
  public.orders: "tenant_id = 1"
"""

# (name, SQL): reads the policy forbids; PostgreSQL must refuse each (permission denied).
REFUSED = [
    ("denied-table", "SELECT * FROM payments"),
    ("denied-table-column", "SELECT card FROM payments"),
    ("denied-table-count", "SELECT count(*) FROM payments"),
    ("denied-table-TABLE", "TABLE payments"),
    ("denied-table-qualified", 'SELECT 1 FROM "public"."payments"'),
    ("denied-table-subquery", "SELECT (SELECT max(card) FROM payments)"),
    ("denied-column", "SELECT email FROM customers"),
    ("denied-column-ssn", "SELECT ssn FROM customers"),
    ("denied-column-star", "SELECT * FROM customers"),
    ("denied-column-qualified-star", "SELECT c.* FROM customers c"),
    ("denied-column-whole-row", "SELECT c FROM customers c"),
    ("denied-column-row-to-json", "SELECT row_to_json(c) FROM customers c"),
    ("denied-column-alias-list", "SELECT d FROM customers AS c(a, b, d)"),
    ("denied-column-partial-alias-list", "SELECT x.* FROM customers AS x(a, b)"),
    ("denied-column-where-oracle", "SELECT id FROM customers WHERE email LIKE 'ann%'"),
    ("denied-column-order-by", "SELECT id FROM customers ORDER BY ssn"),
    ("denied-column-join-using", "SELECT id FROM customers JOIN customers c2 USING (id, email)"),
    ("denied-column-lateral", "SELECT l.e FROM customers c, LATERAL (SELECT c.email AS e) l"),
    ("denied-column-count", "SELECT count(email) FROM customers"),
    ("view-over-denied-table", "SELECT * FROM v_payments"),
    ("view-over-denied-column", "SELECT contact FROM v_emails"),
    ("view-over-denied-column-count", "SELECT count(*) FROM v_emails"),
    ("view-over-filtered-table", "SELECT * FROM v_orders"),
    ("matview-over-denied-table", "SELECT last_card FROM m_payments"),
    ("invoker-view-denied-column", "SELECT email FROM v_emails_inv"),
    # the view's own query reads email with the reader's rights, whatever the outer query selects
    ("invoker-view-other-column", "SELECT id FROM v_emails_inv"),
]

# (name, SQL, expected rows): reads over the filtered table see tenant 1's rows only.
FILTERED = [
    ("all-rows", "SELECT count(*), min(tenant_id), max(tenant_id) FROM orders", [(5, 1, 1)]),
    ("other-tenant", "SELECT count(*) FROM orders WHERE tenant_id = 2", [(0,)]),
    ("scalar-subquery", "SELECT (SELECT max(amount) FROM orders)", [(100,)]),
    ("derived-table", "SELECT count(*) FROM (SELECT * FROM orders) o WHERE o.tenant_id <> 1", [(0,)]),
    ("cte", "WITH x AS (SELECT * FROM orders) SELECT count(*) FROM x", [(5,)]),
    ("exists", "SELECT count(*) FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.tenant_id = 2)",
     [(0,)]),
    ("in-subquery", "SELECT count(*) FROM customers WHERE id IN (SELECT tenant_id FROM orders)", [(1,)]),
    ("lateral", "SELECT count(*) FROM customers c, LATERAL (SELECT * FROM orders o WHERE o.tenant_id = c.id) l",
     [(5,)]),
    ("union", "SELECT count(*) FROM (SELECT tenant_id FROM orders UNION ALL SELECT tenant_id FROM ONLY orders) u "
              "WHERE tenant_id = 2", [(0,)]),
    ("error-oracle", "SELECT count(*) FROM orders WHERE CAST(note AS int) > 0 OR true", None),
    ("invoker-view", "SELECT count(*), max(tenant_id) FROM v_orders_inv", [(5, 1)]),
    ("whole-row", "SELECT count(*) FROM orders o WHERE o::text LIKE '%SECRET%'", [(0,)]),
]

ALLOWED = [
    ("allowed-columns", "SELECT id, name FROM customers ORDER BY id", [(1, "ann"), (2, "bob")]),
    ("sequence", "SELECT last_value FROM order_seq", [(7,)]),
    ("plain-view", "SELECT count(*) FROM v_names", [(2,)]),
]


@pytest.fixture(scope="module")
def roles(pg_database: TestDatabase) -> Iterator[dict[str, str]]:
    tag = uuid.uuid4().hex[:8]
    names = {"reader": f"gr_reader_{tag}", "app": f"gr_app_{tag}", "group": f"gr_group_{tag}",
             "other": f"gr_other_{tag}"}
    r, app, grp, other = names["reader"], names["app"], names["group"], names["other"]
    pg_database.run_sql(
        SETUP
        + f"CREATE ROLE {r} LOGIN; CREATE ROLE {app} LOGIN; CREATE ROLE {grp}; CREATE ROLE {other} LOGIN;"
        # far too much for the reader: everything, a group that reads payments, PUBLIC on payments
        + f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {r}; GRANT {grp} TO {r};"
        + f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {r};"
        + f"GRANT SELECT ON payments TO {grp}; GRANT SELECT ON payments TO PUBLIC;"
        + "GRANT SELECT (id, email) ON customers TO PUBLIC;"
        # an application that reads and writes orders, and another reader of everything
        + f"GRANT SELECT, INSERT, UPDATE, DELETE ON orders TO {app};"
        + f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {other};"
    )
    yield names
    for role in names.values():
        pg_database.run_sql(f"DROP OWNED BY {role}; DROP ROLE {role};")


@pytest.fixture(scope="module")
def config(pg_database: TestDatabase, roles: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("grants")
    (folder / "policy.yaml").write_text(POLICY)
    dsn = with_database(pg_database.dsn, pg_database.name, user=roles["reader"])
    (folder / "pgmcp.yaml").write_text(f"databases:\n  shop:\n    dsn: {dsn}\n    policies: [policy.yaml]\n")
    return folder / "pgmcp.yaml"


STATE = """
SELECT c.relname, c.relacl::text, c.relrowsecurity, c.relforcerowsecurity,
       (SELECT string_agg(a.attname || '=' || a.attacl::text, ',' ORDER BY a.attnum) FROM pg_attribute a
        WHERE a.attrelid = c.oid AND a.attacl IS NOT NULL) AS columns,
       (SELECT string_agg(p.policyname || ':' || p.permissive || ':' || p.cmd || ':' || p.roles::text || ':'
                          || coalesce(p.qual, '') || ':' || coalesce(p.with_check, ''), ',' ORDER BY p.policyname)
        FROM pg_policies p WHERE p.tablename = c.relname AND p.schemaname = 'public') AS policies
FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'v', 'm', 'S')
UNION ALL SELECT 'schema', nspacl::text, null, null, null, null FROM pg_namespace WHERE nspname = 'public'
UNION ALL SELECT 'settings', array_to_string(setconfig, ','), null, null, null, null FROM pg_db_role_setting
  WHERE setrole = '{role}'::regrole AND setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
UNION ALL SELECT 'defaults', string_agg(defaclacl::text, ',' ORDER BY defaclacl::text), null, null, null, null
  FROM pg_default_acl
UNION ALL SELECT 'members', string_agg(m.roleid::regrole || '>' || m.member::regrole, ','), null, null, null, null
  FROM pg_auth_members m WHERE m.member = '{role}'::regrole
ORDER BY 1, 2
"""


async def observe(db: TestDatabase, role: str) -> list[object]:
    """What `role` reads and writes: counts per tenant, a view, and the row counts of an INSERT,
    UPDATE and DELETE (rolled back), or the error each gives."""
    conn = await asyncpg.connect(with_database(db.dsn, db.name, user=role))
    seen: list[object] = []
    try:
        for sql in ("SELECT count(*) FROM orders", "SELECT count(*) FROM orders WHERE tenant_id = 2",
                    "SELECT count(*) FROM v_orders", "SELECT card FROM payments",
                    "SELECT count(*) FROM orders o WHERE o::text LIKE '%SECRET%'"):
            try:
                seen.append(await conn.fetchval(sql))
            except asyncpg.PostgresError as exc:
                seen.append(type(exc).__name__)
        tr = conn.transaction()
        await tr.start()
        try:
            for sql in ("INSERT INTO orders VALUES (100, 2, 1, 'new')",
                        "UPDATE orders SET amount = amount + 1 WHERE tenant_id = 2",
                        "DELETE FROM orders WHERE id IN (100, 2)"):
                await conn.execute("SAVEPOINT s")
                try:
                    seen.append(await conn.execute(sql))
                except asyncpg.PostgresError as exc:
                    seen.append(type(exc).__name__)
                    await conn.execute("ROLLBACK TO SAVEPOINT s")
        finally:
            await tr.rollback()
    finally:
        await conn.close()
    return seen


@pytest.fixture(scope="module")
def grants_sql(pg_database: TestDatabase, roles: dict[str, str], config: Path) -> dict[str, object]:
    before = {r: asyncio.run(observe(pg_database, roles[r])) for r in ("app", "other")}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert policy_grants.main(["--config", str(config), "--database", "shop"]) == 0
    sql = out.getvalue()
    pg_database.run_sql(sql)
    state = STATE.format(role=roles["reader"])
    once = pg_database.run_sql(state)
    pg_database.run_sql(sql)
    twice = pg_database.run_sql(state)
    after = {r: asyncio.run(observe(pg_database, roles[r])) for r in ("app", "other")}
    return {"sql": sql, "once": once, "twice": twice, "before": before, "after": after}


@pytest.fixture
async def reader(pg_database: TestDatabase, roles: dict[str, str], grants_sql: dict[str, object]) -> AsyncIterator[
    asyncpg.Connection
]:
    conn = await asyncpg.connect(with_database(pg_database.dsn, pg_database.name, user=roles["reader"]))
    yield conn
    await conn.close()


@pytest.mark.parametrize(("name", "sql"), REFUSED, ids=[r[0] for r in REFUSED])
async def test_postgres_refuses_what_the_policy_denies(reader: asyncpg.Connection, name: str, sql: str) -> None:
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await reader.fetch(sql)


@pytest.mark.parametrize(("name", "sql", "rows"), FILTERED, ids=[r[0] for r in FILTERED])
async def test_postgres_filters_the_rows(
    reader: asyncpg.Connection, name: str, sql: str, rows: list[tuple[object, ...]] | None
) -> None:
    got = [tuple(r.values()) for r in await reader.fetch(sql)]  # no error from tenant 2's 'SECRET-T2'
    if rows is not None:
        assert got == rows


@pytest.mark.parametrize(("name", "sql", "rows"), ALLOWED, ids=[r[0] for r in ALLOWED])
async def test_what_the_policy_allows_still_reads(
    reader: asyncpg.Connection, name: str, sql: str, rows: list[tuple[object, ...]] | None
) -> None:
    got = [tuple(r.values()) for r in await reader.fetch(sql)]
    if rows is not None:
        assert got == rows


async def test_the_reader_is_read_only_with_the_limits(reader: asyncpg.Connection) -> None:
    assert await reader.fetchval("SHOW default_transaction_read_only") == "on"
    assert await reader.fetchval("SHOW statement_timeout") == "5s"
    assert await reader.fetchval("SHOW temp_file_limit") == "1GB"  # the tests apply it as a superuser
    with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
        await reader.execute("CREATE TEMP TABLE t (x int)")


def test_other_roles_read_and_write_as_before(grants_sql: dict[str, object]) -> None:
    before, after = grants_sql["before"], grants_sql["after"]
    assert isinstance(before, dict) and isinstance(after, dict)
    # every read and write of orders (row-level security is on now) is as it was
    assert before["other"] == after["other"] == [10, 5, 10, "4111-1111", 5] + ["InsufficientPrivilegeError"] * 3
    assert before["app"][:3] + before["app"][4:] == after["app"][:3] + after["app"][4:] == [
        10, 5, "InsufficientPrivilegeError", 5, "INSERT 0 1", "UPDATE 6", "DELETE 2"]
    # except what app read through PUBLIC's grant on the denied table, which the SQL revokes (and says so)
    assert (before["app"][3], after["app"][3]) == ("4111-1111", "InsufficientPrivilegeError")


def test_applying_twice_changes_nothing(grants_sql: dict[str, object]) -> None:
    assert grants_sql["once"] == grants_sql["twice"]
    assert "pgmcp_filter_" in str(grants_sql["once"]) and "pgmcp_keep_access" in str(grants_sql["once"])


def test_the_sql_explains_itself(grants_sql: dict[str, object], roles: dict[str, str]) -> None:
    sql = str(grants_sql["sql"])
    assert sql.startswith("-- pgmcp policy grants") and "BEGIN;" in sql and sql.rstrip().endswith("COMMIT;")
    assert 'GRANT SELECT ("id", "name") ON TABLE "public"."customers"' in sql
    assert 'GRANT SELECT ON SEQUENCE "public"."order_seq"' in sql
    assert 'REVOKE SELECT ON TABLE "public"."payments" FROM PUBLIC;' in sql
    assert 'REVOKE SELECT ("email") ON TABLE "public"."customers" FROM PUBLIC;' in sql
    assert f'REVOKE "{roles["group"]}" FROM "{roles["reader"]}";' in sql
    for view in ("v_payments", "v_emails", "v_orders"):
        assert f"--   public.{view}: it reads with its owner's rights" in sql
    assert "--   public.m_payments: it holds a copy of what it read" in sql
    assert 'GRANT SELECT ON TABLE "public"."v_orders_inv"' in sql
    assert "temp_file_limit" in sql and "needs a superuser" in sql
    assert f'IN SCHEMA "public" REVOKE ALL ON TABLES FROM "{roles["reader"]}";' in sql


def test_tables_created_later_are_not_granted(
    pg_database: TestDatabase, roles: dict[str, str], grants_sql: dict[str, object]
) -> None:
    pg_database.run_sql("CREATE TABLE public.later (id int)")
    try:
        readable = pg_database.run_sql(f"SELECT has_table_privilege('{roles['reader']}', 'public.later', 'SELECT')")
        assert readable.strip() == "f"
    finally:
        pg_database.run_sql("DROP TABLE public.later")


async def test_pgmcp_still_explains_its_refusals_under_column_grants(
    pg_database: TestDatabase, roles: dict[str, str], config: Path, grants_sql: dict[str, object]
) -> None:
    """Under column privileges the snapshot still lists every column (marked unreadable), so
    the checker refuses `SELECT *` with the policy's reason instead of letting PostgreSQL fail,
    and the model is shown only what it may read."""
    conn = await asyncpg.connect(with_database(pg_database.dsn, pg_database.name, user=roles["reader"]))
    try:
        snap = await introspect(conn, "shop")
    finally:
        await conn.close()
    policy = effective_policy(load_config(config), load_config(config).databases[0]).policy
    for sql in ("SELECT * FROM customers", "SELECT c FROM customers c"):
        verdict = check(sql, policy, snap)
        assert not verdict.allowed
        assert {v.rule for v in verdict.violations} <= {"PGM301", "PGM302", "PGM303"}, verdict.reason()
    shown = filter_snapshot(snap, policy).relation("public", "customers")
    assert shown is not None and [c.name for c in shown.columns] == ["id", "name"]
