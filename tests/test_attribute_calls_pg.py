"""`t.name` that is no column of FROM item t calls name(t): proven on the real sample shop.

The demo shop (`pgmcp.demo.sample_data`) is loaded and introspected as its least-privilege
role. Realistic analytics queries (joins, CTEs, subqueries, window functions, LATERAL,
table functions) stay allowed under baseline with that snapshot, and they run; `t.name`
where t has no column `name` is refused as the call name(t) it is, and PostgreSQL really
calls the function when such a query is run directly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from pgmcp.demo.sample_data import DEMO_ROLE
from pgmcp.policy.analysis.outputs import TABLE_FUNCTIONS
from pgmcp.policy.checker import check
from pgmcp.policy.compiler import compile_policy
from pgmcp.policy.document import load_policy_spec
from pgmcp.schema.introspect import introspect_dsn
from pgmcp.schema.snapshot import SchemaSnapshot
from tests.conftest import TestDatabase
from tests.mcp_setup import role_dsn
from tests.readers import run_read_only

REPO = Path(__file__).parent.parent
BASELINE = compile_policy(load_policy_spec(["baseline"], REPO))

# User functions on the row types: what `c.my_udf` and `c."MyUdf"` call. They return a marker
# (a function with side effects would be called just the same).
UDFS = """
CREATE FUNCTION my_udf(c customers) RETURNS text LANGUAGE sql STABLE AS $$ SELECT 'MARKER:' || c.id $$;
CREATE FUNCTION "MyUdf"(c customers) RETURNS text LANGUAGE sql STABLE AS $$ SELECT 'QUOTED:' || c.id $$;
CREATE FUNCTION order_udf(o orders) RETURNS text LANGUAGE sql STABLE AS $$ SELECT 'ORDER:' || o.id $$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO pgmcp_demo;
"""

LEGIT = [
    # plain reads and joins
    "SELECT c.id, c.name, c.city FROM customers c ORDER BY c.id LIMIT 10",
    "SELECT customers.name FROM customers WHERE customers.country = 'DE'",
    "SELECT public.customers.name FROM public.customers LIMIT 3",
    "SELECT C.Name, C.CITY FROM Customers C WHERE C.Country = 'FR'",
    'SELECT c."name" FROM customers c LIMIT 1',
    "SELECT o.id, o.total, c.name FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.total > 100",
    "SELECT o.id, c.name FROM orders o LEFT JOIN customers c ON c.id = o.customer_id ORDER BY o.id LIMIT 5",
    "SELECT p.name, oi.quantity, oi.unit_price FROM order_items oi JOIN products p ON p.id = oi.product_id",
    "SELECT o.id, p.method, p.amount FROM orders o JOIN payments p ON p.order_id = o.id WHERE p.method = 'card'",
    "SELECT r.rating, p.name, c.name FROM reviews r JOIN products p ON p.id = r.product_id "
    "JOIN customers c ON c.id = r.customer_id WHERE r.rating >= 4",
    "SELECT a.id, b.id FROM customers a JOIN customers b ON a.city = b.city AND a.id < b.id LIMIT 5",
    "SELECT oi.order_id, oj.product_id FROM order_items oi JOIN order_items oj USING (order_id) LIMIT 3",
    "SELECT oi.order_id, oi.quantity FROM order_items oi NATURAL JOIN order_items LIMIT 3",
    "SELECT p.id, p.name FROM products p WHERE p.active AND p.stock > 0 ORDER BY p.price DESC LIMIT 5",
    "SELECT pr.name, pr.avg_rating, pr.review_count FROM product_ratings pr ORDER BY pr.avg_rating DESC NULLS LAST",
    "SELECT o.ctid, o.xmin, o.tableoid FROM orders o LIMIT 1",
    "SELECT x.id FROM customers AS x(id, full_name) WHERE x.full_name LIKE 'A%'",
    # aggregates and grouping
    "SELECT c.country, count(*) AS n FROM customers c GROUP BY c.country ORDER BY n DESC",
    "SELECT o.status, sum(o.total) AS revenue FROM orders o GROUP BY o.status",
    "SELECT c.country, c.city, count(o.id) FROM customers c LEFT JOIN orders o ON o.customer_id = c.id "
    "GROUP BY c.country, c.city HAVING count(o.id) > 5",
    "SELECT p.category, avg(p.price)::numeric(10,2) AS avg_price FROM products p GROUP BY p.category "
    "ORDER BY p.category",
    "SELECT date_trunc('month', o.ordered_at) AS month, sum(o.total) FROM orders o GROUP BY 1 ORDER BY 1",
    "SELECT extract(year FROM o.ordered_at) AS y, count(*) FROM orders o GROUP BY y",
    "SELECT p.category, max(p.price), min(p.price) FROM products p GROUP BY ROLLUP (p.category)",
    "SELECT o.tenant_id, o.status, count(*) FROM orders o GROUP BY GROUPING SETS ((o.tenant_id), (o.status))",
    "SELECT pm.method, count(DISTINCT pm.order_id) FROM payments pm GROUP BY pm.method",
    "SELECT c.country, string_agg(c.city, ', ' ORDER BY c.city) FROM customers c GROUP BY c.country",
    "SELECT r.product_id, avg(r.rating) FILTER (WHERE r.rating > 1) FROM reviews r GROUP BY r.product_id",
    "SELECT o.customer_id, array_agg(o.id ORDER BY o.ordered_at) FROM orders o GROUP BY o.customer_id LIMIT 5",
    "SELECT count(*) FILTER (WHERE o.shipped_at IS NULL) AS unshipped FROM orders o",
    "SELECT c.marketing_opt_in, count(*) FROM customers c GROUP BY c.marketing_opt_in ORDER BY c.marketing_opt_in",
    # window functions
    "SELECT o.id, o.total, rank() OVER (PARTITION BY o.customer_id ORDER BY o.total DESC) FROM orders o",
    "SELECT o.id, sum(o.total) OVER (ORDER BY o.ordered_at ROWS BETWEEN 6 PRECEDING AND CURRENT ROW) "
    "FROM orders o",
    "SELECT o.id, lag(o.total) OVER w, lead(o.total) OVER w FROM orders o WINDOW w AS (ORDER BY o.id)",
    "SELECT p.name, p.price, ntile(4) OVER (ORDER BY p.price) AS quartile FROM products p",
    "SELECT o.customer_id, o.id, row_number() OVER (PARTITION BY o.customer_id ORDER BY o.ordered_at) "
    "FROM orders o",
    "SELECT p.category, p.name, p.price - avg(p.price) OVER (PARTITION BY p.category) FROM products p",
    "SELECT c.id, first_value(o.total) OVER (PARTITION BY c.id ORDER BY o.ordered_at) "
    "FROM customers c JOIN orders o ON o.customer_id = c.id",
    "SELECT r.id, percent_rank() OVER (ORDER BY r.rating) FROM reviews r",
    # subqueries, correlated and not
    "SELECT c.name FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id)",
    "SELECT c.name FROM customers c WHERE NOT EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id "
    "AND o.status = 'refunded')",
    "SELECT c.name, (SELECT count(*) FROM orders o WHERE o.customer_id = c.id) AS n FROM customers c",
    "SELECT c.name, (SELECT max(o.total) FROM orders o WHERE o.customer_id = c.id) FROM customers c",
    "SELECT p.name FROM products p WHERE p.id IN (SELECT oi.product_id FROM order_items oi "
    "WHERE oi.quantity > 3)",
    "SELECT p.name FROM products p WHERE p.price > (SELECT avg(p2.price) FROM products p2 "
    "WHERE p2.category = p.category)",
    "SELECT o.id FROM orders o WHERE o.total > ALL (SELECT pm.amount FROM payments pm "
    "WHERE pm.order_id = o.id AND pm.method = 'voucher')",
    "SELECT s.customer_id, s.spent FROM (SELECT o.customer_id, sum(o.total) AS spent FROM orders o "
    "GROUP BY o.customer_id) s WHERE s.spent > 500",
    "SELECT s.* FROM (SELECT c.id, c.name FROM customers c) s LIMIT 3",
    "SELECT s.id, s.name, s.email FROM (SELECT * FROM customers) s LIMIT 3",
    "SELECT s.name, s.total FROM (SELECT c.*, o.total FROM customers c JOIN orders o ON o.customer_id = c.id) s",
    "SELECT s.n FROM (SELECT count(*) AS n FROM orders) s",
    "SELECT s.count FROM (SELECT count(*) FROM orders) s",
    "SELECT s.a, s.b FROM (SELECT c.id, c.name FROM customers c) AS s(a, b)",
    "SELECT s.a, s.name FROM (SELECT c.id, c.name FROM customers c) AS s(a)",
    "SELECT t.id FROM (SELECT o.id FROM orders o UNION SELECT pm.order_id FROM payments pm) t",
    "SELECT x.order_id FROM (SELECT * FROM order_items JOIN orders ON orders.id = order_items.order_id) x",
    "SELECT o.id FROM orders o WHERE o.customer_id = ANY (SELECT c.id FROM customers c WHERE c.country = 'NL')",
    # CTEs
    "WITH spend AS (SELECT o.customer_id, sum(o.total) AS total FROM orders o GROUP BY o.customer_id) "
    "SELECT c.name, spend.total FROM spend JOIN customers c ON c.id = spend.customer_id",
    "WITH s AS (SELECT * FROM products) SELECT s.name, s.price FROM s WHERE s.active",
    "WITH s(pid, n) AS (SELECT oi.product_id, sum(oi.quantity) FROM order_items oi GROUP BY 1) "
    "SELECT p.name, s.n FROM s JOIN products p ON p.id = s.pid",
    "WITH a AS (SELECT c.id, c.country FROM customers c), b AS (SELECT a.country, count(*) AS n FROM a "
    "GROUP BY a.country) SELECT b.country, b.n FROM b ORDER BY b.n DESC",
    "WITH m AS MATERIALIZED (SELECT o.id, o.total FROM orders o) SELECT m.id FROM m WHERE m.total > 10",
    "WITH RECURSIVE d(n) AS (SELECT 1 UNION ALL SELECT d.n + 1 FROM d WHERE d.n < 12) SELECT d.n FROM d",
    "WITH RECURSIVE d AS (SELECT 1 AS n UNION ALL SELECT d.n + 1 FROM d WHERE d.n < 5) SELECT d.n FROM d",
    "WITH t AS (SELECT o.status, o.total FROM orders o) SELECT x.status FROM t AS x WHERE x.total > 50",
    "WITH t AS (SELECT o.status FROM orders o) SELECT x.s FROM t AS x(s)",
    "WITH ranked AS (SELECT p.*, rank() OVER (PARTITION BY p.category ORDER BY p.price DESC) AS rk "
    "FROM products p) SELECT ranked.category, ranked.name FROM ranked WHERE ranked.rk <= 3",
    "WITH u AS (SELECT c.id FROM customers c WHERE c.country = 'DE' UNION ALL SELECT c.id FROM customers c "
    "WHERE c.country = 'FR') SELECT count(u.id) FROM u",
    # LATERAL and table functions
    "SELECT c.name, last.id FROM customers c CROSS JOIN LATERAL (SELECT o.id FROM orders o "
    "WHERE o.customer_id = c.id ORDER BY o.ordered_at DESC LIMIT 1) last",
    "SELECT c.name, top.total FROM customers c LEFT JOIN LATERAL (SELECT o.total FROM orders o "
    "WHERE o.customer_id = c.id ORDER BY o.total DESC LIMIT 3) AS top ON true",
    "SELECT g.d FROM generate_series('2024-01-01'::date, '2024-12-01'::date, interval '1 month') AS g(d)",
    "SELECT g.n FROM generate_series(1, 12) AS g(n)",
    "SELECT g.g FROM generate_series(1, 3) AS g",
    "SELECT g.n, g.i FROM generate_series(10, 12) WITH ORDINALITY AS g(n, i)",
    "SELECT g.generate_series FROM generate_series(1, 3) WITH ORDINALITY AS g(generate_series)",
    "SELECT g.ordinality FROM generate_series(1, 3) WITH ORDINALITY AS g",
    "SELECT generate_series.generate_series FROM generate_series(1, 2)",
    "SELECT m.month, count(o.id) FROM generate_series(1, 12) AS m(month) LEFT JOIN orders o "
    "ON extract(month FROM o.ordered_at) = m.month GROUP BY m.month ORDER BY m.month",
    "SELECT u.v, u.i FROM unnest(ARRAY['a', 'b']) WITH ORDINALITY AS u(v, i)",
    "SELECT u.x FROM unnest(ARRAY[1, 2]) AS u(x)",
    "SELECT u.u, u.ordinality FROM unnest(ARRAY[1, 2]) WITH ORDINALITY AS u",
    "SELECT u.a, u.b FROM unnest(ARRAY[1, 2], ARRAY['x', 'y']) AS u(a, b)",
    "SELECT r.a, r.b FROM jsonb_to_recordset('[{\"a\": 1, \"b\": \"x\"}]') AS r(a int, b text)",
    "SELECT e.key, e.value FROM jsonb_each('{\"a\": 1}') AS e",
    "SELECT e.k FROM jsonb_each_text('{\"a\": \"1\"}') AS e(k)",
    "SELECT e.value FROM jsonb_array_elements('[1, 2]') AS e",
    "SELECT w.w FROM regexp_split_to_table('a b c', ' ') AS w",
    "SELECT r.a, r.b FROM ROWS FROM (generate_series(1, 2), generate_series(1, 3)) AS r(a, b)",
    "SELECT c.name, w.word FROM customers c, LATERAL regexp_split_to_table(c.name, ' ') AS w(word) LIMIT 5",
    "SELECT c.id, k.key FROM customers c CROSS JOIN LATERAL jsonb_each(jsonb_build_object('city', c.city)) k",
    "SELECT v.a, v.b FROM (VALUES (1, 'x'), (2, 'y')) AS v(a, b)",
    "SELECT v.column1, v.column2 FROM (VALUES (1, 'x')) v",
    "SELECT o.id, v.label FROM orders o JOIN (VALUES ('paid', 'ok'), ('refunded', 'bad')) AS v(status, label) "
    "ON v.status = o.status::text",
    # set operations and ordering
    "SELECT c.city FROM customers c WHERE c.country = 'DE' UNION SELECT c.city FROM customers c "
    "WHERE c.country = 'IT' ORDER BY city",
    "SELECT o.id FROM orders o EXCEPT SELECT pm.order_id FROM payments pm",
    "SELECT o.id AS ident FROM orders o ORDER BY o.id DESC LIMIT 3",
    "SELECT c.name FROM customers c ORDER BY lower(c.name), c.id",
    "SELECT DISTINCT ON (o.customer_id) o.customer_id, o.id FROM orders o ORDER BY o.customer_id, o.ordered_at",
    # expressions
    "SELECT c.name, CASE WHEN c.marketing_opt_in THEN 'yes' ELSE 'no' END FROM customers c",
    "SELECT coalesce(o.shipped_at, o.ordered_at) FROM orders o LIMIT 3",
    "SELECT o.id, o.shipped_at - o.ordered_at AS lead_time FROM orders o WHERE o.shipped_at IS NOT NULL",
    "SELECT p.name COLLATE \"C\" FROM products p ORDER BY p.name COLLATE \"C\" LIMIT 3",
    "SELECT round(pm.amount * 1.19, 2), upper(pm.card_holder) FROM payments pm LIMIT 3",
    "SELECT (o.total)::text FROM orders o LIMIT 1",
    "SELECT length(r.body), left(r.body, 10) FROM reviews r WHERE r.body IS NOT NULL LIMIT 3",
]

# (sql, rule): `t.name` that is no column of t is the call name(t)
ATTACKS = [
    ("SELECT u.my_udf FROM customers u", "PGM403"),
    ("SELECT customers.my_udf FROM customers", "PGM403"),
    ("SELECT public.customers.my_udf FROM public.customers", "PGM403"),
    ("SELECT U.MY_UDF FROM Customers U", "PGM403"),
    ('SELECT u."MyUdf" FROM customers u', "PGM403"),
    ("SELECT x.my_udf FROM (SELECT * FROM customers) x", "PGM403"),
    ("SELECT x.my_udf FROM (SELECT c.* FROM customers c) x", "PGM403"),
    ("WITH c AS (SELECT * FROM customers) SELECT c.my_udf FROM c", "PGM403"),
    ("WITH c AS (SELECT id FROM customers) SELECT z.my_udf FROM c AS z", "PGM403"),
    ("SELECT t.pg_sleep FROM customers t", "PGM401"),
    ("SELECT o.order_udf FROM orders o", "PGM403"),
    ("SELECT c.id FROM customers c WHERE c.my_udf IS NOT NULL", "PGM403"),
    ("SELECT c.id FROM customers c ORDER BY c.my_udf", "PGM403"),
    ("SELECT o.id FROM orders o WHERE EXISTS (SELECT 1 FROM customers c WHERE c.id = o.customer_id "
     "AND c.my_udf > '')", "PGM403"),
    ("SELECT s.my_udf FROM (SELECT count(*) FROM customers) s", "PGM403"),
    ("SELECT x.id FROM customers AS x(ident)", "PGM403"),  # renamed: x.id is no column
    ("SELECT g.my_udf FROM generate_series(1, 3) AS g", "PGM403"),
    ("SELECT v.my_udf FROM (VALUES (1)) v", "PGM403"),
    ("SELECT c.name, l.my_udf FROM customers c, LATERAL (SELECT c.id) l", "PGM403"),
]


@pytest.fixture(scope="module")
def shop(sample_db: TestDatabase) -> TestDatabase:
    sample_db.run_sql(UDFS)
    return sample_db


@pytest.fixture(scope="module")
async def snapshot(shop: TestDatabase) -> SchemaSnapshot:
    return await introspect_dsn(role_dsn(shop, DEMO_ROLE), shop.name)


@pytest.fixture(scope="module")
async def conn(shop: TestDatabase) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(role_dsn(shop, DEMO_ROLE))
    yield connection
    await connection.close()




@pytest.mark.parametrize("sql", LEGIT)
async def test_realistic_query_is_allowed_and_runs(
    snapshot: SchemaSnapshot, conn: asyncpg.Connection, sql: str
) -> None:
    verdict = check(sql, BASELINE, snapshot)
    assert verdict.allowed, verdict.reason()
    await run_read_only(conn, verdict.rewritten_sql or sql)


@pytest.mark.parametrize(("sql", "rule"), ATTACKS)
def test_call_on_a_row_is_refused(snapshot: SchemaSnapshot, sql: str, rule: str) -> None:
    verdict = check(sql, BASELINE, snapshot)
    assert not verdict.allowed, f"allowed: {sql}"
    assert rule in [v.rule for v in verdict.violations], verdict.reason()
    assert "would call" in verdict.reason(), verdict.reason()


def test_message_names_the_table_and_the_call(snapshot: SchemaSnapshot) -> None:
    verdict = check("SELECT u.my_udf FROM customers u", BASELINE, snapshot)
    assert verdict.violations[0].message.startswith(
        "u.my_udf: public.customers has no column my_udf, so PostgreSQL would call my_udf(u)"
    ), verdict.reason()


def test_without_a_snapshot_only_dangerous_names_are_refused() -> None:
    # Offline (no snapshot) nothing tells a column from a call: only dangerous names are refused.
    assert check("SELECT u.my_udf FROM customers u", BASELINE).allowed
    assert not check("SELECT t.pg_sleep FROM customers t", BASELINE).allowed


async def test_postgresql_really_calls_the_function(conn: asyncpg.Connection) -> None:
    rows = await run_read_only(conn, "SELECT u.my_udf FROM customers u ORDER BY u.id LIMIT 1")
    assert rows[0][0] == "MARKER:1"
    rows = await run_read_only(conn, 'SELECT u."MyUdf" FROM customers u ORDER BY u.id LIMIT 1')
    assert rows[0][0] == "QUOTED:1"
    rows = await run_read_only(conn, "SELECT x.my_udf FROM (SELECT * FROM customers) x ORDER BY x.id LIMIT 1")
    assert rows[0][0] == "MARKER:1"
    rows = await run_read_only(conn, "WITH c AS (SELECT * FROM customers) SELECT c.my_udf FROM c ORDER BY c.id LIMIT 1")
    assert rows[0][0] == "MARKER:1"


# A sample call of each table function row_calls knows the columns of
SAMPLE_ARGS = {
    "generate_series": "1, 2",
    "generate_subscripts": "ARRAY[1, 2], 1",
    "unnest": "ARRAY[1, 2]",
    "regexp_split_to_table": "'a b', ' '",
    "regexp_matches": "'a', 'a', 'g'",
    "string_to_table": "'a,b', ','",
    "jsonb_object_keys": "'{\"a\": 1}'",
    "json_object_keys": "'{\"a\": 1}'",
    "jsonb_array_elements": "'[1]'",
    "jsonb_array_elements_text": "'[1]'",
    "json_array_elements": "'[1]'",
    "json_array_elements_text": "'[1]'",
    "jsonb_each": "'{\"a\": 1}'",
    "jsonb_each_text": "'{\"a\": 1}'",
    "json_each": "'{\"a\": 1}'",
    "json_each_text": "'{\"a\": 1}'",
}


@pytest.mark.parametrize("name", sorted(TABLE_FUNCTIONS))
async def test_table_function_columns_match_postgresql(conn: asyncpg.Connection, name: str) -> None:
    expected = TABLE_FUNCTIONS[name] or ("f",)  # a scalar result is named after the alias
    statement = await conn.prepare(f"SELECT * FROM {name}({SAMPLE_ARGS[name]}) AS f")
    assert tuple(a.name for a in statement.get_attributes()) == expected
