"""The shape of execute_sql's answer, through the SDK's real in-process `Client`: the output
schema describes rows without per-value validation, odd values arrive exact or as a marker
(never an internal error), and the text block says exactly what the structured content says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from mcp.client.client import Client

from pgmcp.config.loader import load_config
from pgmcp.db.pgjson import too_deep
from pgmcp.mcp.calls import RESULT_CLOSE, RESULT_OPEN
from pgmcp.mcp.server import build_server
from tests.conftest import TestDatabase
from tests.mcp_setup import text_of, write_config


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory, pg_database: TestDatabase, shop_role: str) -> Path:
    return write_config(tmp_path_factory.mktemp("results"), pg_database, shop_role, {"provider": "client"})


DEEP = "[" * 400 + "]" * 400
# (SQL expression, the value the client must receive)
VALUES: list[tuple[str, Any]] = [
    ("9007199254740991::int8", 9007199254740991),
    ("9007199254740993::int8", "9007199254740993"),
    ("ARRAY[-9223372036854775808]::int8[]", ["-9223372036854775808"]),
    ("1e300::numeric", "1" + "0" * 300),
    ("'NaN'::float8", "NaN"),
    ("'2024-01-02 03:04:05.000001+00'::timestamptz", "2024-01-02T03:04:05.000001+00:00"),
    ("""'{"id": 12345678901234567890}'::jsonb""", {"id": "12345678901234567890"}),
    (f"'{DEEP}'::jsonb", too_deep()),
    ("""'"\\ud800"'::json""", "\ufffd"),
    ("'\\xdeadbeef'::bytea", "3q2+7w=="),
]


def fenced_json(text: str) -> Any:
    return json.loads(text.split(RESULT_OPEN + "\n", 1)[1].rsplit("\n" + RESULT_CLOSE, 1)[0])


async def test_rows_schema_is_an_array_described_not_validated_per_value(config_path: Path) -> None:
    async with Client(build_server(load_config(config_path))) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    rows = tools["execute_sql"].output_schema["properties"]["rows"]  # type: ignore[index]
    assert rows["type"] == "array" and "items" not in rows
    assert "2^53" in rows["description"] and "100 levels deep" in rows["description"]


async def test_odd_values_arrive_exact_and_the_text_says_the_same(config_path: Path) -> None:
    sql = "SELECT " + ", ".join(f"{expr} AS v{i}" for i, (expr, _) in enumerate(VALUES))
    async with Client(build_server(load_config(config_path))) as client:
        result = await client.call_tool("execute_sql", {"sql": sql, "database": "shop"})
    assert not result.is_error, text_of(result)
    out = result.structured_content
    assert out is not None
    assert out["rows"] == [[expected for _, expected in VALUES]]
    assert fenced_json(text_of(result)) == out
