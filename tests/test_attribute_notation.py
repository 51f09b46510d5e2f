"""`(x).name` on a real PostgreSQL: a field selection the snapshot proves, or a call refused.

A composite type and tables using it are introspected as a least-privilege role; the checker
then allows field selections under baseline (only the built-in safe functions) and they run,
while attribute notation that is, or may be, a call stays refused.
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
from pgmcp.schema.snapshot import ColumnInfo, CompositeType, SchemaSnapshot
from tests.conftest import TestDatabase
from tests.readers import reader_role, run_read_only
from tests.test_shop_analyst_pg import FIXTURE

REPO = Path(__file__).parent.parent
BASELINE = compile_policy(load_policy_spec(["baseline"], REPO))
SHOP = compile_policy(load_policy_spec(["shop-analyst"], REPO))

EXTRA = """
CREATE TYPE geo AS (lat float8, lon float8);
CREATE TYPE address AS (city text, zip text, location geo);
CREATE TYPE gone AS (a int, b int);
ALTER TYPE gone DROP ATTRIBUTE b;
CREATE TABLE customers (id int PRIMARY KEY, address address, amount numeric, g gone);
INSERT INTO customers VALUES (1, ROW('Oslo', '0150', ROW(59.9, 10.7)), 0.01, ROW(1)),
                             (2, ROW('Lima', '15001', NULL), 0.01, ROW(2));
"""

# (sql, policy, rows it returns)
ALLOWED: list[tuple[str, str, list[list[Any]]]] = [
    ("SELECT (address).city FROM customers ORDER BY id", "baseline", [["Oslo"], ["Lima"]]),
    ("SELECT (c.address).zip FROM customers c WHERE (c.address).city = 'Lima'", "baseline", [["15001"]]),
    ("SELECT ((address).location).lat FROM customers WHERE id = 1", "baseline", [[59.9]]),
    ("SELECT (address).location.lon FROM customers WHERE id = 1", "baseline", [[10.7]]),
    ("SELECT upper((address).city) FROM customers WHERE id = 2", "baseline", [["LIMA"]]),
    ("SELECT (g).a FROM customers WHERE id = 2", "baseline", [[2]]),
    # (u).col on a table alias reads that column only
    ("SELECT (u).name FROM users u WHERE id = 1", "shop-analyst", [["user 1"]]),
]

# (sql, policy, rule): a call, or something that cannot be proven a field
REFUSED = [
    ("SELECT (amount).pg_sleep FROM customers", "baseline", "PGM401"),
    ("SELECT (address).city.pg_sleep FROM customers", "baseline", "PGM401"),
    ("SELECT (2.0).abs.pg_sleep", "baseline", "PGM401"),
    ("SELECT (u).password_hash FROM users u", "shop-analyst", "PGM301"),
    ("SELECT (users).ssn FROM users", "shop-analyst", "PGM301"),
    ("SELECT (address).country FROM customers", "baseline", "PGM403"),
    ("SELECT (g).b FROM customers", "baseline", "PGM403"),  # a dropped attribute is no field
    ("SELECT (address).city FROM (SELECT address FROM customers) s", "baseline", "PGM403"),
]

POLICIES = {"baseline": BASELINE, "shop-analyst": SHOP}


@pytest.fixture(scope="module")
def role(pg_database: TestDatabase) -> Iterator[str]:
    yield from reader_role(pg_database, FIXTURE + EXTRA, "fields")


async def run(conn: asyncpg.Connection, sql: str) -> list[list[Any]]:
    return [list(r) for r in await run_read_only(conn, sql)]


def test_snapshot_has_composite_types_and_their_fields(snapshot: SchemaSnapshot) -> None:
    address = snapshot.composite("public.address")
    assert address is not None and (address.schema, address.name) == ("public", "address")
    assert address.fields == (
        ColumnInfo("city", "text"), ColumnInfo("zip", "text"), ColumnInfo("location", "public.geo"),
    )
    gone = CompositeType("public", "gone", "public.gone", (ColumnInfo("a", "integer"),))
    assert snapshot.composite("public.gone") == gone  # dropped attributes are not fields
    customers = snapshot.relation("public", "customers")
    assert customers is not None and customers.column("address") == ColumnInfo("address", "public.address")
    # table row types are relations, not composites
    assert snapshot.composite("public.users") is None
    assert {c.name for c in snapshot.composites} == {"geo", "address", "gone"}


@pytest.mark.parametrize(("sql", "policy", "expected"), ALLOWED)
async def test_field_selection_is_allowed_and_runs(
    snapshot: SchemaSnapshot, conn: asyncpg.Connection, sql: str, policy: str, expected: list[list[Any]]
) -> None:
    verdict = check(sql, POLICIES[policy], snapshot)
    assert verdict.allowed, verdict.reason()
    assert await run(conn, verdict.rewritten_sql or sql) == expected


@pytest.mark.parametrize(("sql", "policy", "rule"), REFUSED)
def test_possible_call_stays_refused(snapshot: SchemaSnapshot, sql: str, policy: str, rule: str) -> None:
    verdict = check(sql, POLICIES[policy], snapshot)
    assert not verdict.allowed, f"allowed: {sql}"
    assert rule in [v.rule for v in verdict.violations], verdict.reason()


@pytest.mark.parametrize("sql", [sql for sql, policy, _ in ALLOWED if policy == "baseline"])
def test_without_a_snapshot_field_selection_is_a_possible_call(sql: str) -> None:
    verdict = check(sql, BASELINE)
    assert not verdict.allowed and "PGM403" in [v.rule for v in verdict.violations], verdict.reason()


async def test_attribute_notation_really_calls(conn: asyncpg.Connection) -> None:
    # Why a chain is judged link by link: PostgreSQL applies abs, then upper... to the result
    # (here with harmless functions; the same shape with pg_sleep sleeps).
    assert await run(conn, "SELECT (-2.5).abs") == [[2.5]]
    assert await run(conn, "SELECT ('x').upper.reverse") == [["X"]]
    assert await run(conn, "SELECT (address).city.upper FROM customers WHERE id = 1") == [["OSLO"]]
