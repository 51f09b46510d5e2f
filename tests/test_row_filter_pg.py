"""Row-filter fences against a real PostgreSQL: only tenant 1's rows, and no leak through errors.

Each user query is rewritten with `apply_row_filters` (filter `tenant_id = 1` on
public.orders) and run; the expected result is the same query run against a copy of the
table that holds only tenant 1's rows (schema `t1only`, reached through search_path). The
predicates that fail on tenant 2's rows (a cast of 'SECRET-T2', a division by zero on those
rows only) must not fail through the fence. The last tests show, on this server, that the
unfenced form `(SELECT * FROM t WHERE filter) AS t` does leak when the filter is costlier
than the user's predicate: the planner runs the user's cast first and the error message
prints the other tenant's value.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlglot
import yaml
from sqlglot import exp
from sqlglot.optimizer.scope import traverse_scope

from pgmcp.policy.rewrite import apply_row_cap, apply_row_filters, fence_shape, to_sql
from tests.tenants import QUERIES, tenant_copies, tenant_tables

TENANT_FILTER = {("public", "orders"): sqlglot.parse_one("tenant_id = 1", read="postgres")}

def resolve(sql: str) -> exp.Expression:
    """Parse and write schema `public` into every physical table (what the checker does)."""
    tree = sqlglot.parse_one(sql, read="postgres")
    for scope in traverse_scope(tree):
        for table in scope.tables:
            if scope.sources.get(table.alias_or_name) is table and not isinstance(table.this, exp.Func):
                table.set("db", exp.to_identifier("public"))
    return tree


def fenced(sql: str, filters: dict[tuple[str, str], exp.Expression] = TENANT_FILTER) -> str:
    tree = apply_row_filters(resolve(sql), filters)
    capped, _ = apply_row_cap(tree, 1000)
    return to_sql(capped)


@pytest.fixture(scope="module")
async def conns(pg_database: Any) -> AsyncIterator[tuple[asyncpg.Connection, asyncpg.Connection]]:
    pg_database.run_sql(tenant_tables() + tenant_copies((1,)))
    real = await asyncpg.connect(pg_database.dsn, server_settings={"app.tenant": "1"})
    only_t1 = await asyncpg.connect(pg_database.dsn, server_settings={"search_path": "t1only"})
    try:
        yield real, only_t1
    finally:
        await real.close()
        await only_t1.close()


@pytest.mark.parametrize(("name", "sql"), QUERIES, ids=[q[0] for q in QUERIES])
async def test_fenced_query_sees_only_tenant_1(
    conns: tuple[asyncpg.Connection, asyncpg.Connection], name: str, sql: str
) -> None:
    real, only_t1 = conns
    rewritten = fenced(sql)
    assert "_pgmcp_rf" in rewritten
    got = [tuple(r) for r in await real.fetch(rewritten)]
    expected = [tuple(r) for r in await only_t1.fetch(sql)]
    assert got == expected, rewritten
    assert not any("SECRET-T2" in str(v) for row in got for v in row)


async def test_every_orders_reference_is_fenced(conns: tuple[asyncpg.Connection, asyncpg.Connection]) -> None:
    for _, sql in QUERIES:
        tree = sqlglot.parse_one(fenced(sql), read="postgres")
        for table in tree.find_all(exp.Table):
            if table.name == "orders" and table.db == "public":
                fence = table.find_ancestor(exp.Subquery)
                assert fence is not None and fence_shape(fence) is not None, sql


COSTLY_FILTER = {
    ("public", "orders"): sqlglot.parse_one("tenant_id = current_setting('app.tenant')::int", read="postgres")
}
LEAKY = "SELECT id FROM orders WHERE CAST(note AS int) > 0"


async def test_fence_holds_with_a_costly_filter(conns: tuple[asyncpg.Connection, asyncpg.Connection]) -> None:
    real, _ = conns
    rows = await real.fetch(fenced(LEAKY, COSTLY_FILTER))
    assert sorted(r["id"] for r in rows) == list(range(1, 41, 2))


async def test_unfenced_subquery_leaks_through_the_error_message(
    conns: tuple[asyncpg.Connection, asyncpg.Connection],
) -> None:
    # What the fence prevents, observed on this server: the subquery is pulled up, the
    # user's cheap cast is ordered before the costlier filter and fails on tenant 2's row.
    real, _ = conns
    unfenced = (
        "SELECT id FROM (SELECT * FROM public.orders WHERE tenant_id = current_setting('app.tenant')::int)"
        " AS orders WHERE CAST(note AS int) > 0"
    )
    with pytest.raises(asyncpg.InvalidTextRepresentationError, match="SECRET-T2"):
        await real.fetch(unfenced)


ROW_CAP_CASES = yaml.safe_load((Path(__file__).parent / "cases" / "rewrite.yaml").read_text())["row_cap"]


@pytest.mark.parametrize("case", ROW_CAP_CASES, ids=lambda c: c["sql"])
async def test_capped_sql_runs_on_postgres(
    conns: tuple[asyncpg.Connection, asyncpg.Connection], case: dict[str, Any]
) -> None:
    real, _ = conns
    rows_of = "FROM generate_series(1, 30) g"
    big = case["sql"].replace("SELECT 1 AS x", f"SELECT g AS x {rows_of}")
    big = big.replace("SELECT 1", f"SELECT g {rows_of}", 1)
    capped, _ = apply_row_cap(sqlglot.parse_one(big, read="postgres"), 10)
    args = [25] if "$1" in big else []
    rows = await real.fetch(to_sql(capped), *args)
    assert len(rows) <= 10
