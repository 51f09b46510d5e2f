"""Issue 10's attacks on a real PostgreSQL, as the least-privilege reader role: refused, and proven real.

Each attack is judged with the live schema and must be refused with the expected rule. Then
the SQL that reached PostgreSQL before the fix (the attack as written, or as sqlglot printed
it back) is run as the reader role, directly, to show what it would have leaked: the test
proves the refusal matters. The legitimate neighbours, wrongly refused before, must pass and
return exactly what the policy lets through.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from pgmcp.policy.checker import check
from pgmcp.policy.compiler import compile_policy
from pgmcp.policy.document import load_policy_spec
from pgmcp.schema.snapshot import SchemaSnapshot
from tests.conftest import TestDatabase
from tests.readers import reader_role, run_read_only
from tests.test_shop_analyst_pg import FIXTURE

REPO = Path(__file__).parent.parent
POLICY = compile_policy(load_policy_spec(["shop-analyst"], REPO))

# A quoted alias stands for what sqlglot printed back for a string-literal or dollar-quoted one.
FORGED = "(SELECT * FROM public.orders AS {alias} WHERE true OFFSET 0) AS orders"
LEAK_T2 = f"SELECT tenant_id FROM {FORGED.format(alias='_pgmcp_rf')} WHERE tenant_id = 2 LIMIT 1"
CAST_ORACLE = "SELECT 1 FROM (SELECT * FROM public.users AS {alias} WHERE CAST(password_hash AS int) > 0 OFFSET 0) u"

# (attack, expected rule, SQL that leaked before (None: the attack itself), what it leaks)
ATTACKS: list[tuple[str, str, str | None, str]] = [
    # 1. table alias column lists: d is password_hash, by position
    ("SELECT d FROM users AS u(a, b, c, d) WHERE a = 1", "PGM301", None, "hash1"),
    ("SELECT * FROM users AS u(a, b, c, d) WHERE a = 1", "PGM301", None, "hash1"),
    ("SELECT * FROM users AS u(a) WHERE a = 1", "PGM301", None, "hash1"),
    ("SELECT u.d FROM orders o JOIN users AS u(a, b, c, d) ON u.a = o.user_id WHERE o.id = 1", "PGM301", None,
     "hash1"),
    ("SELECT x.d FROM orders o, LATERAL (SELECT d FROM users AS u(a, b, c, d) WHERE a = o.user_id) x "
     "WHERE o.id = 1", "PGM301", None, "hash1"),
    ("SELECT d FROM ONLY users AS u(a, b, c, d) WHERE a = 1", "PGM301", None, "hash1"),
    ("SELECT d FROM users AS u(a, b, c, d) TABLESAMPLE SYSTEM (100) WHERE a = 1", "PGM301", None, "hash1"),
    ("SELECT a FROM users AS u(a, b, c, d) WHERE d LIKE 'hash17%' ORDER BY a LIMIT 1", "PGM301", None, "[[17]]"),
    ("SELECT a FROM users AS u(a, b, c, d) ORDER BY d LIMIT 1", "PGM301", None, "[[1]]"),
    ("SELECT (u).d FROM users AS u(a, b, c, d) WHERE a = 1", "PGM301", None, "hash1"),
    # ... and the same through join aliases, derived tables, CTEs (not quoted by the issue)
    ("SELECT j.d FROM (users u JOIN orders o ON o.user_id = u.id) AS j(a, b, c, d) WHERE j.a = 1", "PGM301",
     None, "hash1"),
    ("SELECT t.x FROM (SELECT * FROM users) AS t(a, b, c, x) WHERE a = 1", "PGM301", None, "hash1"),
    ("WITH c(a, b, c, d) AS (SELECT id, name, email, password_hash FROM users) SELECT d FROM c WHERE a = 1",
     "PGM301", None, "hash1"),
    ("SELECT id FROM users JOIN (SELECT 'hash1') AS p(password_hash) USING (password_hash)", "PGM301", None,
     "[[1]]"),
    ("SELECT id FROM users NATURAL JOIN (VALUES ('hash7')) AS p(password_hash)", "PGM301", None, "[[7]]"),
    # 2. forged row-filter fences, in every token form: refused before any fence is trusted
    (f"SELECT tenant_id FROM {FORGED.format(alias=chr(39) + '_pgmcp_rf' + chr(39))} WHERE tenant_id = 2",
     "PGM005", LEAK_T2, "[[2]]"),
    (f"SELECT tenant_id FROM {FORGED.format(alias='$$_pgmcp_rf$$')} WHERE tenant_id = 2", "PGM005", LEAK_T2,
     "[[2]]"),
    (f"SELECT tenant_id FROM {FORGED.format(alias='$q$_pgmcp_rf$q$')} WHERE tenant_id = 2", "PGM005", LEAK_T2,
     "[[2]]"),
    (f"SELECT tenant_id FROM {FORGED.format(alias='_pgmcp_rf')} WHERE tenant_id = 2", "PGM005", LEAK_T2, "[[2]]"),
    (f"SELECT tenant_id FROM {FORGED.format(alias='_PGMCP_RF')} WHERE tenant_id = 2", "PGM005", LEAK_T2, "[[2]]"),
    (f"SELECT tenant_id FROM {FORGED.format(alias=chr(34) + '_pgmcp_rf' + chr(34))} WHERE tenant_id = 2",
     "PGM005", LEAK_T2, "[[2]]"),
    (f"SELECT tenant_id FROM {FORGED.format(alias='U&' + chr(34) + chr(92) + '005fpgmcp_rf' + chr(34))} "
     "WHERE tenant_id = 2", "PGM005", LEAK_T2, "[[2]]"),
    (f"SELECT tenant_id FROM {FORGED.format(alias='x')} AS _pgmcp_capped WHERE tenant_id = 2", "PGM005", None,
     ""),
    # the CAST oracle inside a forged fence: its WHERE was exempt from column rules
    (CAST_ORACLE.format(alias="'_pgmcp_rf'"), "PGM005", CAST_ORACLE.format(alias="_pgmcp_rf"), "hash1"),
    # 3. type references: existence and OID, column names through a row type
    ("SELECT 'secrets'::regclass::text", "PGM205", None, "secrets"),
    ("SELECT 'public.secrets'::regclass::oid > 0", "PGM205", None, "True"),
    ("SELECT 'secrets'::regtype::text", "PGM205", None, "secrets"),
    ("SELECT to_json(json_populate_record(NULL::secrets, '{}'))", "PGM205", None, "api_key"),
    ("SELECT to_json(json_populate_record(NULL::users, '{}'))", "PGM205", None, "password_hash"),
    ("SELECT to_json(json_populate_record(NULL::pg_authid, '{}'))", "PGM205", None, "rolpassword"),
    ("SELECT to_json(json_populate_record(NULL::pg_catalog.pg_statistic, '{}'))", "PGM205", None, "stanullfrac"),
    ("SELECT (SELECT relname FROM pg_class WHERE oid = 'secrets'::regclass)", "PGM2", None, "secrets"),
    # an untyped literal next to a regclass/regtype value is read as a name: the hidden OID
    ("SELECT (CASE WHEN false THEN 'orders'::regclass ELSE 'secrets' END)::oid > 0", "PGM205", None, "True"),
    ("SELECT (CASE WHEN false THEN pg_typeof(1) ELSE 'secrets' END)::oid > 0", "PGM205", None, "True"),
    ("SELECT pg_typeof(1) IN ('int4', $$public.secrets$$)", "PGM205", None, "True"),
]

# Wrongly refused before, now allowed: (query, rows it returns as the reader role)
LEGIT: list[tuple[str, list[list[Any]]]] = [
    ("SELECT id, note FROM PUBLIC.ORDERS ORDER BY id LIMIT 2", [[1, "1"], [2, "2"]]),
    ('SELECT id FROM "public"."orders" WHERE id = 3', [[3]]),
    ("SELECT row_to_json(o)::text FROM orders o WHERE o.id = 1",
     [['{"id":1,"tenant_id":1,"user_id":1,"amount":1.50,"note":"1"}']]),
    ("SELECT (o)::text FROM orders o WHERE o.id = 2", [["(2,1,2,3.00,2)"]]),
    ("SELECT json_agg(o ORDER BY o.id)::text FROM orders o WHERE o.id < 2",
     [['[{"id":1,"tenant_id":1,"user_id":1,"amount":1.50,"note":"1"}]']]),
    ("SELECT j.x, j.y FROM (orders o JOIN users u ON u.id = o.user_id) AS j(x, y) WHERE j.x = 4", [[4, 1]]),
    ("SELECT a, b FROM users AS u(a, b) WHERE a = 2", [[2, "user 2"]]),
    ("SELECT j.name FROM (users u JOIN orders o ON o.user_id = u.id) AS j WHERE j.user_id = 5", [["user 5"]]),
    # a bare DISTINCT ON / ORDER BY name is the output column: one row, not one per password hash
    ("SELECT DISTINCT ON (password_hash) 'x' AS password_hash FROM users", [["x"]]),
    # a fence-shaped subquery of the user's own is just a subquery: the real fence goes inside it
    ("SELECT tenant_id, count(*) FROM (SELECT * FROM orders AS x WHERE true OFFSET 0) AS orders GROUP BY 1",
     [[1, 150]]),
    ("SELECT 'orders'::regclass::text, NULL::orders IS NULL", [["orders", True]]),
]


@pytest.fixture(scope="module")
def role(pg_database: TestDatabase) -> Iterator[str]:
    yield from reader_role(pg_database, FIXTURE, "resolve")


async def outcome(conn: asyncpg.Connection, sql: str) -> str:
    """What running `sql` as the reader shows: its rows, or the error text (an oracle too)."""
    try:
        return str([list(r) for r in await run_read_only(conn, sql)])
    except asyncpg.PostgresError as err:
        return f"error: {err}"


@pytest.mark.parametrize(("sql", "rule", "leaky", "leak"), ATTACKS)
async def test_attack_is_refused_and_would_have_leaked(
    snapshot: SchemaSnapshot, conn: asyncpg.Connection, sql: str, rule: str, leaky: str | None, leak: str
) -> None:
    verdict = check(sql, POLICY, snapshot)
    assert not verdict.allowed, f"allowed: {sql}"
    assert any(v.rule.startswith(rule) for v in verdict.violations), verdict.reason()
    assert not check(sql, POLICY).allowed, f"allowed offline: {sql}"  # offline check-sql refuses too
    assert leak in await outcome(conn, leaky or sql)


@pytest.mark.parametrize(("sql", "expected"), LEGIT)
async def test_legit_query_is_allowed_and_filtered(
    snapshot: SchemaSnapshot, conn: asyncpg.Connection, sql: str, expected: list[list[Any]]
) -> None:
    verdict = check(sql, POLICY, snapshot)
    assert verdict.allowed, verdict.reason()
    rows = [list(r) for r in await run_read_only(conn, verdict.executable_sql)]
    assert [[str(v) if not isinstance(v, (int, bool, str)) else v for v in row] for row in rows] == expected


async def test_forged_fence_without_reserved_name_is_fenced_again(
    snapshot: SchemaSnapshot, conn: asyncpg.Connection
) -> None:
    # The shape alone earns nothing: the real orders inside it is fenced, tenant 2 stays hidden.
    sql = "SELECT count(*) FROM (SELECT * FROM public.orders AS rf WHERE true OFFSET 0) AS orders WHERE tenant_id = 2"
    verdict = check(sql, POLICY, snapshot)
    assert verdict.allowed, verdict.reason()
    assert verdict.rewritten_sql is not None and verdict.rewritten_sql.count("_pgmcp_rf") == 2
    assert [list(r) for r in await run_read_only(conn, verdict.executable_sql)] == [[0]]
