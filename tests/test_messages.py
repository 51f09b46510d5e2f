"""Refusals for broken SQL read like PostgreSQL's errors, and unknown names get a did-you-mean.

Syntax errors are compared with what the real server says for the same text (message and
position); unknown tables and columns are offered the names the policy lets the caller see,
never a hidden one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from pgmcp.policy.checker import check
from pgmcp.policy.compiler import compile_policy
from pgmcp.policy.document import load_policy_spec
from pgmcp.policy.suggest import closest, table_hint
from pgmcp.schema.snapshot import ColumnInfo, RelationInfo, SchemaSnapshot
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


def test_a_long_token_is_quoted_short() -> None:
    verdict = check("SELECT 1 FROM t t2 " + "a" * 500, compile_policy(load_policy_spec(["baseline"], REPO)))
    (found,) = verdict.violations
    assert found.message == f'syntax error at or near "{"a" * 40}..."' and found.column == 20


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


# (sql, what the refusal must say, names it must not mention) with the fixture schema of
# tests/test_rules.py: users(id name password_hash ssn), orders, secrets (denied), views.
UNKNOWN_NAMES: list[tuple[str, str, tuple[str, ...]]] = [
    ("SELECT nme FROM users", 'column "nme" does not exist (did you mean "name"?)', ()),
    ("SELECT id FROM users WHERE nme = 'x'", 'column "nme" does not exist (did you mean "name"?)', ()),
    # A denied column is never offered, even when it is the nearest name.
    ("SELECT passwrd_hash FROM users", 'column "passwrd_hash" does not exist;', ("password_hash",)),
    ("SELECT sn FROM users", 'column "sn" does not exist;', ("ssn",)),
    ("SELECT id FROM user", 'relation "user" does not exist in the search path public (did you mean "users"?)', ()),
    ("SELECT id FROM order", '(did you mean "orders"?)', ()),
    # secrets is denied: not a suggestion for a name close to it.
    ("SELECT id FROM secret", 'relation "secret" does not exist', ("secrets",)),
    # (A schema-qualified unknown name, `public.user`, passes the checker, which resolves it to
    # that schema without asking the snapshot; PostgreSQL's own error then gets the did-you-mean:
    # suggest.missing_relation_hint, tested over MCP in tests/test_mcp_inprocess.py.)
    ("SELECT id FROM zzzzzzzz", 'relation "zzzzzzzz" does not exist in the search path public;', ()),
]


@pytest.mark.parametrize(("sql", "says", "never"), UNKNOWN_NAMES)
def test_unknown_names_get_a_did_you_mean(sql: str, says: str, never: tuple[str, ...]) -> None:
    policy = compile_policy(load_policy_spec(["shop-analyst"], REPO))
    verdict = check(sql, policy, SNAPSHOT)
    assert not verdict.allowed
    reason = verdict.reason()
    assert says in reason, reason
    for name in never:
        assert f'"{name}"' not in reason, reason
    assert "could not be resolved" not in reason and "Line:" not in reason


CLOSEST: list[tuple[str, list[str], list[str]]] = [
    ("salery", ["salary", "name", "id"], ["salary"]),
    ("nme", ["name", "id"], ["name"]),
    ("Orders", ["orders", "order_items"], ["orders"]),
    ("abcdef", ["uvwxyz"], []),  # more than half the characters differ: no suggestion (as PostgreSQL)
    ("tenant", ["tenant_id", "tenant"], ["tenant_id"]),  # the name itself is never suggested
    ("sn", ["id", "ssn"], ["ssn"]),  # at most half of the characters may change: 1 of 2
    ("nam", ["name", "nam_", "id"], ["nam_", "name"]),  # ties: every nearest one, sorted
    ("public.nothing", ["public.orders"], []),  # a dotted name: half of its longest part
    ("hr.employee.ssn", ["hr.employees.ssn", "hr.employees.salary"], ["hr.employees.ssn"]),
]


@pytest.mark.parametrize(("name", "candidates", "expected"), CLOSEST)
def test_closest_follows_postgresql(name: str, candidates: list[str], expected: list[str]) -> None:
    assert closest(name, candidates) == expected


def test_a_table_in_another_schema_is_offered_qualified() -> None:
    snapshot = SchemaSnapshot(
        database="hr",
        relations=(RelationInfo("hr", "employees", "table", (ColumnInfo("id", "integer"),)),
                   RelationInfo("hr", "audit_secrets", "table", (ColumnInfo("id", "integer"),))),
    )
    policy = compile_policy(load_policy_spec(["baseline"], REPO))
    verdict = check("SELECT id FROM employees", policy, snapshot)
    assert '(did you mean "hr.employees"?)' in verdict.reason(), verdict.reason()
    assert table_hint("hr.employee", snapshot, policy) == ' (did you mean "hr.employees"?)'
    assert table_hint("hr.employees", snapshot, policy) == ""  # it exists: no hint
