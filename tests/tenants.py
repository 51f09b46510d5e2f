"""The two-tenant orders schema that the row-filter tests run against (tests/test_row_filter_pg.py
on the rewrite alone, tests/test_auth_http.py end to end over HTTP), and the queries both run.

`public.orders` holds 40 rows: odd ids belong to tenant 1 (note: a number), even ids to tenant 2
(note: 'SECRET-T2', which fails a cast to int, so that a predicate run on the other tenant's
rows shows up as an error). Schema `t{n}only` holds a copy of tenant n's rows (and a view of the
customers): a query run there through search_path is what tenant n must see through the filter.
"""

from __future__ import annotations

# The policy of the claim-bound tests: public.orders filtered by the caller's tenant_id claim
# (tests/test_auth_http.py over HTTP, tests/test_cli_claims.py through --claims and policy tests).
CLAIM_POLICY = """\
name: tenants
extends: [baseline]
tables:
  "public.*": allow
row_filters:
  public.orders: "tenant_id = :tenant_id"
"""

TABLES = """
CREATE TABLE public.orders (
  id int PRIMARY KEY, tenant_id int NOT NULL, amount int NOT NULL, note text NOT NULL);
INSERT INTO public.orders
  SELECT g, CASE WHEN g % 2 = 0 THEN 2 ELSE 1 END, g * 10,
         CASE WHEN g % 2 = 0 THEN 'SECRET-T2' ELSE (g * 100)::text END
  FROM generate_series(1, 40) g;
CREATE TABLE public.customers (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO public.customers VALUES (1, 'ann'), (2, 'bob');
"""
# Ways around a row filter on public.orders that the checker must refuse (tests/test_redteam.py):
# a view over the filtered table, and a child table whose rows the parent's scan includes.
HOLE_OBJECTS = """
CREATE VIEW public.orders_v AS SELECT * FROM public.orders;
CREATE TABLE public.orders_archive () INHERITS (public.orders);
INSERT INTO public.orders_archive VALUES (1000, 2, 1, 'ARCHIVED-T2'), (1001, 1, 1, '1001');
"""
COPY = """
CREATE SCHEMA t{n}only;
CREATE TABLE t{n}only.orders AS SELECT * FROM public.orders WHERE tenant_id = {n};
CREATE VIEW t{n}only.customers AS SELECT * FROM public.customers;
"""
GRANT = """
GRANT USAGE ON SCHEMA t{n}only TO {reader};
GRANT SELECT ON ALL TABLES IN SCHEMA t{n}only TO {reader};
"""


def tenant_tables(*, holes: bool = False) -> str:
    """SQL for public.orders and public.customers (with the `HOLE_OBJECTS` when asked)."""
    return TABLES + (HOLE_OBJECTS if holes else "") + "ANALYZE public.orders;\n"


def tenant_copies(tenants: tuple[int, ...] = (1,), reader: str | None = None) -> str:
    """SQL for the `t{n}only` schemas (after `tenant_tables`: the copies take the rows there
    then, the child table's too), readable by `reader` when one is given."""
    return "".join(COPY.format(n=n) + (GRANT.format(n=n, reader=reader) if reader else "") for n in tenants)


# (name, user query). Each runs filtered for a tenant and is compared with that tenant's copy.
QUERIES = [
    ("plain", "SELECT id, note FROM orders ORDER BY id"),
    ("star", "SELECT * FROM orders ORDER BY id"),
    ("qualified-name", "SELECT orders.id FROM orders WHERE orders.amount > 100 ORDER BY 1"),
    ("self-join", "SELECT a.id, b.id FROM orders a JOIN orders b ON b.id = a.id + 2 ORDER BY 1"),
    ("where-subquery", "SELECT count(*) FROM customers c WHERE c.id IN (SELECT tenant_id FROM orders)"),
    ("scalar-subquery", "SELECT (SELECT max(amount) FROM orders) AS m"),
    ("correlated", "SELECT c.name, (SELECT count(*) FROM orders o WHERE o.tenant_id = c.id) FROM customers c "
                   "ORDER BY 1"),
    ("exists", "SELECT c.id FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.tenant_id = c.id)"),
    ("cte", "WITH big AS (SELECT * FROM orders WHERE amount > 50) SELECT count(*), sum(amount) FROM big"),
    ("cte-shadows", "WITH orders AS (SELECT * FROM orders) SELECT count(*) FROM orders"),
    ("union", "SELECT id FROM orders UNION ALL SELECT id + 1000 FROM orders ORDER BY 1"),
    ("lateral", "SELECT c.id, l.n FROM customers c, LATERAL (SELECT count(*) AS n FROM orders o "
                "WHERE o.tenant_id = c.id) l ORDER BY 1"),
    ("group-having", "SELECT tenant_id, count(*) FROM orders GROUP BY tenant_id HAVING count(*) > 0"),
    ("window", "SELECT id, sum(amount) OVER (PARTITION BY tenant_id ORDER BY id) FROM orders ORDER BY id"),
    ("derived", "SELECT x.n FROM (SELECT count(*) AS n FROM orders) x"),
    ("cast-fails-elsewhere", "SELECT id FROM orders WHERE CAST(note AS int) > 0 ORDER BY id"),
    ("div-fails-elsewhere",
     "SELECT id FROM orders WHERE CASE WHEN note = 'SECRET-T2' THEN 1 / (id - id) ELSE 1 END = 1 "
     "ORDER BY id"),
    ("overflow-elsewhere", "SELECT id FROM orders WHERE tenant_id * 2000000000 > 0 ORDER BY id"),
    ("cast-in-join", "SELECT o.id FROM orders o JOIN customers c ON c.id = CAST(o.note AS int) / 100 "
                     "ORDER BY 1"),
]
