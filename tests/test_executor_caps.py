"""Caps enforced while reading, odd values, and the one deadline, on the real PostgreSQL.

Large values stay in PostgreSQL (a marker naming the column comes back), deep or odd values
are encoded or replaced by a marker (never an error), every type survives pgmcp's wrapping
unchanged, rows are encoded only after the transaction ended, and a check past the call's
deadline is abandoned.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from pgmcp.config.model import DatabaseConfig, LimitsConfig, PoolConfig
from pgmcp.db import executor as executor_module
from pgmcp.db.executor import Checker, Executor, PolicyCheck
from pgmcp.db.offload import INLINE_CHECK_BYTES, InlineBudget
from pgmcp.db.pools import PoolSet
from pgmcp.errors import PolicyDenied, QueryTimeout
from pgmcp.policy.compiler import compile_policy
from pgmcp.policy.document import load_policy_spec
from pgmcp.policy.verdict import Verdict
from tests.conftest import TestDatabase
from tests.test_serialize import CASES, SETUP

ROOT = Path(__file__).resolve().parent.parent
LIMITS = LimitsConfig(max_rows=1000, max_result_bytes=200_000, max_value_bytes=100_000, statement_timeout=5.0)


def permissive(sql: str) -> Verdict:
    return Verdict(sql=sql, allowed=True, statement_kind="select")


@pytest.fixture(scope="module")
def schema(pg_database: TestDatabase) -> Iterator[None]:
    pg_database.run_sql(SETUP + "CREATE TABLE docs (id int, body text); "
                        "INSERT INTO docs SELECT g, repeat(md5(g::text), 10000) FROM generate_series(1, 3) g;")
    yield None


@pytest.fixture
async def make(pg_database: TestDatabase, schema: None) -> AsyncIterator[Any]:
    opened: list[tuple[PoolSet, Executor]] = []

    async def build(checker: Checker = permissive, limits: LimitsConfig = LIMITS, dsn: str | None = None) -> Executor:
        db = DatabaseConfig(name="main", dsn=dsn or pg_database.dsn, pool=PoolConfig(min_size=1, max_size=2))
        pools = PoolSet([db], limits)
        await pools.open()
        ex = Executor(pools, {"main": checker}, limits)
        opened.append((pools, ex))
        return ex

    yield build
    for pools, ex in opened:
        await ex.close()
        await pools.close()


def strict_json(value: Any) -> str:
    return json.dumps(value, allow_nan=False)


@pytest.mark.parametrize(("expr", "expected"), CASES, ids=[c[0][:40] for c in CASES])
async def test_every_type_survives_the_wrapping(make: Any, expr: str, expected: Any) -> None:
    ex = await make()
    result = await ex.execute("main", f"SELECT {expr} AS v, 1 AS one")
    assert result.rows == [[expected, 1]] and not result.truncated
    assert [c.name for c in result.columns] == ["v", "one"]


# (SQL, the column whose value is left in PostgreSQL)
LARGE = [
    ("SELECT 1 AS id, repeat('x', 2000000) AS big", "big"),
    ("SELECT array_fill(1.5::numeric, ARRAY[300000]) AS arr", "arr"),
    ("SELECT decode(repeat('ab', 500000), 'hex') AS raw", "raw"),
    ("SELECT id, body FROM docs ORDER BY id", "body"),  # stored (toasted, compressed) in a table
    ("SELECT (SELECT jsonb_agg(g) FROM generate_series(1, 100000) g) AS doc", "doc"),
]


@pytest.mark.parametrize(("sql", "column"), LARGE, ids=[c for _, c in LARGE])
async def test_value_larger_than_max_value_bytes_stays_in_postgres(make: Any, sql: str, column: str) -> None:
    ex = await make()
    result = await ex.execute("main", sql)
    index = [c.name for c in result.columns].index(column)
    for row in result.rows:
        marker = row[index]
        assert isinstance(marker, str) and f"column '{column}' omitted" in marker
        assert "max_value_bytes (100000)" in marker
    assert result.truncated and f"'{column}'" in (result.truncated_reason or "")
    assert result.rows  # the row itself is there, with its other values
    strict_json(result.rows)


async def test_small_values_pass_and_order_and_duplicate_names_are_kept(make: Any) -> None:
    ex = await make()
    result = await ex.execute(
        "main", "SELECT g AS a, repeat('y', g) AS a FROM generate_series(1, 50) g ORDER BY g DESC -- end"
    )
    assert [r[0] for r in result.rows] == list(range(50, 0, -1))
    assert result.rows[0][1] == "y" * 50 and not result.truncated
    assert [c.name for c in result.columns] == ["a", "a"]


@pytest.mark.parametrize("sql", ["SELECT 'a;' AS t;", "SELECT 'a;' AS t ; ;\n", "SELECT 'a;' AS t -- x;",
                                 "SELECT 'a;' AS t /* ; */;"])
async def test_trailing_semicolons_and_comments_survive_the_wrapping(make: Any, sql: str) -> None:
    ex = await make()
    assert (await ex.execute("main", sql)).rows == [["a;"]]


async def test_result_bytes_counted_while_reading(make: Any) -> None:
    """10 million 1 kB rows: reading stops near the cap, far before max_rows."""
    ex = await make(limits=replace(LIMITS, max_rows=100_000, max_result_bytes=50_000))
    result = await ex.execute("main", "SELECT repeat('x', 1000) AS big FROM generate_series(1, 10000000)")
    assert result.truncated and "max_result_bytes (50000)" in (result.truncated_reason or "")
    assert 0 < result.row_count < 50
    assert len(json.dumps(result.rows, separators=(",", ":"))) <= 50_000
    assert result.rows_fetched <= 2 * 50 + 10  # read at most twice the cap, as PostgreSQL sizes it


DEEP = [400, 900, 5000]


@pytest.mark.parametrize("depth", DEEP)
async def test_deep_jsonb_comes_back_as_a_marker(make: Any, depth: int) -> None:
    ex = await make()
    sql = f"SELECT (repeat('[', {depth}) || repeat(']', {depth}))::jsonb AS deep, 7 AS n"
    result = await ex.execute("main", sql)
    [[deep, n]] = result.rows
    assert n == 7 and isinstance(deep, str) and "nested" in deep and "levels deep" in deep
    strict_json(result.rows)


async def test_shallow_jsonb_is_kept_as_structure(make: Any) -> None:
    ex = await make()
    result = await ex.execute("main", "SELECT (repeat('[', 50) || '1' || repeat(']', 50))::jsonb AS d")
    value = result.rows[0][0]
    for _ in range(49):
        assert isinstance(value, list)
        value = value[0]
    assert value == [1]


ODD = [
    ("'NaN'::float8", "NaN"),
    ("'-Infinity'::float8", "-Infinity"),
    ("'Infinity'::numeric", "Infinity"),
    ("('1' || repeat('0', 100000))::numeric", "1" + "0" * 100000),
    ("'[1e400]'::jsonb", ["1" + "0" * 400]),  # PostgreSQL keeps it as a 401-digit integer
    ("('[' || repeat('9', 5000) || ']')::jsonb", ["9" * 5000]),  # past int()'s 4,300 digits
]


@pytest.mark.parametrize(("expr", "expected"), ODD, ids=[o[0][:30] for o in ODD])
@pytest.mark.parametrize("as_float", [False, True])
async def test_odd_numbers_are_encoded(make: Any, expr: str, expected: Any, as_float: bool) -> None:
    ex = await make(limits=replace(LIMITS, decimal_as_float=as_float, max_value_bytes=1_000_000))
    result = await ex.execute("main", f"SELECT {expr} AS v")
    strict_json(result.rows)
    if not as_float:  # big integers may come back as numbers or as text: the digits are exact
        [[value]] = result.rows
        assert json.dumps(value).replace('"', "") == json.dumps(expected).replace('"', "")


async def test_invalid_utf8_from_a_sql_ascii_database(make: Any, pg_database: TestDatabase) -> None:
    name = f"t_ascii_{uuid.uuid4().hex[:8]}"
    pg_database.server.run_sql(f"CREATE DATABASE {name} ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' "
                               "TEMPLATE template0")
    try:
        pg_database.server.run_sql(
            "CREATE TABLE t (v text, j jsonb, a text[]); "
            "INSERT INTO t VALUES (E'ok \\xff\\xfe end', E'{\"k\": \"\\xff\"}', ARRAY[E'\\xc3', 'fine']);", name
        )
        ex = await make(dsn=pg_database.server.dsn(name))
        result = await ex.execute("main", "SELECT v, j, a, v::varchar AS vc FROM t")
        [[text, doc, arr, varchar]] = result.rows
        assert text == "ok \ufffd\ufffd end" and varchar == text
        assert doc == {"k": "\ufffd"}
        # Inside arrays and records asyncpg's own decoder reads the bytes as LATIN1: readable
        # text, never an error (a lone 0xC3 shows as "Ã").
        assert arr == ["\u00c3", "fine"]
        strict_json(result.rows)
    finally:
        pg_database.server.run_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def test_work_mem_is_set_local(make: Any) -> None:
    ex = await make(limits=replace(LIMITS, work_mem="4MB"))
    assert (await ex.execute("main", "SHOW work_mem")).rows == [["4MB"]]
    default = await make(limits=replace(LIMITS))
    assert (await default.execute("main", "SELECT current_setting('work_mem')")).rows == [["16MB"]]


async def test_rows_are_encoded_after_the_transaction_ended(make: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Encoding slower than idle_in_transaction_session_timeout does not trip it."""
    ex = await make(limits=replace(LIMITS, idle_in_transaction_timeout=0.2))
    slow = executor_module.RowEncoder.encode

    def slow_row(encoder: Any, record: Any) -> bytes:
        time.sleep(0.1)
        return slow(encoder, record)

    monkeypatch.setattr(executor_module.RowEncoder, "encode", slow_row)
    result = await ex.execute("main", "SELECT g FROM generate_series(1, 5) g")
    assert result.rows == [[1], [2], [3], [4], [5]]
    assert (await ex.execute("main", "SELECT 1")).rows == [[1]]  # the connection is fine


async def test_a_slow_check_is_abandoned_at_the_deadline(make: Any) -> None:
    def slow(sql: str) -> Verdict:
        time.sleep(3)
        return permissive(sql)

    ex = await make(checker=slow, limits=replace(LIMITS, statement_timeout=0.5))
    started = time.monotonic()
    with pytest.raises(QueryTimeout, match="time limit"):
        await ex.execute("main", "SELECT 1")
    assert time.monotonic() - started < 2.5


BASELINE = compile_policy(load_policy_spec([], ROOT))
# A policy that lets a huge statement reach the analysis (the default limits.max_sql_bytes,
# 100 kB, would refuse it before parsing): what the deadline must then stop.
UNBOUNDED = compile_policy(replace(BASELINE.spec, max_sql_bytes=10_000_000))


async def test_a_hostile_check_in_a_checker_process_is_killed_at_the_deadline(make: Any) -> None:
    """A 1 MB IN list of expressions keeps sqlglot busy for seconds: its process is killed at
    the deadline, and the next check gets a fresh one. (Its items are not plain literals: a
    list of those is judged as one placeholder, in a tenth of a second; pgmcp.policy.longlists.)"""
    ex = await make(checker=PolicyCheck.fixed(UNBOUNDED), limits=replace(LIMITS, statement_timeout=1.0))
    await ex.start()
    hostile = "SELECT 1 WHERE 1 IN (" + ",".join(["1+0"] * 200_000) + ")"
    started = time.monotonic()
    with pytest.raises(QueryTimeout, match="checking the SQL"):
        await ex.execute("main", hostile)
    assert time.monotonic() - started < 4
    assert (await ex.execute("main", "SELECT 41 + 1 AS n")).rows == [[42]]


def in_list(size: int) -> str:
    """`SELECT 1 AS n WHERE 1 IN (1, 1, ...)` of about `size` bytes."""
    return "SELECT 1 AS n WHERE 1 IN (" + ",".join(["1"] * (size // 2)) + ")"


# (id, statement, whether a checker process checks it, refused with this rule or allowed (None))
ROUTES = [
    ("small: inline", "SELECT 41 + 1 AS n", False, None),
    ("at the inline size: inline", in_list(INLINE_CHECK_BYTES - 40), False, None),
    ("over the inline size: a checker process", in_list(INLINE_CHECK_BYTES + 100), True, None),
    ("over max_sql_bytes: refused inline before parsing", in_list(200_000), False, "PGM007"),
]


@pytest.mark.parametrize(("sql", "in_process", "refused"), [r[1:] for r in ROUTES], ids=[r[0] for r in ROUTES])
async def test_small_statements_are_checked_inline_and_large_ones_in_a_process(
    make: Any, sql: str, in_process: bool, refused: str | None
) -> None:
    ex = await make(checker=PolicyCheck.fixed(BASELINE))
    await ex.start()
    assert ex.checker_processes == 0  # nothing is started ahead of the first large statement
    if refused is None:
        assert (await ex.execute("main", sql)).rows == [[1 if "IN (" in sql else 42]]
    else:
        with pytest.raises(PolicyDenied) as caught:
            await ex.execute("main", sql)
        assert [v.rule for v in caught.value.verdict.violations] == [refused]
    assert ex.checker_processes == (1 if in_process else 0)


def test_the_inline_budget_runs_out_and_refills() -> None:
    now = [0.0]
    budget = InlineBudget(budget=0.2, window=1.0, clock=lambda: now[0])
    assert budget.allows()
    budget.spent(0.25)  # one check took longer than the whole budget
    assert not budget.allows()
    now[0] = 0.2  # drained at 0.2 s per second: 0.21 s left, still over
    assert not budget.allows()
    now[0] = 0.3  # 0.19 s left
    assert budget.allows()
