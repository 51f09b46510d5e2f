"""Data-driven tests of what the resolution pass says each query reads (tests/cases/column_reads.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlglot
import yaml

from pgmcp.policy.analysis import Analysis, analyse
from pgmcp.schema.snapshot import ColumnInfo, RelationInfo, SchemaSnapshot

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


def summarise(result: Analysis) -> dict[str, list[str]]:
    reads: set[str] = set()
    problems = []
    for access in result.accesses:
        tables = "+".join(sorted({t for _, t, _ in access.reads}))
        if access.kind == "whole_row":
            problems.append(f"whole_row {tables}")
        elif access.kind == "ambiguous":
            problems.append(f"ambiguous {tables} {access.label}")
        elif access.kind == "natural" or any(c is None for _, _, c in access.reads):
            problems.append(f"star {tables}")
        else:
            reads |= {f"{t}.{c}" for _, t, c in access.reads}
    problems += ["unknown_column" for _ in result.unknown]
    return {"reads": sorted(reads), "unprovable": sorted(set(problems))}


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
@pytest.mark.parametrize("mode", ["without", "with"])
def test_column_reads(case: dict[str, Any], mode: str) -> None:
    assert set(case) == CASE_KEYS, f"unknown or missing keys in case {case.get('name')}"
    expected = case[mode]
    assert set(expected) == RESULT_KEYS
    tree = sqlglot.parse_one(case["sql"], read="postgres")
    got = summarise(analyse(tree, ("public",), SNAPSHOT if mode == "with" else None))
    assert got == {"reads": sorted(set(expected["reads"])), "unprovable": sorted(set(expected["unprovable"]))}
