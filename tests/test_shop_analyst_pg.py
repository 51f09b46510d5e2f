"""The example policy of issue 2 (`policies/shop-analyst.yaml`, shipped as written), enforced as
its comments say against a real PostgreSQL: users with password_hash and ssn, secrets, orders
with tenant_id, a view over secrets. Everything goes through the real Runtime: policy compiled
from the shipped file, live schema snapshot, checker, executor, least-privilege role."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from pgmcp.config.loader import load_config
from pgmcp.errors import PolicyDenied, QueryTimeout
from pgmcp.service.runtime import Runtime
from tests.conftest import TestDatabase
from tests.mcp_setup import role_dsn
from tests.readers import reader_role

FIXTURE = """
CREATE TABLE users (id int PRIMARY KEY, name text, email text, password_hash text, ssn text);
CREATE TABLE secrets (id int PRIMARY KEY, api_key text);
CREATE TABLE orders (id int PRIMARY KEY, tenant_id int NOT NULL, user_id int REFERENCES users(id),
                     amount numeric(10,2), note text);
CREATE VIEW secret_view AS SELECT id, api_key FROM secrets;
CREATE VIEW user_names AS SELECT id, name FROM users;
CREATE FUNCTION st_area(x numeric) RETURNS numeric LANGUAGE sql IMMUTABLE AS 'SELECT x * x';
CREATE FUNCTION my_udf(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x';
INSERT INTO users SELECT g, 'user ' || g, 'u' || g || '@example.com', 'hash' || g, '000-00-' || g
  FROM generate_series(1, 300) g;
INSERT INTO secrets VALUES (1, 'sk-live-123');
-- tenant 1: ids 1..150; tenant 2: ids 151..300, one with a note that would break a cast
INSERT INTO orders SELECT g, CASE WHEN g <= 150 THEN 1 ELSE 2 END, g, g * 1.5, g::text
  FROM generate_series(1, 300) g;
UPDATE orders SET note = 'SECRET-T2' WHERE id = 151;
"""


@pytest.fixture(scope="module")
def role(pg_database: TestDatabase) -> Iterator[str]:
    yield from reader_role(pg_database, FIXTURE, "analyst")


@pytest.fixture(scope="module")
async def runtime(pg_database: TestDatabase, role: str, tmp_path_factory: pytest.TempPathFactory,
                  ) -> AsyncIterator[Runtime]:
    folder = tmp_path_factory.mktemp("shop-analyst")
    config_path = folder / "pgmcp.yaml"
    config_path.write_text(json.dumps({
        "databases": {"shop": {"dsn": role_dsn(pg_database, role), "policies": ["shop-analyst"]}},
        "limits": {"max_rows": 1000, "statement_timeout": "5s"},
    }))
    rt = Runtime(load_config(config_path))
    await rt.start()
    yield rt
    await rt.close()


async def rows(rt: Runtime, sql: str) -> list[list[Any]]:
    return (await rt.execute("shop", sql)).rows


DENIED = [
    ("SELECT password_hash FROM users", "PGM301"),
    ("SELECT * FROM users", "PGM301"),                       # star expanded with the live schema
    ("SELECT u.* FROM users u", "PGM301"),
    ("SELECT u FROM users u", "PGM303"),                     # whole-row reference
    ("SELECT row_to_json(u) FROM users u", "PGM303"),
    ("SELECT id FROM users WHERE password_hash LIKE 'hash1%'", "PGM301"),  # used only in WHERE
    ("SELECT id FROM users ORDER BY ssn", "PGM301"),         # "*.*.ssn" in any table
    ("SELECT o.id FROM orders o JOIN users u ON u.ssn = o.note", "PGM301"),
    ("SELECT * FROM secrets", "PGM201"),
    ("SELECT api_key FROM public.secrets", "PGM201"),
    ('SELECT * FROM "SECRETS"', "PGM2"),                      # quoted: another (unknown) relation
    ("SELECT * FROM secret_view", "PGM204"),                  # a view over a denied table
    ("SELECT * FROM pg_catalog.pg_authid", "PGM201"),        # baseline: system catalogs
    ("SELECT pg_sleep(1)", "PGM401"),
    ("SELECT PG_SLEEP(1)", "PGM401"),
    ("SELECT my_udf(1)", "PGM403"),                           # unknown function, not allowed
    ("DELETE FROM orders", "PGM101"),
    ("WITH d AS (DELETE FROM orders RETURNING *) SELECT * FROM d", "PGM102"),
    ("EXPLAIN ANALYZE SELECT id FROM orders", "PGM106"),      # explain_analyze not set
    ("SELECT id FROM orders; SELECT 1", "PGM002"),
]


@pytest.mark.parametrize(("sql", "rule"), DENIED)
async def test_denied_reads_are_denied_and_nothing_runs(runtime: Runtime, sql: str, rule: str) -> None:
    with pytest.raises(PolicyDenied) as info:
        await runtime.execute("shop", sql)
    verdict = info.value.verdict
    assert verdict is not None and not verdict.allowed
    assert any(v.rule.startswith(rule) for v in verdict.violations), verdict.reason()


async def test_deciding_rules_point_into_the_shipped_policy_file(runtime: Runtime) -> None:
    verdict = await runtime.check("shop", "SELECT password_hash FROM users")
    [violation] = [v for v in verdict.violations if v.rule == "PGM301"]
    assert violation.source is not None and violation.source.file.endswith("shop-analyst.yaml")
    assert violation.source.line == 9  # columns.deny in the document exactly as issue 2 wrote it
    assert "password_hash" in violation.message and violation.line == 1 and violation.column == 8


async def test_allowed_reads_run(runtime: Runtime) -> None:
    assert await rows(runtime, "SELECT id, name FROM users WHERE id = 7") == [[7, "user 7"]]
    assert await rows(runtime, "SELECT name FROM user_names WHERE id = 2") == [["user 2"]]
    assert await rows(runtime, "SELECT st_area(3)") == [["9"]]   # functions.allow: st_*
    plan = await rows(runtime, "EXPLAIN SELECT id FROM users")     # statements: [select, explain]
    assert plan and "Scan" in str(plan)


FILTERED = [
    "SELECT tenant_id, count(*) FROM orders GROUP BY tenant_id",
    "SELECT o.tenant_id, count(*) FROM orders o JOIN users u ON u.id = o.user_id GROUP BY 1",
    "SELECT tenant_id, count(*) FROM (SELECT * FROM orders) x GROUP BY 1",
    "WITH t AS (SELECT tenant_id FROM public.orders) SELECT tenant_id, count(*) FROM t GROUP BY 1",
    "SELECT 1, count(*) FROM users u WHERE EXISTS (SELECT 1 FROM orders o WHERE o.user_id = u.id)",
    "SELECT tenant_id, count(*) FROM orders WHERE tenant_id = 2 OR true GROUP BY 1",
    "SELECT tenant_id, count(*) FROM ORDERS GROUP BY 1 UNION ALL SELECT 0, count(*) FROM orders WHERE false",
]


@pytest.mark.parametrize("sql", FILTERED)
async def test_every_read_of_orders_sees_only_tenant_1(runtime: Runtime, sql: str) -> None:
    result = await rows(runtime, sql)
    counts = {row[0]: row[1] for row in result}
    assert counts.get(2) is None
    assert 150 in counts.values()  # tenant 1 has 150 orders; users with tenant-1 orders too


async def test_a_failing_predicate_never_sees_other_tenants_rows(runtime: Runtime) -> None:
    # The note 'SECRET-T2' of tenant 2 would make this cast fail (and print the value) if the
    # planner evaluated it on rows the filter removes.
    result = await rows(runtime, "SELECT count(*) FROM orders WHERE CAST(note AS int) > 0")
    assert result == [[150]]


async def test_row_cap_and_timeout_of_the_policy(runtime: Runtime) -> None:
    capped = await runtime.execute("shop", "SELECT id FROM users")
    assert capped.row_count == 100 and capped.truncated            # limits.max_rows: 100
    assert "LIMIT 100" in capped.sql
    with pytest.raises(QueryTimeout) as info:                       # limits.statement_timeout: 2s
        await runtime.execute(
            "shop", "SELECT count(*) FROM generate_series(1, 20000) a CROSS JOIN generate_series(1, 20000) b"
        )
    assert "2000" in str(info.value)
    assert await rows(runtime, "SELECT 1") == [[1]]                # still serving
