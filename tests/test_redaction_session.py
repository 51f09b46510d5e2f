"""No secret in anything pgmcp writes, over a whole session at DEBUG level.

`pgmcp serve` runs over stdio as a host starts it, with a config whose DSNs carry passwords
(one for the live test database, one for a database nobody listens for) and an OpenAI API
key pointed at the fake vendor server, which echoes a rejected key back in its error body.
Every tool is called: rows, a refusal, a database error, a dead database, a question the
model answers and one the vendor rejects with 401. Then the server's stderr (text and JSON
logs), the audit file and every tool result are searched for each secret, raw and escaped;
so are the outputs of `pgmcp check-config --connect` and `pgmcp ask -v`. The same session
shows that every log line of a request carries its request id, and what the audit lines say.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, urlsplit, urlunsplit

import mcp_types as types
import pytest
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.conftest import TestDatabase
from tests.fakes.llm_server import FakeLLMServer, status, text
from tests.mcp_setup import COUNT_ORDERS, POLICY_YAML, SCHEMA_SQL, serve_command, text_of

TOKEN = uuid.uuid4().hex[:10]
# Characters a URL must escape, so that the escaped forms differ from the raw one.
DB_PASSWORD = f"PgPw/{TOKEN}@x!y z"
DEAD_PASSWORD = f"DeadPw:{TOKEN}/q"
API_KEY = f"sk-test-SECRET-{TOKEN}"
READ_TIMEOUT = 60.0
CLIENT = types.Implementation(name="redaction-test", version="9.9")


def forms(secret: str) -> set[str]:
    return {secret, quote(secret, safe=""), quote(secret), quote_plus(secret), json.dumps(secret)[1:-1]}


SECRET_FORMS = {form for secret in (DB_PASSWORD, DEAD_PASSWORD, API_KEY) for form in forms(secret)}


def assert_no_secret(where: str, output: str) -> None:
    found = sorted(form for form in SECRET_FORMS if form in output)
    assert not found, f"{where} shows {found}"


@pytest.fixture(scope="module")
def role(pg_database: TestDatabase) -> Iterator[str]:
    name = f"redact_{TOKEN}"
    pg_database.run_sql(SCHEMA_SQL)
    pg_database.run_sql(
        f"CREATE ROLE {name} LOGIN PASSWORD '{DB_PASSWORD}';\n"
        f'GRANT CONNECT ON DATABASE "{pg_database.name}" TO {name};\n'
        f"GRANT USAGE ON SCHEMA public TO {name};\nGRANT SELECT ON customers, orders TO {name};"
    )
    yield name
    pg_database.run_sql(f"DROP OWNED BY {name}; DROP ROLE IF EXISTS {name};")


def write_config(folder: Path, db: TestDatabase, role: str, fake: FakeLLMServer, fmt: str) -> Path:
    (folder / "mcp-test.yaml").write_text(POLICY_YAML)
    parts = urlsplit(db.dsn)
    host = parts.netloc.rpartition("@")[2]
    dsn = urlunsplit(parts._replace(netloc=f"{role}:{quote(DB_PASSWORD, safe='')}@{host}"))
    config = {
        "databases": {
            "shop": {"dsn": dsn, "policies": ["mcp-test.yaml"], "statement_timeout": "5s",
                     "pool": {"min_size": 1, "max_size": 2}},
            "dead": {"dsn": f"postgresql://nobody:{quote(DEAD_PASSWORD, safe='')}@127.0.0.1:1/nothing",
                     "policies": ["mcp-test.yaml"]},
        },
        "llm": {"provider": "openai", "model": "fake-model-1", "api_key": API_KEY, "base_url": fake.openai_url,
                "timeout": "10s", "max_retries": 0, "result_check": False},
        "logging": {"level": "DEBUG", "format": fmt, "audit_file": "audit.jsonl"},
    }
    path = folder / "pgmcp.yaml"
    path.write_text(json.dumps(config, indent=2))
    return path


# (tool, arguments, is_error, what the result text must contain)
CALLS: list[tuple[str, dict[str, Any], bool, str]] = [
    ("list_databases", {}, False, "dead"),
    ("describe_schema", {"database": "shop"}, False, "orders"),
    ("refresh_schema", {"database": "shop"}, False, "relations"),
    ("check_sql", {"sql": "SELECT id FROM customers", "database": "shop"}, False, '"allowed": true'),
    ("execute_sql", {"sql": COUNT_ORDERS, "database": "shop"}, False, "<database-result>"),
    ("execute_sql", {"sql": "SELECT email FROM customers", "database": "shop"}, True, "PGM301"),
    ("execute_sql", {"sql": "SELECT 1/0 AS x", "database": "shop"}, True, "[query_failed]"),
    ("execute_sql", {"sql": COUNT_ORDERS, "database": "dead"}, True, "[database_unavailable]"),
    ("query", {"question": "How many orders?", "database": "shop"}, False, "<database-result>"),
    ("query", {"question": "How many customers?", "database": "shop"}, True, "[llm_unavailable]"),
]


async def run_session(config_path: Path, stderr_path: Path) -> list[str]:
    command, *args = serve_command(config_path)
    server = StdioServerParameters(command=command, args=args, cwd=config_path.parent)
    results = []
    with stderr_path.open("w") as errlog:
        async with Client(stdio_client(server, errlog=errlog), client_info=CLIENT,
                          read_timeout_seconds=READ_TIMEOUT) as client:
            for tool, arguments, is_error, needle in CALLS:
                result = await client.call_tool(tool, arguments)
                shown = text_of(result) + json.dumps(result.structured_content)
                assert result.is_error is is_error and needle in shown, (tool, arguments, shown)
                results.append(shown)
            for uri in ("pgmcp://databases", "pgmcp://shop/schema", "pgmcp://shop/policy"):
                [content] = (await client.read_resource(uri)).contents
                assert isinstance(content, types.TextResourceContents)
                results.append(content.text)
    return results


@pytest.mark.parametrize("fmt", ["text", "json"])
async def test_a_debug_session_shows_no_secret(
    fmt: str, tmp_path: Path, pg_database: TestDatabase, role: str, fake_llm: FakeLLMServer
) -> None:
    fake_llm.reset()
    fake_llm.script(text(COUNT_ORDERS), status(401))
    config_path = write_config(tmp_path, pg_database, role, fake_llm, fmt)
    stderr_path = tmp_path / "stderr.log"
    results = await run_session(config_path, stderr_path)
    # The fake really was sent the key, and really echoed it: there was something to leak.
    assert fake_llm.requests[-1].headers["authorization"] == f"Bearer {API_KEY}"

    logged = stderr_path.read_text()
    audit_lines = (tmp_path / "audit.jsonl").read_text()
    assert "level" in logged.lower() or "DEBUG" in logged
    assert_no_secret("stderr", logged)
    assert_no_secret("the audit file", audit_lines)
    for shown in results:
        assert_no_secret("a tool result", shown)
    if fmt == "json":
        check_request_ids(logged)
    check_audit(audit_lines)


def check_request_ids(logged: str) -> None:
    """Every stage of the `query` request is logged, each line with the request's id."""
    lines = [json.loads(line) for line in logged.splitlines() if line.strip()]  # every line is JSON
    assert any(line["level"] == "DEBUG" for line in lines)
    [done] = [line for line in lines if line["message"].startswith("tool query database=shop status=ok")]
    rid = done["request_id"]
    assert rid
    mine = [line for line in lines if line["request_id"] == rid]
    expected = ["tool query called", "question for shop", "prompt for attempt 1", "openai answered",
                "policy allowed the SQL for shop", "verdict on", "SQL ran on shop: 1 rows", "SQL that ran",
                "query answered", "tool query database=shop status=ok"]
    messages = [line["message"] for line in mine]
    for start in expected:
        assert any(m.startswith(start) for m in messages), (start, messages)
    [llm] = [line for line in mine if line["message"].startswith("openai answered") and line["level"] == "INFO"]
    assert llm["extra"]["input_tokens"] == 11 and llm["extra"]["output_tokens"] == 7
    assert llm["extra"]["stage"] == "generate" and llm["extra"]["model"] == "fake-model-1"
    # Lines of other requests do not carry this id.
    assert all(not m.startswith("tool execute_sql") for m in messages)


def check_audit(audit_lines: str) -> None:
    entries = [json.loads(line) for line in audit_lines.splitlines()]
    by_tool: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        assert entry["request_id"] and entry["time"] and entry["event"] == "decision"
        assert entry["client"] == {"name": "redaction-test", "version": "9.9"} and entry["transport"] == "stdio"
        by_tool.setdefault(entry["tool"], []).append(entry)
    # Only the tools that decide are audited, one line per decision.
    assert sorted(by_tool) == ["check_sql", "execute_sql", "query"]
    [checked] = by_tool["check_sql"]
    assert checked["allowed"] is True and checked["executed"] is False and "LIMIT" in checked["sql_run"]
    ran, refused, failed, dead = by_tool["execute_sql"]
    assert ran["allowed"] and ran["executed"] and ran["row_count"] == 1 and ran["sql"] == COUNT_ORDERS
    assert refused["allowed"] is False and refused["error_code"] == "policy_denied"
    assert [v["rule"] for v in refused["violations"]] == ["PGM301"] and refused["violations"][0]["message"]
    assert failed["allowed"] is True and failed["executed"] is False and failed["error_code"] == "query_failed"
    assert dead["error_code"] == "database_unavailable"
    answered, unavailable = by_tool["query"]
    assert answered["question"] == "How many orders?" and answered["row_count"] == 1
    assert answered["sql"] == COUNT_ORDERS and answered["sql_run"] and answered["duration_ms"] > 0
    assert unavailable["allowed"] is None and unavailable["error_code"] == "llm_unavailable"
    assert len({e["request_id"] for e in entries}) == len(entries)


def pgmcp(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "pgmcp"
    return subprocess.run([str(script), *argv], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_check_config_and_ask_show_no_secret(
    tmp_path: Path, pg_database: TestDatabase, role: str, fake_llm: FakeLLMServer
) -> None:
    config_path = write_config(tmp_path, pg_database, role, fake_llm, "text")
    checked = pgmcp("check-config", "--config", str(config_path), "--connect", cwd=tmp_path)
    assert "shop" in checked.stdout + checked.stderr and "dead" in checked.stdout + checked.stderr
    assert_no_secret("check-config --connect", checked.stdout + checked.stderr)

    fake_llm.reset()
    fake_llm.script(text(COUNT_ORDERS), status(401))
    for expected_exit in (0, 1):
        asked = pgmcp("ask", "--config", str(config_path), "--database", "shop", "-v", "How many orders?",
                      cwd=tmp_path)
        assert asked.returncode == expected_exit, asked.stderr
        assert_no_secret("pgmcp ask", asked.stdout + asked.stderr)
    audit_lines = (tmp_path / "audit.jsonl").read_text()
    assert_no_secret("the audit file of pgmcp ask", audit_lines)
    entries = [json.loads(line) for line in audit_lines.splitlines()]
    assert [(e["client"]["name"], e["transport"], e["tool"]) for e in entries] == [("cli", "cli", "ask")] * 2
    assert entries[0]["row_count"] == 1 and entries[1]["error_code"] == "llm_unavailable"
