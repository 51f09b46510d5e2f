"""Refusals for broken SQL read like PostgreSQL's errors.

Syntax errors are compared with what the real server says for the same text (message and
position).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from pgmcp.policy.checker import check
from pgmcp.policy.compiler import compile_policy
from pgmcp.policy.document import load_policy_spec
from tests.conftest import TestDatabase
from tests.test_rules import REPO, SNAPSHOT

# SQL that PostgreSQL refuses while parsing; pgmcp must say the same, at the same place.
SYNTAX = [
    "SELECT * FROM WHERE x",
    "SELECT (1",
    "SELECT 1 +",
    "SELECT * FROM t WHERE",
    "SELECT a FROM t GROUP x",
    "SELECT * FROM t\nWHERE a = = 1",
    "SELECT f(",
    "SELECT 1 FROM t t2 t3",
    "SELECT CASE WHEN 1 THEN 2",
    "SELECT * FROM (SELECT 1",
    "SELECT a FROM t WHERE a IN (1, 2",
    "SELECT 'abc",
    'SELECT "abc',
    "SELECT $$abc",
    "SELECT 1 /* abc",
    "SELECT 1,\n  'it''s",
]


@pytest.fixture(scope="module")
async def conn(pg_database: TestDatabase) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(pg_database.dsn)
    try:
        yield connection
    finally:
        await connection.close()


def _line_col(sql: str, position: int) -> tuple[int, int]:
    before = sql[: position - 1]
    return before.count("\n") + 1, position - (before.rfind("\n") + 1)


@pytest.mark.parametrize("sql", SYNTAX)
async def test_syntax_errors_read_like_postgresql(conn: asyncpg.Connection, sql: str) -> None:
    with pytest.raises(asyncpg.PostgresSyntaxError) as raised:
        await conn.execute(sql)
    server = raised.value
    verdict = check(sql, compile_policy(load_policy_spec(["baseline"], REPO)))
    (found,) = verdict.violations
    assert found.rule == "PGM001"
    assert found.message.startswith(server.message), (found.message, server.message)  # type: ignore[attr-defined]
    line, column = _line_col(sql, int(server.position))  # type: ignore[attr-defined]
    assert (found.line, found.column) == (line, column)
    for internal in ("<Token", "TokenType", "<class", "Line:", "Col:", "Error tokenizing", "Required keyword"):
        assert internal not in found.message


def test_explain_positions_count_from_the_statement_start() -> None:
    verdict = check("EXPLAIN SELECT * FROM WHERE", compile_policy(load_policy_spec(["baseline"], REPO)))
    (found,) = verdict.violations
    assert found.message == 'syntax error at or near "WHERE" (expected table name)'
    assert (found.line, found.column) == (1, 23)


UNRESOLVED = [
    # (sql, PostgreSQL's message for it, where it points)
    ("SELECT nosuch FROM users", 'column "nosuch" does not exist', (1, 8)),
    ("SELECT id FROM users\nWHERE nosuch = 1", 'column "nosuch" does not exist', (2, 7)),
]


@pytest.mark.parametrize(("sql", "says", "where"), UNRESOLVED)
def test_unresolved_columns_read_like_postgresql(sql: str, says: str, where: tuple[int, int]) -> None:
    verdict = check(sql, compile_policy(load_policy_spec(["shop-analyst"], REPO)), SNAPSHOT)
    (found,) = verdict.violations
    assert found.rule == "PGM304" and found.message.startswith(says), found.message
    assert (found.line, found.column) == where
    assert "could not be resolved" not in found.message and "Line:" not in found.message
