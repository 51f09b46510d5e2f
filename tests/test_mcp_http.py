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

import pytest
from mcp.client.client import Client

from tests.conftest import TestDatabase
from tests.mcp_setup import COUNT_ORDERS, create_shop, drop_role, serve_command, text_of, write_config

STARTUP_DEADLINE = 60.0
OK_SAMPLE = re.compile(
    r'^pgmcp_requests_total\{tool="execute_sql",database="shop",status="ok"\} (\S+)$', re.M
)


@pytest.fixture(scope="module")
def shop(pg_database: TestDatabase) -> Iterator[str]:
    role = create_shop(pg_database)
    yield role
    drop_role(pg_database, role)


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


async def test_streamable_http_tools_health_and_metrics(
    tmp_path: Path, pg_database: TestDatabase, shop: str, serve: list[HttpServer]
) -> None:
    server = start(serve, write_config(tmp_path, pg_database, shop, {"provider": "client"}))

    status, kind, body = await asyncio.to_thread(get, server.base + "/metrics")
    assert status == 200 and kind.startswith("text/plain; version=0.0.4")
    before = OK_SAMPLE.search(body)
    assert before is None  # nothing was asked yet

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
    after = OK_SAMPLE.search(body)
    assert after is not None and float(after.group(1)) == 2
    assert 'pgmcp_policy_refusals_total{database="shop",rule="PGM301"} 1' in body
    assert 'pgmcp_db_query_duration_seconds_count{database="shop"} 2' in body

    status, kind, body = await asyncio.to_thread(get, server.base + "/healthz")
    health = json.loads(body)
    assert status == 503 and kind == "application/json"
    assert health["status"] == "degraded"
    assert health["databases"]["shop"]["up"] is True
    assert health["databases"]["dead"]["up"] is False and health["databases"]["dead"]["last_error"]
    assert "ro-secret" not in body


async def test_healthz_is_200_when_every_database_is_up(
    tmp_path: Path, pg_database: TestDatabase, shop: str, serve: list[HttpServer]
) -> None:
    config = write_config(tmp_path, pg_database, shop, {"provider": "client"}, only=("shop",))
    server = start(serve, config)
    status, _, body = await asyncio.to_thread(get, server.base + "/healthz")
    assert status == 200, body
    assert json.loads(body)["status"] == "ok"
