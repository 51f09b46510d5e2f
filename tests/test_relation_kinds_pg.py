"""Every relation kind a query can read is in the live snapshot and falls under the table rules.

Tables, views, materialized views, foreign tables, partitioned tables (and their partitions)
and sequences: each is introspected with its kind, an allow rule lets a read of it through
(foreign tables only by exact name, as before), a deny rule refuses it (PGM201), and what the
checker allows runs on PostgreSQL as a least-privilege reader. `SELECT last_value FROM
order_seq` used to be refused as an unknown relation (PGM203).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from pgmcp.policy.checker import check
from pgmcp.policy.compiler import CompiledPolicy, compile_policy
from pgmcp.policy.document import load_policy_file
from pgmcp.schema.snapshot import SchemaSnapshot
from tests.conftest import TestDatabase
from tests.readers import reader_role, run_read_only
from tests.schema_fixture import dsn_as, snapshot_of

SETUP = """
CREATE TABLE public.orders (id serial PRIMARY KEY, total numeric NOT NULL);
INSERT INTO public.orders (total) SELECT g FROM generate_series(1, 5) g;
CREATE SEQUENCE public.order_seq START 41;
SELECT nextval('public.order_seq');
CREATE VIEW public.big_orders AS SELECT id, total FROM public.orders WHERE total > 2;
CREATE MATERIALIZED VIEW public.order_sums AS SELECT count(*) AS n, sum(total) AS total FROM public.orders;
CREATE TABLE public.events (id int, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE public.events_2024 PARTITION OF public.events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
INSERT INTO public.events VALUES (1, '2024-03-01');
CREATE FOREIGN DATA WRAPPER kinds_fdw;
CREATE SERVER kinds_remote FOREIGN DATA WRAPPER kinds_fdw;
CREATE FOREIGN TABLE public.remote_orders (id int) SERVER kinds_remote;
"""

# (relation, kind, a read of it, its result for the reader)
READS = [
    ("orders", "table", "SELECT count(*) FROM orders", [(5,)]),
    ("orders_id_seq", "sequence", "SELECT last_value FROM orders_id_seq", [(5,)]),
    ("order_seq", "sequence", "SELECT last_value, is_called FROM order_seq", [(41, True)]),
    ("big_orders", "view", "SELECT count(*) FROM big_orders", [(3,)]),
    ("order_sums", "materialized_view", "SELECT n FROM order_sums", [(5,)]),
    ("events", "partitioned_table", "SELECT id FROM events", [(1,)]),
    ("events_2024", "table", "SELECT id FROM public.events_2024", [(1,)]),
]


@pytest.fixture(scope="module")
def reader(pg_database: TestDatabase) -> Iterator[str]:
    for name in reader_role(pg_database, SETUP, "kinds"):
        # ALL TABLES covers views, materialized views and foreign tables, not sequences
        pg_database.run_sql(f"GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO {name}")
        yield name


@pytest.fixture(scope="module")
async def snap(pg_database: TestDatabase, reader: str) -> SchemaSnapshot:
    return await snapshot_of(dsn_as(pg_database.dsn, reader), "kinds")


@pytest.fixture
async def conn(pg_database: TestDatabase, reader: str) -> AsyncIterator[asyncpg.Connection]:
    c = await asyncpg.connect(dsn_as(pg_database.dsn, reader))
    yield c
    await c.close()


def _policy(tmp_path: Path, body: str) -> CompiledPolicy:
    path = tmp_path / "p.yaml"
    path.write_text(body)
    return compile_policy(load_policy_file(path))


ALLOW_ALL = 'name: kinds\ntables:\n  "public.*": allow\n  "public.remote_orders": allow\n'


def test_every_kind_is_in_the_snapshot(snap: SchemaSnapshot) -> None:
    kinds = {r.name: r.kind for r in snap.relations}
    assert kinds == {
        "orders": "table", "orders_id_seq": "sequence", "order_seq": "sequence", "big_orders": "view",
        "order_sums": "materialized_view", "events": "partitioned_table", "events_2024": "table",
        "remote_orders": "foreign_table",
    }


@pytest.mark.parametrize(("name", "kind", "sql", "rows"), READS, ids=[r[0] for r in READS])
async def test_an_allowed_relation_of_each_kind_is_read(
    snap: SchemaSnapshot, conn: asyncpg.Connection, tmp_path: Path, name: str, kind: str, sql: str,
    rows: list[tuple[object, ...]],
) -> None:
    verdict = check(sql, _policy(tmp_path, ALLOW_ALL), snap)
    assert verdict.allowed, verdict.reason()
    assert [tuple(r.values()) for r in await run_read_only(conn, verdict.executable_sql)] == rows


@pytest.mark.parametrize(("name", "kind", "sql", "rows"), READS, ids=[r[0] for r in READS])
def test_a_denied_relation_of_each_kind_is_refused(
    snap: SchemaSnapshot, tmp_path: Path, name: str, kind: str, sql: str, rows: list[tuple[object, ...]]
) -> None:
    policy = _policy(tmp_path, ALLOW_ALL + f'  "public.{name}": deny\n')
    verdict = check(sql, policy, snap)
    assert not verdict.allowed
    assert verdict.violations[0].rule == "PGM201", verdict.reason()


def test_a_sequence_matched_by_no_allow_rule_is_refused(snap: SchemaSnapshot, tmp_path: Path) -> None:
    policy = _policy(tmp_path, 'name: kinds\ntables:\n  "public.orders": allow\n')
    verdict = check("SELECT last_value FROM order_seq", policy, snap)
    assert [v.rule for v in verdict.violations] == ["PGM202"]


def test_a_foreign_table_needs_its_exact_name(snap: SchemaSnapshot, tmp_path: Path) -> None:
    globbed = check("SELECT id FROM remote_orders", _policy(tmp_path, 'name: k\ntables:\n  "public.*": allow\n'), snap)
    assert [v.rule for v in globbed.violations] == ["PGM201"]
    assert check("SELECT id FROM remote_orders", _policy(tmp_path, ALLOW_ALL), snap).allowed
