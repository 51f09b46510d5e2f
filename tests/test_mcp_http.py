"""`pgmcp serve --transport http` as a subprocess: the SDK's `Client` over streamable HTTP at
/mcp, and the operational routes /healthz (200 all up, 503 degraded) and /metrics."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import mcp_types as types
import pytest
from mcp.client.client import Client

from pgmcp.cli.stats import parse_prometheus
from tests.conftest import TestDatabase
from tests.fakes.llm_server import FakeLLMServer, status, text
from tests.mcp_setup import (
    COUNT_ORDERS,
    openai_llm,
    serve_command,
    text_of,
    write_config,
)

STARTUP_DEADLINE = 60.0
OK_LABELS = '{tool="execute_sql",database="shop",status="ok"}'



def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def get(url: str) -> tuple[int, str, str]:
    """(status, content type, body) of a GET, also for error statuses."""
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.headers["content-type"], response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["content-type"], err.read().decode()


class HttpServer:
    def __init__(self, config_path: Path, log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            serve_command(config_path, "--transport", "http", "--port", str(self.port)),
            stdout=self._log, stderr=subprocess.STDOUT, cwd=config_path.parent,
        )
        self.log = log

    def wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_DEADLINE
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"pgmcp serve exited: {self.log.read_text()}")
            try:
                get(self.base + "/healthz")
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"pgmcp serve did not start: {self.log.read_text()}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[list[HttpServer]]:
    started: list[HttpServer] = []
    yield started
    for server in started:
        server.stop()


def start(serve: list[HttpServer], config_path: Path) -> HttpServer:
    server = HttpServer(config_path, config_path.parent / f"serve-{len(serve)}.log")
    serve.append(server)
    server.wait_ready()
    return server


@pytest.fixture(scope="module")
def shop_only(
    tmp_path_factory: pytest.TempPathFactory, pg_database: TestDatabase, shop_role: str
) -> Iterator[HttpServer]:
    """One server for the tests that only read from it: the shop alone, the client's model as
    the LLM (sampling). The tests that count metrics or break things start their own."""
    folder = tmp_path_factory.mktemp("shop-only")
    started: list[HttpServer] = []
    try:
        yield start(started, write_config(folder, pg_database, shop_role, {"provider": "client"}, only=("shop",)))
    finally:
        for server in started:
            server.stop()


async def test_streamable_http_tools_health_and_metrics(
    tmp_path: Path, pg_database: TestDatabase, shop_role: str, serve: list[HttpServer]
) -> None:
    server = start(serve, write_config(tmp_path, pg_database, shop_role, {"provider": "client"}))

    status, kind, body = await asyncio.to_thread(get, server.base + "/metrics")
    assert status == 200 and kind.startswith("text/plain; version=0.0.4")
    assert sample(body, "pgmcp_requests_total", OK_LABELS) is None  # nothing was asked yet

    async with Client(server.base + "/mcp") as client:
        result = await client.call_tool("execute_sql", {"sql": COUNT_ORDERS, "database": "shop"})
        assert not result.is_error, text_of(result)
        assert result.structured_content is not None and result.structured_content["rows"] == [[4]]
        refused = await client.call_tool(
            "execute_sql", {"sql": "SELECT email FROM customers", "database": "shop"}
        )
        assert refused.is_error and "PGM301" in text_of(refused)
        again = await client.call_tool("execute_sql", {"sql": COUNT_ORDERS, "database": "shop"})
        assert not again.is_error

    status, _, body = await asyncio.to_thread(get, server.base + "/metrics")
    assert sample(body, "pgmcp_requests_total", OK_LABELS) == 2
    assert sample(body, "pgmcp_policy_refusals_total", '{database="shop",rule="PGM301"}') == 1
    assert sample(body, "pgmcp_db_query_duration_seconds_count", '{database="shop"}') == 2

    status, kind, body = await asyncio.to_thread(get, server.base + "/healthz")
    health = json.loads(body)
    assert status == 503 and kind == "application/json"
    assert health["status"] == "degraded"
    assert health["databases"]["shop"]["up"] is True
    assert health["databases"]["dead"]["up"] is False and health["databases"]["dead"]["last_error"]
    assert "ro-secret" not in body


async def test_healthz_is_200_when_every_database_is_up(shop_only: HttpServer) -> None:
    status, _, body = await asyncio.to_thread(get, shop_only.base + "/healthz")
    assert status == 200, body
    assert json.loads(body)["status"] == "ok"


def sample(body: str, name: str, labels: str = "") -> float | None:
    """The value of one sample in a Prometheus text body (`labels` written as in the text), or None."""
    wanted = dict(re.findall(r'(\w+)="([^"]*)"', labels))
    found = [value for n, got, value in parse_prometheus(body) if n == name and got == wanted]
    return found[0] if found else None


async def test_metrics_and_health_follow_llm_calls_refusals_and_the_breaker(
    tmp_path: Path, pg_database: TestDatabase, shop_role: str, serve: list[HttpServer]
) -> None:
    with FakeLLMServer() as fake:
        llm = {**openai_llm(fake.openai_url), "breaker_failures": 2, "breaker_recovery": "10m"}
        config_path = write_config(tmp_path, pg_database, shop_role, llm, only=("shop", "dead"))
        config = json.loads(config_path.read_text())
        config["logging"]["audit_file"] = "audit.jsonl"
        config_path.write_text(json.dumps(config))
        server = start(serve, config_path)
        _, _, body = await asyncio.to_thread(get, server.base + "/healthz")
        assert json.loads(body)["llm"] == {"provider": "openai", "breaker": "closed"}

        # The model's first SQL is refused (PGM301), its second runs; then the vendor rejects
        # the key twice, which opens the breaker, so the last question never reaches it.
        fake.script(text("SELECT email FROM customers"), text(COUNT_ORDERS), status(401), status(401))
        async with Client(server.base + "/mcp") as client:
            answer = await client.call_tool("query", {"question": "How many orders?", "database": "shop"})
            assert not answer.is_error, text_of(answer)
            assert answer.structured_content is not None and answer.structured_content["attempts"] == 2
            refused = await client.call_tool("execute_sql", {"sql": "SELECT email FROM customers",
                                                             "database": "shop"})
            assert refused.is_error
            for expected in ("[llm_unavailable]", "[llm_unavailable]", "circuit open"):
                failed = await client.call_tool("query", {"question": "How many?", "database": "shop"})
                assert failed.is_error and expected in text_of(failed), text_of(failed)
        assert len(fake.requests) == 4

        _, _, body = await asyncio.to_thread(get, server.base + "/metrics")
        expected_samples = [
            ("pgmcp_requests_total", '{tool="query",database="shop",status="ok"}', 1),
            ("pgmcp_requests_total", '{tool="query",database="shop",status="error"}', 3),
            ("pgmcp_requests_total", '{tool="execute_sql",database="shop",status="refused"}', 1),
            ("pgmcp_llm_calls_total", '{provider="openai",operation="generate",status="ok"}', 2),
            ("pgmcp_llm_calls_total", '{provider="openai",operation="generate",status="unavailable"}', 2),
            ("pgmcp_llm_calls_total", '{provider="openai",operation="generate",status="circuit_open"}', 1),
            ("pgmcp_llm_tokens_total", '{provider="openai",direction="input"}', 22),
            ("pgmcp_llm_tokens_total", '{provider="openai",direction="output"}', 14),
            ("pgmcp_llm_latency_seconds_count", '{provider="openai"}', 4),
            # one refusal from the pipeline's first attempt, one from execute_sql
            ("pgmcp_policy_refusals_total", '{database="shop",rule="PGM301"}', 2),
            ("pgmcp_db_query_duration_seconds_count", '{database="shop"}', 1),
            ("pgmcp_request_duration_seconds_count", '{tool="query"}', 4),
            ("pgmcp_db_active_connections", '{database="shop"}', 0),
        ]
        for name, labels, value in expected_samples:
            assert sample(body, name, labels) == value, (name, labels, sample(body, name, labels))
        cache_age = sample(body, "pgmcp_schema_cache_age_seconds", '{database="shop"}')
        assert cache_age is not None and cache_age >= 0

        status_code, _, body = await asyncio.to_thread(get, server.base + "/healthz")
        health = json.loads(body)
        assert status_code == 503 and health["status"] == "degraded"
        assert health["llm"] == {"provider": "openai", "breaker": "open"}
        assert set(health["databases"]) == {"shop", "dead"}
        assert health["databases"]["shop"]["up"] is True and health["databases"]["shop"]["schema_age_seconds"] >= 0
        assert health["databases"]["dead"]["up"] is False and health["databases"]["dead"]["schema_age_seconds"] is None
        assert "sk-test-mcp" not in body

    # The audit trail names the transport and the client: the refused attempt and the answer of
    # the first question, the refused execute_sql, and the three questions no SQL came of.
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert {(e["transport"], e["client"]["name"] != "unknown") for e in audit} == {("http", True)}
    assert [(e["tool"], e["allowed"], e["error_code"]) for e in audit] == [
        ("query", False, "policy_denied"), ("query", True, None), ("execute_sql", False, "policy_denied"),
        ("query", None, "llm_unavailable"), ("query", None, "llm_unavailable"), ("query", None, "llm_unavailable"),
    ]


async def test_query_samples_the_clients_model_across_http_rounds(shop_only: HttpServer) -> None:
    """Streamable HTTP on protocol 2026-07-28: every round is its own HTTP request, and the
    earlier answers come back sealed in the request state."""
    server = shop_only
    answers = iter(["SELECT name, email FROM customers", COUNT_ORDERS])
    asked: list[types.CreateMessageRequestParams] = []

    async def sampling(context: object, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        asked.append(params)
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text=next(answers)), model="host-model"
        )

    async with Client(server.base + "/mcp", sampling_callback=sampling) as client:
        assert client.session.protocol_version == "2026-07-28"
        result = await client.call_tool("query", {"question": "How many orders?"})
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None and result.structured_content["rows"] == [[4]]
    assert len(asked) == 2 and "PGM301" in str(asked[1].messages)
