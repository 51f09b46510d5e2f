"""Rows on the wire (pgmcp.mcp.wire): the executor's JSON spliced into the SDK's stdio line says
exactly what the rows as Python values say, in the structured content and in the fenced text."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import mcp_types as types
import orjson
import pytest

from pgmcp.db.result import RowsJson
from pgmcp.mcp import models, wire
from pgmcp.mcp.calls import RESULT_CLOSE, RESULT_OPEN, untrusted_result
from pgmcp.mcp.stdio import ThreadOut

ROWS = [
    [1, 'a<b "q" \\ é', None, {"k": ["</database-result>", 1.5]}],
    [2, "line\nbreak\ttab \u2028", True, "9007199254740993"],
    [3, "", False, []],
]


@dataclass
class Ctx:
    method: str = "tools/call"


def rows_json(rows: list[list[Any]], per_chunk: int = 2) -> RowsJson:
    parts = [orjson.dumps(r) for r in rows]
    return RowsJson(tuple(b",".join(parts[i:i + per_chunk]) for i in range(0, len(parts), per_chunk)))


def query_out(rows: RowsJson, sql: str = "SELECT 1") -> models.QueryOut:
    out = models.QueryOut(database="main", sql=sql, columns=[models.ColumnOut(name="a", type="int4")],
                          row_count=3)
    out._rows_json = rows
    return out


async def wire_dict(out: models.QueryOut) -> Any:
    """What the SDK hands back to the middleware: the tool's CallToolResult as a wire dict."""

    async def call_next(ctx: Any) -> Any:
        return untrusted_result(out).model_dump(by_alias=True, mode="json", exclude_none=True)

    return await wire.defer_rows(Ctx(), call_next)


def sdk_line(result: Any) -> str:
    """The line the SDK's stdio writer makes of a result (mcp.server.stdio.stdout_writer)."""
    message = types.JSONRPCResponse(jsonrpc="2.0", id=7, result=result)
    return message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"


def fenced(text: str) -> Any:
    return json.loads(text.split(RESULT_OPEN + "\n", 1)[1].rsplit("\n" + RESULT_CLOSE, 1)[0])


async def spliced(out: models.QueryOut, monkeypatch: pytest.MonkeyPatch, *, rebuild: bool = False) -> bytes:
    written = io.BytesIO()
    if not rebuild:
        monkeypatch.setattr(wire.RowsStdout, "_whole", lambda *a: pytest.fail("the line was rebuilt"))
    with wire.RowsStdout(ThreadOut(written)) as stdout:
        await stdout.write(sdk_line(await wire_dict(out)))
    return written.getvalue()


@pytest.mark.parametrize("per_chunk", [1, 2, 5])
async def test_the_spliced_line_says_what_the_python_rows_say(monkeypatch: pytest.MonkeyPatch, per_chunk: int) -> None:
    in_python = await wire_dict(query_out(rows_json(ROWS, per_chunk)))  # no writer: the rows filled in
    assert in_python["structuredContent"]["rows"] == ROWS
    line = await spliced(query_out(rows_json(ROWS, per_chunk)), monkeypatch)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    message = json.loads(line)
    assert message["id"] == 7 and message["result"] == in_python
    text = message["result"]["content"][0]["text"]
    assert fenced(text)["rows"] == ROWS and text.count(RESULT_CLOSE) == 1
    assert wire.TOKEN_PREFIX.encode() not in line


async def test_no_rows_and_one_row(monkeypatch: pytest.MonkeyPatch) -> None:
    for rows in ([], [[1]]):
        message = json.loads(await spliced(query_out(rows_json(rows)), monkeypatch))
        assert message["result"]["structuredContent"]["rows"] == rows
        assert fenced(message["result"]["content"][0]["text"])["rows"] == rows


async def test_a_value_holding_the_token_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The token is 128 random bits a caller never sees; even a value spelling it out where the
    tool put it (here the SQL text) stays as it is: the line is then rebuilt, not spliced."""
    monkeypatch.setattr(wire.secrets, "token_hex", lambda n: "0" * 32)
    token = f"{wire.TOKEN_PREFIX}{'0' * 32}@"
    sql = f'SELECT \'"rows":["{token}"] "rows":{token}\''
    for out in (await wire_dict(query_out(rows_json(ROWS), sql=sql)),
                json.loads(await spliced(query_out(rows_json(ROWS), sql=sql), monkeypatch, rebuild=True))["result"]):
        assert out["structuredContent"]["rows"] == ROWS and out["structuredContent"]["sql"] == sql
        assert fenced(out["content"][0]["text"]) == {**out["structuredContent"], "rows": ROWS}


async def test_a_line_not_as_the_tool_wrote_it_is_rebuilt() -> None:
    """Without both places exactly once, the line is parsed and written again, never spliced."""
    rows = wire._Rows(f"{wire.TOKEN_PREFIX}{'1' * 32}@", rows_json(ROWS))
    result = {"content": [{"type": "text", "text": "no rows here"}], "structuredContent": {"rows": [rows.token]}}
    written = io.BytesIO()
    with wire.RowsStdout(ThreadOut(written)) as stdout:
        stdout.expect([rows])
        await stdout.write(sdk_line(result))
    message = json.loads(written.getvalue())
    assert message["result"] == {"content": [{"type": "text", "text": "no rows here"}],
                                 "structuredContent": {"rows": ROWS}}


async def test_called_directly_the_rows_are_python_values() -> None:
    result = untrusted_result(query_out(rows_json(ROWS)))
    assert result.structured_content is not None and result.structured_content["rows"] == ROWS
    assert fenced(result.content[0].text)["rows"] == ROWS  # type: ignore[union-attr]
