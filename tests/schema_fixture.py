"""A small two-schema database exercising every part of a `SchemaSnapshot`, and helpers.

Shared by the introspection, cache and filtered-view tests.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import asyncpg

from pgmcp.schema.introspect import introspect
from pgmcp.schema.snapshot import SchemaSnapshot

SHOP_SQL = """
CREATE SCHEMA shop;
CREATE SCHEMA hr;
CREATE TYPE shop.order_status AS ENUM ('new', 'paid', 'shipped', 'cancelled');
CREATE TABLE shop.customers (
    id serial PRIMARY KEY,
    email text NOT NULL UNIQUE,
    name varchar(200),
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE shop.customers IS 'People who buy';
COMMENT ON COLUMN shop.customers.email IS 'Login e-mail';
CREATE TABLE shop.orders (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id integer NOT NULL REFERENCES shop.customers(id),
    status shop.order_status NOT NULL DEFAULT 'new',
    total numeric(12,2),
    note text
);
CREATE INDEX orders_customer_idx ON shop.orders (customer_id);
CREATE INDEX orders_noted_idx ON shop.orders (customer_id) WHERE note IS NOT NULL;
CREATE INDEX orders_lower_note_idx ON shop.orders (lower(note));
CREATE TABLE shop.order_lines (
    order_id bigint REFERENCES shop.orders(id),
    line_no integer,
    qty integer NOT NULL DEFAULT 1,
    PRIMARY KEY (order_id, line_no)
);
CREATE TABLE hr.employees (
    id integer PRIMARY KEY,
    name text NOT NULL,
    salary numeric,
    manager_id integer REFERENCES hr.employees(id)
);
COMMENT ON COLUMN hr.employees.salary IS 'Yearly, in EUR';
CREATE VIEW shop.customer_orders AS
    SELECT c.name, o.total FROM shop.customers c JOIN shop.orders o ON o.customer_id = c.id;
CREATE VIEW hr.payroll AS SELECT name, salary FROM hr.employees;
CREATE MATERIALIZED VIEW shop.order_totals AS
    SELECT customer_id, sum(total) AS total FROM shop.orders GROUP BY customer_id;
CREATE TABLE shop.events (id integer, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE shop.events_2024 PARTITION OF shop.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE FUNCTION shop.order_count(cid integer) RETURNS bigint LANGUAGE sql STABLE
    AS 'SELECT count(*) FROM shop.orders WHERE customer_id = cid';
CREATE FUNCTION shop.net(amount numeric, rate numeric DEFAULT 0.2) RETURNS numeric
    LANGUAGE sql IMMUTABLE AS 'SELECT amount / (1 + rate)';
CREATE FUNCTION hr.team(mgr integer) RETURNS SETOF hr.employees LANGUAGE sql STABLE
    AS 'SELECT * FROM hr.employees WHERE manager_id = mgr';
CREATE FUNCTION hr.bump() RETURNS void LANGUAGE sql VOLATILE AS 'SELECT';
INSERT INTO shop.customers (email, name) SELECT 'c' || g || '@example.com', 'C' || g
    FROM generate_series(1, 50) g;
ANALYZE shop.customers;
"""


def dsn_as(dsn: str, user: str) -> str:
    """The same DSN, connecting as another role (the test cluster trusts local logins)."""
    parts = urlsplit(dsn)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))


async def snapshot_of(dsn: str, database: str = "db") -> SchemaSnapshot:
    """Introspect over a fresh connection, closed afterwards."""
    conn = await asyncpg.connect(dsn)
    try:
        return await introspect(conn, database)
    finally:
        await conn.close()
