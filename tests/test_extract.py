"""extract_sql over the answer shapes models actually produce."""

from __future__ import annotations

import pytest

from pgmcp.errors import GenerationFailed
from pgmcp.llm import extract_sql

CASES = [
    # (name, model answer, extracted SQL)
    ("sql fence", "```sql\nSELECT 1\n```", "SELECT 1"),
    ("sql fence, prose around", "Sure!\n```sql\nSELECT a FROM t LIMIT 10;\n```\nThis works.",
     "SELECT a FROM t LIMIT 10"),
    ("SQL fence upper case", "```SQL\nSELECT 1\n```", "SELECT 1"),
    ("postgresql fence", "```postgresql\nSELECT 1\n```", "SELECT 1"),
    ("sql fence wins over earlier plain fence", "```\nnot this\n```\n```sql\nSELECT 2\n```", "SELECT 2"),
    ("plain fence", "```\nSELECT 3\n```", "SELECT 3"),
    ("unclosed sql fence", "```sql\nSELECT 4\nFROM t", "SELECT 4\nFROM t"),
    ("empty sql fence falls through to bare", "```sql\n```\nSELECT 5", "SELECT 5"),
    ("bare select to the end", "SELECT *\nFROM users\nLIMIT 5", "SELECT *\nFROM users\nLIMIT 5"),
    ("bare after prose", "Here is the query:\nSELECT 6", "SELECT 6"),
    ("bare after label on the same line", "SQL: SELECT 7 FROM t", "SELECT 7 FROM t"),
    ("bare stops at blank line", "SELECT 8\nFROM t\n\nThis counts t.", "SELECT 8\nFROM t"),
    ("bare stops at prose line", "SELECT 9\nFROM t\nThis returns nine.", "SELECT 9\nFROM t"),
    ("bare stops after semicolon", "SELECT 10;\nSELECT 11;", "SELECT 10"),
    ("bare with", "with x as (select 1)\nselect * from x", "with x as (select 1)\nselect * from x"),
    ("whole text", "  EXPLAIN SELECT 1  ", "EXPLAIN SELECT 1"),
    ("whole text keeps two statements for the checker", "DELETE FROM t; DROP TABLE t",
     "DELETE FROM t; DROP TABLE t"),
]


@pytest.mark.parametrize(("answer", "sql"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_extract_sql(answer: str, sql: str) -> None:
    assert extract_sql(answer) == sql


@pytest.mark.parametrize("answer", ["", "   \n ", "```sql\n```"])
def test_nothing_to_extract(answer: str) -> None:
    with pytest.raises(GenerationFailed):
        extract_sql(answer)
