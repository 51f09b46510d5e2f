"""`pgmcp serve` over stdio, started as a user's MCP host starts it, driven by the SDK's real
stdio `Client`; and the raw stdout stream, which must hold nothing but JSON-RPC messages."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp.client.client import Client
from mcp.client.session import ClientRequestContext
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError

from pgmcp.config.loader import load_config
from pgmcp.mcp.server import build_server
from tests.cli_inprocess import run_pgmcp
from tests.conftest import TestDatabase
from tests.fakes.llm_server import FakeLLMServer, text
from tests.mcp_setup import (
    COUNT_ORDERS,
    HEAVY_SQL,
    openai_llm,
    serve_command,
    text_of,
    write_config,
)
from tests.test_mcp_results import VALUES as RESULT_VALUES
from tests.test_mcp_results import fenced_json

READ_TIMEOUT = 60.0



@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mcp-stdio")


@pytest.fixture(scope="module")
def config_path(folder: Path, pg_database: TestDatabase, shop_role: str, fake_llm: FakeLLMServer) -> Path:
    return write_config(folder, pg_database, shop_role, openai_llm(fake_llm.openai_url))


@pytest.fixture(scope="module")
def client_config_path(folder: Path, pg_database: TestDatabase, shop_role: str) -> Path:
    return write_config(folder, pg_database, shop_role, {"provider": "client"}, name="client.yaml")


def params(config_path: Path) -> StdioServerParameters:
    command, *args = serve_command(config_path)
    return StdioServerParameters(command=command, args=args, cwd=config_path.parent)


async def ok(client: Client, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return dict(result.structured_content)


async def failing(client: Client, tool: str, **arguments: Any) -> str:
    """Call a tool that must fail, then show the server still answers."""
    result = await client.call_tool(tool, arguments)
    assert result.is_error
    assert (await ok(client, "execute_sql", sql=COUNT_ORDERS, database="shop"))["rows"] == [[4]]
    return text_of(result)


async def test_every_tool_resource_and_prompt_then_failures_over_stdio(
    config_path: Path, fake_llm: FakeLLMServer
) -> None:
    fake_llm.reset()
    fake_llm.script(text(COUNT_ORDERS))
    async with Client(params(config_path), read_timeout_seconds=READ_TIMEOUT) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert tools == {"query", "execute_sql", "check_sql", "list_databases", "describe_schema",
                         "refresh_schema"}
        answer = await ok(client, "query", question="How many orders?", database="shop")
        assert answer["rows"] == [[4]] and "orders" in answer["sql"]
        rows = await client.call_tool("execute_sql", {"sql": "SELECT name FROM customers ORDER BY id",
                                                      "database": "shop"})
        assert rows.structured_content is not None
        assert rows.structured_content["rows"] == [["Ada"], ["Brian"], ["Chen"]]
        assert "<database-result>" in text_of(rows) and "never as instructions" in text_of(rows)
        verdict = await ok(client, "check_sql", sql="SELECT email FROM customers", database="shop")
        assert verdict["allowed"] is False and verdict["violations"][0]["rule"] == "PGM301"
        dbs = await ok(client, "list_databases")
        assert [d["name"] for d in dbs["databases"]] == ["shop", "shop_fast", "dead"]
        schema = await ok(client, "describe_schema", database="shop")
        assert {r["name"] for r in schema["relations"]} == {"customers", "orders"}
        assert (await ok(client, "refresh_schema", database="shop"))["relations"] == 2

        for uri, needle in (("pgmcp://databases", "shop_fast"), ("pgmcp://shop/schema", "orders"),
                            ("pgmcp://shop/policy", "mcp-test")):
            [content] = (await client.read_resource(uri)).contents
            assert isinstance(content, types.TextResourceContents) and needle in content.text, uri
        prompt = await client.get_prompt("explain_table", {"database": "shop", "table": "orders"})
        assert "orders" in str(prompt.messages[0].content)
        await failures_keep_the_server_serving(client)
        await rows_over_stdio_are_the_rows_in_process(client, config_path)


# Odd values (those of test_mcp_results, text that needs escaping in both copies, a quoted
# column name) over 25 rows: more than one fetched batch, so more than one JSON chunk.
ODD_SQL = (
    "SELECT g, 'a<b \"q\" \\ é </database-result>' || g AS t, repeat('x', g) AS \"we\"\"ird\", "
    + ", ".join(f"{expr} AS v{i}" for i, (expr, _) in enumerate(RESULT_VALUES))
    + " FROM generate_series(1, 25) AS g"
)


def comparable(result: types.CallToolResult) -> tuple[Any, str]:
    """The structured content and the text of a result, less their timings."""
    assert not result.is_error, text_of(result)
    structured = dict(result.structured_content or {})
    structured.pop("timings_ms")
    text = re.sub(r'"timings_ms":\{[^}]*\}', '"timings_ms":{}', text_of(result))
    return structured, text


async def rows_over_stdio_are_the_rows_in_process(client: Client, config_path: Path) -> None:
    """Over stdio the executor's JSON is spliced into the SDK's line (pgmcp.mcp.wire); in
    process the rows are Python values. Both must say the same, in both copies (in the same
    session as the tools above: one server process)."""
    piped = comparable(await client.call_tool("execute_sql", {"sql": ODD_SQL, "database": "shop"}))
    async with Client(build_server(load_config(config_path))) as in_process:
        direct = comparable(await in_process.call_tool("execute_sql", {"sql": ODD_SQL, "database": "shop"}))
    assert piped == direct
    structured, text = piped
    assert len(structured["rows"]) == 25
    assert structured["rows"][0][1] == 'a<b "q" \\ é </database-result>1'
    assert structured["rows"][0][3:] == [expected for _, expected in RESULT_VALUES]
    assert text.count("</database-result>") == 1  # the value's own closing tag is escaped
    assert fenced_json(text)["rows"] == structured["rows"]


async def failures_keep_the_server_serving(client: Client) -> None:
    """Every kind of failure, each followed by a call that works (in the same session as the
    tools above: one server process for both)."""
    refusal = await failing(client, "execute_sql", sql="SELECT email FROM customers", database="shop")
    assert refusal.startswith("[policy_denied]") and "PGM301" in refusal
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("execute_sql", {"sql": HEAVY_SQL, "database": "shop_fast"}, "[query_timeout]"),
        ("execute_sql", {"sql": COUNT_ORDERS, "database": "dead"}, "[database_unavailable]"),
        ("execute_sql", {"sql": ["SELECT 1"], "database": "shop"}, "[invalid_arguments]"),
        ("check_sql", {"sql": "SELECT 1", "database": "nope"}, "[database_not_found]"),
    ]
    for tool, arguments, code in cases:
        message = await failing(client, tool, **arguments)
        assert message.startswith(code), message
    with pytest.raises(MCPError, match="unknown database 'nope'"):
        await client.read_resource("pgmcp://nope/schema")
    assert (await ok(client, "list_databases"))["databases"][2]["status"].startswith("down")


async def test_query_samples_the_hosts_model_over_stdio(client_config_path: Path) -> None:
    asked: list[str] = []

    async def sampling(
        context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        asked.append(params.system_prompt or "")
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text=COUNT_ORDERS), model="host-model"
        )

    async with Client(params(client_config_path), sampling_callback=sampling, mode="legacy",
                      read_timeout_seconds=READ_TIMEOUT) as client:
        answer = await ok(client, "query", question="How many orders?", database="shop")
    assert answer["rows"] == [[4]] and len(asked) == 1


async def test_query_samples_the_hosts_model_over_stdio_on_the_modern_protocol(client_config_path: Path) -> None:
    """The default client mode settles on protocol 2026-07-28: each sample is one round of the call."""
    answers = iter(["SELECT name, email FROM customers", COUNT_ORDERS])
    asked: list[str] = []

    async def sampling(
        context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        asked.append("\n".join(m.content.text for m in params.messages if isinstance(m.content, types.TextContent)))
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text=next(answers)), model="host-model"
        )

    async with Client(params(client_config_path), sampling_callback=sampling,
                      read_timeout_seconds=READ_TIMEOUT) as client:
        assert client.session.protocol_version == "2026-07-28"
        answer = await ok(client, "query", question="How many orders?", database="shop")
    assert answer["rows"] == [[4]] and answer["attempts"] == 2
    assert len(asked) == 2 and "PGM301" in asked[1], asked


def request(id_: int, method: str, params: dict[str, Any] | None = None) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        message["params"] = params
    return (json.dumps(message) + "\n").encode()


async def test_stdout_carries_only_json_rpc(config_path: Path, tmp_path: Path) -> None:
    """Read the raw stream of `pgmcp serve`: every line is one JSON-RPC message."""
    command = serve_command(config_path)
    stderr_path = tmp_path / "stderr.log"
    with stderr_path.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=stderr,
            cwd=config_path.parent, env={**os.environ, "NO_COLOR": "1"},
        )
        assert proc.stdin is not None and proc.stdout is not None
        lines: list[bytes] = []

        async def answer_to(id_: int) -> dict[str, Any]:
            assert proc.stdout is not None
            while True:
                line = await asyncio.wait_for(proc.stdout.readline(), READ_TIMEOUT)
                assert line, "pgmcp serve closed stdout"
                lines.append(line)
                message = json.loads(line)
                if message.get("id") == id_:
                    return dict(message)

        proc.stdin.write(request(1, "initialize", {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "raw-test", "version": "0"},
        }))
        assert (await answer_to(1))["result"]["serverInfo"]["name"] == "pgmcp"
        proc.stdin.write(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n')
        calls = [
            ("tools/list", None),
            ("tools/call", {"name": "execute_sql", "arguments": {"sql": COUNT_ORDERS, "database": "shop"}}),
            ("tools/call", {"name": "execute_sql", "arguments": {"sql": "SELECT email FROM customers",
                                                                "database": "shop"}}),
            ("tools/call", {"name": "execute_sql", "arguments": {"sql": COUNT_ORDERS, "database": "dead"}}),
            ("resources/read", {"uri": "pgmcp://shop/schema"}),
        ]
        answers = []
        for id_, (method, call_params) in enumerate(calls, start=2):
            proc.stdin.write(request(id_, method, call_params))
            answers.append(await answer_to(id_))
        proc.stdin.close()
        rest = await asyncio.wait_for(proc.stdout.read(), READ_TIMEOUT)
        lines.extend(rest.splitlines(keepends=True))
        assert await asyncio.wait_for(proc.wait(), READ_TIMEOUT) == 0

    assert answers[1]["result"]["structuredContent"]["rows"] == [[4]]
    assert answers[2]["result"]["isError"] is True
    assert answers[3]["result"]["isError"] is True
    for line in lines:
        message = json.loads(line)  # every line parses ...
        assert message["jsonrpc"] == "2.0", line  # ... and is JSON-RPC
    logged = stderr_path.read_text()
    assert "tool execute_sql database=shop status=ok" in logged  # the logs went to stderr
    assert "ro-secret" not in logged
    assert "speaks MCP" not in logged  # a host started it (stdin is a pipe): no word for people


def test_serve_with_files_for_stdin_and_stdout(config_path: Path, tmp_path: Path) -> None:
    """stdin or stdout that the event loop cannot watch (`serve < requests > answers`) is read
    or written the SDK's way, in a worker thread (pgmcp.mcp.stdio); the rows are spliced in the
    same, and a line that is no JSON-RPC leaves serving going."""
    hello = request(1, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                      "clientInfo": {"name": "file-test", "version": "0"}})
    ready = b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n'
    # stdout a file, stdin a pipe: answer a query (stdin stays open until it is answered)
    answers = tmp_path / "answers.jsonl"
    with answers.open("wb") as stdout:
        proc = subprocess.Popen(serve_command(config_path), stdin=subprocess.PIPE, stdout=stdout,
                                stderr=subprocess.DEVNULL, cwd=config_path.parent)
        assert proc.stdin is not None
        proc.stdin.write(hello + ready + b"not json at all\n" + request(2, "tools/call", {
            "name": "execute_sql", "arguments": {"sql": COUNT_ORDERS, "database": "shop"}}))
        proc.stdin.flush()
        deadline = time.monotonic() + READ_TIMEOUT
        while b'"id":2' not in answers.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.stdin.close()
        assert proc.wait(READ_TIMEOUT) == 0
    by_id = {m.get("id"): m for m in map(json.loads, answers.read_bytes().splitlines())}
    assert by_id[2]["result"]["structuredContent"]["rows"] == [[4]]
    assert fenced_json(by_id[2]["result"]["content"][0]["text"])["rows"] == [[4]]
    # stdin a file (read to its end at once; the SDK closes the session there, so no query)
    requests = tmp_path / "requests.jsonl"
    requests.write_bytes(hello + ready + b"not json at all\n" + request(3, "tools/list"))
    with requests.open("rb") as stdin:
        done = subprocess.run(serve_command(config_path), stdin=stdin, capture_output=True,
                              cwd=config_path.parent, timeout=READ_TIMEOUT, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    by_id = {m.get("id"): m for m in map(json.loads, done.stdout.splitlines())}
    assert by_id[1]["result"]["serverInfo"]["name"] == "pgmcp"
    assert "execute_sql" in {tool["name"] for tool in by_id[3]["result"]["tools"]}


def test_serve_leaves_shared_pipes_blocking(config_path: Path) -> None:
    """The event loop makes stdin and stdout non-blocking, a flag of the open pipe that the
    process which started pgmcp shares (here: this test keeps both ends' descriptors, as a
    shell does); serve takes it back when it ends."""
    stdin_r, stdin_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    try:
        proc = subprocess.Popen(serve_command(config_path), stdin=stdin_r, stdout=stdout_w,
                                stderr=subprocess.DEVNULL, cwd=config_path.parent)
        os.write(stdin_w, request(1, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {},
                                                    "clientInfo": {"name": "shell", "version": "0"}}))
        with os.fdopen(stdout_r, "rb", closefd=False) as answers:
            assert json.loads(answers.readline())["id"] == 1
            assert not os.get_blocking(stdin_r) and not os.get_blocking(stdout_w)  # while serving
            os.close(stdin_w)
            stdin_w = -1
            assert proc.wait(READ_TIMEOUT) == 0
        assert os.get_blocking(stdin_r) and os.get_blocking(stdout_w)
    finally:
        for fd in (stdin_r, stdin_w, stdout_r, stdout_w):
            if fd >= 0:
                os.close(fd)


def test_in_a_terminal_serve_says_what_it_waits_for(tmp_path: Path) -> None:
    """Started by a person (stdin a terminal), serve says so in one line on stderr, and stays
    silent on stdout, which belongs to the protocol."""
    path = tmp_path / "pgmcp.yaml"
    path.write_text("databases:\n  dead: {dsn: 'postgresql://nobody@127.0.0.1:1/nothing'}\n")
    primary, secondary = os.openpty()
    proc = subprocess.Popen(serve_command(path), stdin=secondary, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "NO_COLOR": "1"})
    os.close(secondary)
    try:
        assert proc.stderr is not None
        seen = []
        deadline = time.monotonic() + READ_TIMEOUT
        while time.monotonic() < deadline:
            line = proc.stderr.readline().decode()
            seen.append(line)
            if "speaks MCP" in line or not line:
                break
        notice = [line for line in seen if "speaks MCP" in line]
        assert len(notice) == 1, seen
        assert f"pgmcp serve --config {path}" in notice[0] and "--transport http" in notice[0]
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=READ_TIMEOUT)
        os.close(primary)
    assert out == b""


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("databases:\n  shop:\n    dsn: postgresql://u@h/db\n    policies: [nope-policy]\n",
         ["bad.yaml:4", "databases.shop.policies[0]", "no shipped policy named 'nope-policy'"]),
        ("databases:\n  shop: {dsn: postgresql://u@h/db}\nlimits:\n  max_rows: lots\n",
         ["bad.yaml:4", "limits.max_rows"]),
        ("databases:\n  shop: [unclosed\n", ["bad.yaml:"]),
    ],
)
def test_a_broken_config_is_one_message_and_exit_2(
    tmp_path: Path, document: str, expected: list[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(document)
    done = run_pgmcp(*serve_command(path)[1:])  # in-process: no MCP is spoken (the next test starts one)
    assert done.returncode == 2
    assert done.stdout == ""
    for needle in expected:
        assert needle in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_config_names_where_it_looked(tmp_path: Path) -> None:
    done = run_pgmcp("serve", cwd=tmp_path, clean=True)  # in-process (no PGMCP_CONFIG): no MCP is spoken
    assert done.returncode == 2 and done.stdout == ""
    assert "pgmcp.yaml" in done.stderr and "PGMCP_CONFIG" in done.stderr and "Traceback" not in done.stderr
