"""Executor against the real PostgreSQL: refusals, read-only, caps, timeouts, errors, restarts."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from pgmcp.config.model import DatabaseConfig, LimitsConfig, PoolConfig
from pgmcp.db import executor as executor_module
from pgmcp.db.executor import Checker, Executor
from pgmcp.db.pools import PoolSet
from pgmcp.errors import (
    DatabaseNotFound,
    PermissionDenied,
    PgmcpError,
    PolicyDenied,
    QueryFailed,
    QueryTimeout,
    UndefinedObject,
)
from pgmcp.policy.checker import check
from pgmcp.policy.compiler import compile_policy
from pgmcp.policy.document import load_policy_spec
from pgmcp.policy.verdict import Verdict, Violation
from tests.conftest import TestDatabase

ROOT = Path(__file__).resolve().parent.parent
PLAIN = f"exec_plain_{uuid.uuid4().hex[:6]}"
LIMITS = LimitsConfig(max_rows=1000, max_result_bytes=100_000, statement_timeout=3.0, lock_timeout=0.3)


def permissive(sql: str) -> Verdict:
    return Verdict(sql=sql, allowed=True, statement_kind="select")


def refusing(sql: str) -> Verdict:
    return Verdict(sql=sql, allowed=False, violations=(Violation("PGM101", "statement-not-allowed", "no"),))


@pytest.fixture(scope="module")
def schema(pg_database: TestDatabase) -> Iterator[None]:
    pg_database.run_sql(f"""
        CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
        INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 1500) g;
        CREATE TABLE secret (v text);
        CREATE ROLE {PLAIN} LOGIN;
        GRANT SELECT ON items TO {PLAIN};
    """)
    yield None
    pg_database.run_sql(f"DROP OWNED BY {PLAIN}")
    pg_database.server.run_sql(f"DROP ROLE {PLAIN}")


def config(pg_database: TestDatabase, name: str = "main", **kw: Any) -> DatabaseConfig:
    base = DatabaseConfig(name=name, dsn=pg_database.dsn, pool=PoolConfig(min_size=1, max_size=1))
    return replace(base, **kw)


@pytest.fixture
async def make(pg_database: TestDatabase, schema: None) -> AsyncIterator[Any]:
    """make(checker=..., limits=..., timeouts=..., **db config) -> an Executor on its own pools."""
    opened: list[PoolSet] = []

    async def build(checker: Checker = permissive, limits: LimitsConfig = LIMITS,
                    timeouts: dict[str, float] | None = None, **kw: Any) -> Executor:
        pools = PoolSet([config(pg_database, **kw)], limits)
        await pools.open()
        opened.append(pools)
        return Executor(pools, {"main": checker}, limits, timeouts)

    yield build
    for pools in opened:
        await pools.close()


async def test_refusal_raises_with_the_verdict_and_runs_nothing(make: Any) -> None:
    ex = await make(checker=refusing)
    with pytest.raises(PolicyDenied) as caught:
        await ex.execute("main", "SELECT 1/0")  # had it run, this would be a division error
    assert caught.value.verdict is not None and caught.value.verdict.violations[0].rule == "PGM101"


async def test_result_shape_and_json_safety(make: Any) -> None:
    ex = await make()
    sql = "SELECT id, name, 1.50::numeric AS price FROM items ORDER BY id LIMIT 2"
    result = await ex.execute("main", sql)
    types = [(c.name, c.type) for c in result.columns]
    assert types == [("id", "int4"), ("name", "text"), ("price", "numeric")]
    assert result.rows == [[1, "item 1", "1.50"], [2, "item 2", "1.50"]]
    assert (result.row_count, result.truncated, result.truncated_reason) == (2, False, None)
    assert result.sql.startswith("SELECT id") and result.verdict.allowed
    json.dumps(result.to_dict(), allow_nan=False)


HARDENING = [
    ("transaction_read_only", "on"),
    ("statement_timeout", "3s"),
    ("lock_timeout", "300ms"),
    ("search_path", "public, pg_temp"),
    ("standard_conforming_strings", "on"),
    ("application_name", "pgmcp"),
]


@pytest.mark.parametrize("pgbouncer", [False, True])
async def test_hardening_visible_from_inside_the_query(make: Any, pgbouncer: bool) -> None:
    """Also behind PgBouncer mode, where nothing is set at session level: SET LOCAL does it."""
    ex = await make(pgbouncer=pgbouncer)
    names = ", ".join(f"current_setting('{name}')" for name, _ in HARDENING)
    result = await ex.execute("main", f"SELECT {names}")
    assert result.rows == [[value for _, value in HARDENING]]


async def test_policy_timeout_is_applied_with_set_local(make: Any) -> None:
    ex = await make(timeouts={"main": 1.5})
    [[shown]] = (await ex.execute("main", "SHOW statement_timeout")).rows
    # What is left of the call's 1.5 s deadline, in whole 100 ms (less when the machine is slow
    # to hand out a connection); never the default limit, never more than the database's own.
    assert shown.endswith("ms") and 500 <= int(shown.removesuffix("ms")) <= 1500, shown


@pytest.mark.parametrize("sql", ["CREATE TABLE t2 (i int)", "INSERT INTO items VALUES (9999, 'x')",
                                 "UPDATE items SET name = 'y'"])
async def test_writes_fail_read_only_even_if_the_checker_allows(make: Any, sql: str) -> None:
    ex = await make()
    with pytest.raises(PermissionDenied, match="read-only") as caught:
        await ex.execute("main", sql)
    assert caught.value.sqlstate == "25006"


async def test_session_escape_inside_a_query_is_rolled_back(make: Any) -> None:
    ex = await make()
    await ex.execute("main", "SELECT set_config('default_transaction_read_only', 'off', false)")
    result = await ex.execute("main", "SELECT current_setting('default_transaction_read_only')")
    assert result.rows == [["on"]]


async def test_multi_statement_text_is_rejected_by_postgres(make: Any) -> None:
    ex = await make()
    with pytest.raises(QueryFailed, match="multiple commands") as caught:
        await ex.execute("main", "SELECT 1; SELECT 2")
    assert caught.value.sqlstate == "42601"


async def test_timeout_cancels_and_the_connection_stays_usable(make: Any) -> None:
    ex = await make(timeouts={"main": 0.2})
    pid = (await ex.execute("main", "SELECT pg_backend_pid()")).rows[0][0]
    with pytest.raises(QueryTimeout, match=r"statement_timeout \(200 ms\)"):
        await ex.execute("main", "SELECT pg_sleep(5)")
    assert (await ex.execute("main", "SELECT pg_backend_pid()")).rows == [[pid]]  # same connection


async def test_ten_million_rows_under_a_cap_read_only_cap_plus_one(make: Any) -> None:
    """Rows past max_rows + 1 are never even computed: computing row 1002 would divide by zero."""
    ex = await make()
    sql = ("SELECT g, CASE WHEN g > 1001 THEN 1 / (g - g) END AS boom "
           "FROM (SELECT generate_series(1, 10000000) AS g) AS s")
    result = await ex.execute("main", sql)
    assert result.truncated and "max_rows (1000)" in (result.truncated_reason or "")
    assert result.row_count == 1000 and result.rows[-1] == [1000, None]
    assert result.rows_fetched <= 1001


async def test_byte_cap(make: Any) -> None:
    ex = await make(limits=replace(LIMITS, max_result_bytes=10_000))
    result = await ex.execute("main", "SELECT repeat('x', 1000) AS big FROM generate_series(1, 100)")
    assert result.truncated and "max_result_bytes (10000)" in (result.truncated_reason or "")
    assert 0 < result.row_count < 10
    assert len(json.dumps(result.rows, separators=(",", ":"))) <= 10_000
    assert result.rows_fetched < 100


async def test_unknown_database(make: Any) -> None:
    ex = await make()
    with pytest.raises(DatabaseNotFound, match="configured databases: main"):
        await ex.execute("nope", "SELECT 1")


ERRORS: list[tuple[str, type[PgmcpError], str | None, list[str]]] = [
    # (sql, error, sqlstate, fragments of str(error))
    ("SELECT * FROM nope", UndefinedObject, "42P01",
     ['relation "nope" does not exist', "at line 1, column 15"]),
    ("SELECT nme\nFROM items", UndefinedObject, "42703",
     ['column "nme" does not exist', "line 1, column 8",
      'hint: Perhaps you meant to reference the column "items.name"']),
    ("SELECT no_such_fn(1)", UndefinedObject, "42883",
     ["no_such_fn(integer) does not exist", "hint: No function"]),
    ("SELECT 1/0", QueryFailed, "22012", ["division by zero", "SQLSTATE 22012"]),
    ("SELECT * FROM secret", PermissionDenied, "42501", ["permission denied for table secret"]),
    ("SELECT pg_sleep(5)", QueryTimeout, "57014", ["statement_timeout (300 ms)"]),
    ("DELETE FROM items", PermissionDenied, "25006", ["read-only transaction"]),
]


@pytest.mark.parametrize(("sql", "error", "sqlstate", "fragments"), ERRORS, ids=[e[0][:30] for e in ERRORS])
async def test_error_translation(
    make: Any, sql: str, error: type[PgmcpError], sqlstate: str | None, fragments: list[str]
) -> None:
    ex = await make(user=PLAIN, timeouts={"main": 0.3})
    with pytest.raises(error) as caught:
        await ex.execute("main", sql)
    assert getattr(caught.value, "sqlstate", None) == sqlstate
    for fragment in fragments:
        assert fragment in str(caught.value)


async def test_lock_timeout_is_named(make: Any, pg_database: TestDatabase) -> None:
    ex = await make()
    holder = await asyncpg.connect(pg_database.dsn)
    try:
        async with holder.transaction():
            await holder.execute("LOCK TABLE items IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(QueryTimeout, match=r"lock_timeout \(300 ms\)"):
                await ex.execute("main", "SELECT count(*) FROM items")
    finally:
        await holder.close()
    assert (await ex.execute("main", "SELECT count(*) FROM items")).rows == [[1500]]


async def test_server_restart_mid_test(make: Any, pg_database: TestDatabase) -> None:
    ex = await make()
    assert (await ex.execute("main", "SELECT 1")).rows == [[1]]
    await asyncio.to_thread(pg_database.server.restart)
    assert (await ex.execute("main", "SELECT 2")).rows == [[2]]  # reconnected, pgmcp not restarted


async def test_the_capped_statement_is_kept_and_a_changed_table_is_read_as_it_now_is(
    make: Any, pg_database: TestDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The capped form is parsed once per connection (portal.prepare(cached=True)); after a
    column changes type, its text is the same but its result is not: PostgreSQL refuses the
    kept statement (InvalidCachedStatementError) and the call runs once more, afresh."""
    table = f"kept_{uuid.uuid4().hex[:6]}"
    pg_database.run_sql(f"CREATE TABLE {table} (id int, note text); INSERT INTO {table} VALUES (1, 'a')")
    ex = await make()  # one connection (pool size 1)
    sql = f"SELECT id, note FROM {table}"
    for _ in range(2):
        assert (await ex.execute("main", sql)).rows == [[1, "a"]]
    kept = await ex.execute("main", "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE "
                                    f"'%{table}%OFFSET 0) AS q(c1, c2)'")
    assert kept.rows == [[1]]  # parsed once, used twice
    pg_database.run_sql(f"ALTER TABLE {table} ALTER COLUMN id TYPE bigint; UPDATE {table} SET id = 2^60")
    forgotten: list[Any] = []
    real_forget = executor_module.forget
    monkeypatch.setattr(executor_module, "forget", lambda conn: (forgotten.append(conn), real_forget(conn)))
    result = await ex.execute("main", sql)
    assert result.rows == [[str(2**60), "a"]] and [c.type for c in result.columns] == ["int8", "text"]
    assert len(forgotten) == 1  # the kept statement was refused once, and the call ran again


# -- with the real policy engine (policies/baseline.yaml) ------------------------------------

BASELINE = compile_policy(load_policy_spec([], ROOT))


def baseline(sql: str) -> Verdict:
    return check(sql, BASELINE)


async def test_baseline_runs_the_rewritten_sql_and_reports_its_cap(make: Any) -> None:
    ex = await make(checker=baseline, limits=replace(LIMITS, max_rows=5000))
    result = await ex.execute("main", "SELECT id FROM items ORDER BY id")
    assert result.sql == result.verdict.rewritten_sql and result.sql.endswith("LIMIT 1000")
    assert result.row_count == 1000 and result.truncated
    assert "LIMIT 1000" in (result.truncated_reason or "")
    small = await ex.execute("main", "SELECT id FROM items WHERE id < 4 ORDER BY id")
    assert small.rows == [[1], [2], [3]] and not small.truncated


@pytest.mark.parametrize(("sql", "rule"), [
    ("SELECT pg_sleep(10)", "PGM401"),
    ("DELETE FROM items", "PGM101"),
    ("SELECT 1; SELECT 2", "PGM002"),
    ("SELECT * FROM pg_catalog.pg_authid", "PGM201"),
])
async def test_baseline_refusals(make: Any, sql: str, rule: str) -> None:
    ex = await make(checker=baseline)
    with pytest.raises(PolicyDenied) as caught:
        await ex.execute("main", sql)
    verdict = caught.value.verdict
    assert verdict is not None and rule in [v.rule for v in verdict.violations]
