"""Long literal lists judged as one placeholder (`pgmcp.policy.longlists`): when, and that the
verdict and what runs are what the whole text gives.

Every statement below is judged twice, with the short path and without it (`long_lists=False`
parses every item), and the two verdicts must agree: allowed or not, the same rule codes at the
same places, the same relations and functions, and a rewritten statement that is the same query
(the short path keeps the user's own list text, byte for byte, where sqlglot would reformat
it). The hostile inputs hide a list inside strings, comments, dollar quotes and prefixed
strings, or put something other than a plain literal into it: none may take the short path.
The last test runs a rewritten long-list statement on PostgreSQL.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlglot

from pgmcp.policy import checker
from pgmcp.policy.checker import Context, check
from pgmcp.policy.compiler import compile_policy
from pgmcp.policy.document import load_policy_spec
from pgmcp.policy.longlists import MIN_ITEMS, shorten
from pgmcp.policy.parse import parse_statement
from pgmcp.policy.verdict import Verdict

REPO = Path(__file__).parent.parent
SPEC = load_policy_spec(["shop-analyst"], REPO)  # row filter tenant_id = 1 on orders, a row cap
POLICY = compile_policy(dataclasses.replace(SPEC, max_sql_bytes=10_000_000))

N = MIN_ITEMS + 20
NUMBERS = ", ".join(str(i) for i in range(N))
STRINGS = ", ".join(f"'it''s {i}; --'" for i in range(N))
ROWS = ", ".join(f"({i}, 'n{i}', -{i}.5)" for i in range(N))
LINES = NUMBERS.replace(", ", ",\n\t")
NBSP = NUMBERS.replace(", 7,", ",\u00a07,")  # not PostgreSQL's whitespace
ARABIC = NUMBERS.replace("7", "\u0667")  # not an ASCII digit


def whole(sql: str) -> Verdict:
    return checker._run(Context(sql, POLICY, None, long_lists=False))


def normalized(sql: str | None) -> list[str] | None:
    return None if sql is None else sqlglot.transpile(sql, read="postgres", write="postgres")


def assert_same(sql: str) -> Verdict:
    short, full = check(sql, POLICY), whole(sql)
    assert short.allowed == full.allowed, (short.reason(), full.reason())
    assert [(v.rule, v.message, v.line, v.column) for v in short.violations] == [
        (v.rule, v.message, v.line, v.column) for v in full.violations
    ], (short.reason(), full.reason())
    assert (short.relations, short.functions, short.row_cap) == (full.relations, full.functions, full.row_cap)
    assert normalized(short.rewritten_sql) == normalized(full.rewritten_sql)
    return short


def kinds(sql: str) -> list[str] | None:
    parsed = parse_statement(sql)
    return None if parsed.short is None else [run.kind for run in parsed.short.runs]


# (statement, the lists the short path takes: None when it must not take any)
SHORT = [
    (f"SELECT id FROM orders WHERE id IN ({NUMBERS})", ["in"]),
    (f"SELECT id FROM orders WHERE status NOT IN ({STRINGS}) LIMIT 5", ["in"]),
    (f"SELECT id FROM orders WHERE id = ANY(ARRAY[{NUMBERS}])", ["array"]),
    (f"SELECT * FROM (VALUES {ROWS}) AS v(a, b, c)", ["values"]),
    (f"SELECT a FROM (VALUES {ROWS}) AS v(a, b, c) WHERE a IN ({NUMBERS})", ["values", "in"]),
    (f"EXPLAIN SELECT id FROM orders WHERE id IN ({NUMBERS})", ["in"]),
    (f"SELECT id FROM orders WHERE id IN (\n{LINES}\n) -- (1, 2)", ["in"]),
    (f"SELECT id FROM orders WHERE id IN ({NUMBERS}) AND id IN ({NUMBERS})", ["in", "in"]),
]
WHOLE = [
    # a "list" inside a string, a comment, a dollar quote, an E'' string, a quoted identifier
    f"SELECT '({NUMBERS})' FROM orders",
    f"SELECT id FROM orders -- IN ({NUMBERS})\n",
    f"SELECT id FROM orders /* IN ({NUMBERS}) */",
    f"SELECT id FROM orders /* /* nested */ IN ({NUMBERS}) */",
    f"SELECT $$ IN ({NUMBERS}) $$ FROM orders",
    f"SELECT $q$ IN ({NUMBERS}) $q$ FROM orders",
    f"SELECT E'\\' IN ({NUMBERS})' FROM orders",
    f"SELECT U&'\\0041 IN ({NUMBERS})' FROM orders",
    f'SELECT 1 AS "IN ({NUMBERS})" FROM orders',
    # something other than a plain literal among the items
    f"SELECT id FROM orders WHERE id IN ({NUMBERS}, password_hash)",
    f"SELECT id FROM orders WHERE id IN ({NUMBERS}, pg_sleep(1))",
    f"SELECT id FROM orders WHERE id IN ({NUMBERS}, (SELECT ssn FROM users))",
    f"SELECT id FROM orders WHERE id IN ({NUMBERS}, '1'::regclass)",
    f"SELECT id FROM orders WHERE id IN ({NUMBERS}, $1)",
    f"SELECT id FROM orders WHERE id IN ({NUMBERS}, E'x')",
    f"SELECT id FROM orders WHERE id IN ({NUMBERS}, U&'x')",
    f"SELECT id FROM orders WHERE id IN ({NUMBERS}, $$x$$)",
    f"SELECT id FROM orders WHERE id IN ({NUMBERS}, B'01', X'ff', N'x')",
    f"SELECT id FROM orders WHERE id IN ({NUMBERS}, 1e5)",
    f"SELECT id FROM orders WHERE id IN ({NUMBERS} -- c\n)",
    f"SELECT id FROM orders WHERE id IN ({NUMBERS} /* c */)",
    f"SELECT id FROM orders WHERE id IN ({NBSP})",
    f"SELECT id FROM orders WHERE id IN ({ARABIC})",
    # a list where the short path does not apply: a function's arguments, a row, a subscript
    f"SELECT greatest({NUMBERS}) FROM orders",
    f"SELECT ROW({NUMBERS}) FROM orders",
    f"SELECT id FROM orders WHERE (id) IN (({NUMBERS}))",
    f'SELECT * FROM (VALUES ({NUMBERS})) AS v',
    f'SELECT "values" ({NUMBERS}) FROM orders',
]
REFUSED = [
    # what the list sits next to is judged as ever
    (f"SELECT id FROM users WHERE password_hash IN ({STRINGS})", "PGM301"),
    (f"SELECT id FROM orders WHERE id IN ({NUMBERS}) AND pg_sleep(1) IS NULL", "PGM401"),
    (f"SELECT id FROM orders WHERE id IN ({NUMBERS}); DELETE FROM orders", "PGM002"),
    (f"SELECT id FROM orders AS \"_pgmcp_rf\" WHERE id IN ({NUMBERS})", "PGM005"),
    (f"SELECT id FROM orders AS '_pgmcp_rf' WHERE id IN ({NUMBERS})", "PGM005"),
    (f"SELECT U&\"\\0069d\" FROM orders WHERE id IN ({NUMBERS})", "PGM004"),
    (f"SELECT id FROM orders WHERE id IN ({NUMBERS}) AND", "PGM001"),
    (f"SELECT 'x FROM orders WHERE id IN ({NUMBERS})", "PGM001"),
    (f"SELECT id FROM secrets WHERE id IN ({NUMBERS})", "PGM201"),
    # refused while parsing the short text: judged there (PGM001 alone is parsed again whole)
    ("SELECT id FROM orders WHERE " + " AND ".join(f"id IN ({NUMBERS})" for _ in range(450)), "PGM006"),
]


@pytest.mark.parametrize(("sql", "expected"), SHORT, ids=lambda v: str(v)[:40] if isinstance(v, str) else str(v))
def test_long_lists_take_the_short_path_with_the_same_verdict(sql: str, expected: list[str]) -> None:
    assert kinds(sql) == expected
    verdict = assert_same(sql)
    assert verdict.allowed, verdict.reason()


@pytest.mark.parametrize("sql", WHOLE, ids=lambda v: v[:50])
def test_hidden_or_impure_lists_are_parsed_whole(sql: str) -> None:
    assert kinds(sql) is None
    assert_same(sql)


@pytest.mark.parametrize(("sql", "rule"), REFUSED, ids=lambda v: v[:50])
def test_what_surrounds_a_long_list_is_judged(sql: str, rule: str) -> None:
    verdict = assert_same(sql)
    assert not verdict.allowed and rule in [v.rule for v in verdict.violations], verdict.reason()


def test_what_runs_holds_the_users_list_byte_for_byte() -> None:
    items = ",\n   ".join(f"'o''{i}'" for i in range(N))  # the user's own layout and quoting
    verdict = check(f"SELECT id FROM orders WHERE status IN ({items}) ORDER BY id", POLICY)
    assert verdict.allowed and verdict.rewritten_sql is not None
    assert f"IN ({items})" in verdict.rewritten_sql
    assert "_pgmcp_rf.tenant_id = 1" in verdict.rewritten_sql and "pgmcp-long-list" not in verdict.rewritten_sql
    rows = ", ".join(f"({i},  'x')" for i in range(N))
    verdict = check(f"SELECT * FROM (VALUES {rows}) AS v(a, b)", POLICY)
    assert verdict.rewritten_sql == f"SELECT * FROM (VALUES {rows}) AS v(a, b) LIMIT {POLICY.max_rows}"


def test_a_placeholder_never_collides_with_the_text() -> None:
    sql = f"SELECT 'pgmcp-long-list-0' AS tag, id FROM orders WHERE id IN ({NUMBERS})"
    short = shorten(sql)
    assert short is not None and short.tag not in sql
    verdict = assert_same(sql)
    assert verdict.rewritten_sql is not None and verdict.rewritten_sql.count("'pgmcp-long-list-0'") == 1


def test_positions_point_into_the_text_as_written() -> None:
    sql = f"SELECT id FROM orders WHERE id IN ({NUMBERS})\n  AND ssn IS NULL AND pg_sleep(1) IS NULL"
    verdict = assert_same(sql)
    assert [(v.line, v.column) for v in verdict.violations if v.rule == "PGM401"] == [(2, 23)]


def test_restoring_needs_each_placeholder_exactly_once() -> None:
    sql = f"SELECT 1 FROM (VALUES {ROWS}) AS v WHERE 2 IN ({NUMBERS}) AND 3 IN ({STRINGS})"
    short = shorten(sql)
    assert short is not None and [run.kind for run in short.runs] == ["values", "list", "list"]
    assert short.restore(short.text) == sql
    first = short.runs[1].placeholder
    assert short.restore(short.text.replace(first, "'x'")) is None  # one missing
    assert short.restore(short.text + " AND " + first) is None  # one twice
    assert short.restore(short.text + f" AND '{short.tag}9'") is None  # the tag once more
    assert short.restore(short.text.replace(first, first.upper())) is None


def test_short_lists_take_the_ordinary_path() -> None:
    sql = "SELECT id FROM orders WHERE id IN (" + ", ".join(str(i) for i in range(MIN_ITEMS - 1)) + ")"
    assert shorten(sql) is None and kinds(sql) is None


def test_a_placeholder_the_generator_does_not_give_back_falls_back_to_the_whole_text(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sql = f"SELECT id FROM orders WHERE id IN ({NUMBERS})"
    monkeypatch.setattr(checker, "generate", lambda tree, copy=True: "SELECT 1")  # no placeholder in it
    seen: list[bool] = []
    real_run = checker._run

    def spy(ctx: Context) -> Verdict:
        seen.append(ctx.long_lists)
        return real_run(ctx)

    monkeypatch.setattr(checker, "_run", spy)
    checker.check(sql, POLICY)
    assert seen[:1] == [True] and False in seen  # judged again with every item parsed


SETUP = """
CREATE TABLE orders (id int PRIMARY KEY, tenant_id int NOT NULL, status text NOT NULL, total int);
INSERT INTO orders SELECT g, 1 + g % 2, 's' || g, g FROM generate_series(1, 400) g;
"""


async def test_a_rewritten_long_list_runs_on_postgresql(pg_database: Any) -> None:
    pg_database.run_sql(SETUP)
    ids = list(range(1, 301, 3)) + list(range(2, 200, 2))
    sql = "SELECT id FROM orders WHERE id IN (" + ",\n".join(map(str, ids)) + ") ORDER BY id"
    verdict = check(sql, POLICY)
    assert verdict.allowed and verdict.rewritten_sql is not None and kinds(sql) == ["in"]
    conn = await asyncpg.connect(pg_database.dsn)
    try:
        got = [r["id"] for r in await conn.fetch(verdict.rewritten_sql)]
    finally:
        await conn.close()
    expected = sorted(i for i in set(ids) if 1 + i % 2 == 1)  # tenant 1's rows among the listed ids
    assert got == expected[: POLICY.max_rows] and len(expected) > POLICY.max_rows
