"""Data-driven tests of `column_reads` (cases in tests/cases/column_reads.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from pgmcp.policy.columns import ColumnReads, column_reads, physical_tables
from pgmcp.schema.snapshot import ColumnInfo, RelationInfo, SchemaSnapshot
from tests.sqltrees import resolve

CASES = yaml.safe_load((Path(__file__).parent / "cases" / "column_reads.yaml").read_text())
CASE_KEYS = {"name", "sql", "without", "with"}
RESULT_KEYS = {"reads", "unprovable"}


def _relation(name: str, *columns: str) -> RelationInfo:
    return RelationInfo("public", name, "table", tuple(ColumnInfo(c, "text") for c in columns))


SNAPSHOT = SchemaSnapshot(
    "test",
    relations=(
        _relation("users", "id", "name", "ssn"),
        _relation("orders", "id", "user_id", "amount", "tenant_id", "note"),
        _relation("Accounts", "Id", "Secret", "owner"),
    ),
)


def summarise(result: ColumnReads) -> dict[str, list[str]]:
    reads = sorted({f"{r.table}.{r.column}" for r in result.reads})
    problems = []
    for u in result.unprovable:
        text = u.kind
        if u.tables:
            text += " " + "+".join(t for _, t in u.tables)
        if u.kind == "ambiguous" and u.column:
            text += f" {u.column}"
        problems.append(text)
    return {"reads": reads, "unprovable": sorted(problems)}


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
@pytest.mark.parametrize("mode", ["without", "with"])
def test_column_reads(case: dict[str, Any], mode: str) -> None:
    assert set(case) == CASE_KEYS, f"unknown or missing keys in case {case.get('name')}"
    expected = case[mode]
    assert set(expected) == RESULT_KEYS
    tree = resolve(case["sql"])
    before = tree.sql("postgres")
    result = column_reads(tree, SNAPSHOT if mode == "with" else None)
    assert tree.sql("postgres") == before, "column_reads must not change its input"
    got = summarise(result)
    assert got == {"reads": sorted(set(expected["reads"])), "unprovable": sorted(expected["unprovable"])}


POSITIONS = [
    ("SELECT u.id,\n       u.ssn FROM users u", "ssn", (2, 8)),
    ("SELECT id FROM users WHERE ssn = 'x'", "ssn", (1, 28)),
    ('SELECT "Secret" FROM "Accounts"', "Secret", (1, 8)),
]


@pytest.mark.parametrize(("sql", "column", "where"), POSITIONS)
def test_positions_point_at_the_reference(sql: str, column: str, where: tuple[int, int]) -> None:
    for snapshot in (None, SNAPSHOT):
        refs = [r for r in column_reads(resolve(sql), snapshot).reads if r.column == column]
        assert [(r.line, r.column_pos) for r in refs] == [where]


def test_star_position_survives_expansion() -> None:
    refs = column_reads(resolve("SELECT 1 AS x,\n  * FROM users"), SNAPSHOT).reads
    assert {(r.line, r.column_pos) for r in refs} == {(2, 3)}


def test_physical_tables_skip_ctes_and_functions() -> None:
    tree = resolve("WITH c AS (SELECT 1 FROM orders) SELECT * FROM c, users, generate_series(1, 2) g")
    assert sorted(t.name for t in physical_tables(tree)) == ["orders", "users"]
