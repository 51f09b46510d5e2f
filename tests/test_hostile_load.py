"""Hostile calls against `pgmcp serve --transport http` on the real PostgreSQL: while each one
runs, another client's `list_databases` is answered within a second, the hostile call ends as a
result or a clear error (never an internal error), and the server serves normally afterwards.
Also: PostgreSQL restarted under load, and `/healthz` recovering with no tool call, `/livez`.

The one-second bound is a liveness property of the server (one call must not stall the
others), not a timing benchmark: idle, `list_databases` takes a few milliseconds.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pytest
from mcp.client.client import Client

from tests.conftest import TestDatabase
from tests.mcp_setup import COUNT_ORDERS, text_of, write_config
from tests.test_mcp_http import HttpServer, get

LIVENESS_BOUND = 1.0  # seconds for list_databases while a hostile call runs

IN_LIST = "SELECT 1 WHERE 1 IN (" + ",".join(["1"] * 200_000) + ")"
# (id, SQL, what the hostile call may end as: "ok" or an error code)
HOSTILE = [
    ("400kB IN list", IN_LIST, {"query_timeout", "policy_denied"}),
    ("5M-element numeric array", "SELECT array_fill(1.5::numeric, ARRAY[5000000]) AS arr", {"ok", "query_timeout"}),
    ("50 MB string", "SELECT repeat('x', 50000000) AS s", {"ok", "query_timeout"}),
    ("jsonb 5,000 deep", "SELECT (repeat('[', 5000) || repeat(']', 5000))::jsonb AS deep", {"ok"}),
    ("10M rows", "SELECT repeat('x', 1000) AS s FROM (SELECT generate_series(1, 10000000) AS g) AS t", {"ok"}),
    ("big sort", "SELECT count(*) FROM (SELECT g FROM generate_series(1, 3000000) g ORDER BY g DESC) s",
     {"ok", "query_timeout"}),
]



@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, pg_database: TestDatabase, shop_role: str
) -> Iterator[HttpServer]:
    """One server for the hostile calls, one after another: so each test also shows that the
    calls of the tests before it left the server serving normally."""
    folder = tmp_path_factory.mktemp("hostile")
    config = write_config(folder, pg_database, shop_role, {"provider": "client"}, only=("shop",))
    server = HttpServer(config, folder / "serve.log")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def outcome(result: object) -> str:
    text = text_of(result)  # type: ignore[arg-type]
    if not getattr(result, "is_error", False):
        return "ok"
    return text[1:text.index("]")] if text.startswith("[") else text


async def liveness_during(client: Client, task: asyncio.Task[object]) -> list[float]:
    """Time list_databases calls, one after another, for as long as `task` runs (at least one)."""
    await asyncio.sleep(0.3)  # let the hostile call get going
    latencies = []
    while True:
        started = time.monotonic()
        listed = await client.call_tool("list_databases", {})
        latencies.append(time.monotonic() - started)
        assert not listed.is_error, text_of(listed)
        if task.done():
            return latencies
        await asyncio.sleep(0.05)


@pytest.mark.parametrize(("sql", "allowed"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
async def test_a_hostile_call_does_not_stall_the_others(server: HttpServer, sql: str, allowed: set[str]) -> None:
    async with Client(server.base + "/mcp") as hostile, Client(server.base + "/mcp") as other:
        task = asyncio.create_task(hostile.call_tool("execute_sql", {"sql": sql, "database": "shop"}))
        latencies = await liveness_during(other, task)
        result = await task
        assert outcome(result) in allowed, text_of(result)[:500]
        assert max(latencies) < LIVENESS_BOUND, latencies
        after = await other.call_tool("execute_sql", {"sql": COUNT_ORDERS, "database": "shop"})
        assert not after.is_error and after.structured_content is not None
        assert after.structured_content["rows"] == [[4]]
    status, _, _ = await asyncio.to_thread(get, server.base + "/healthz")
    assert status == 200


async def test_deep_and_large_values_come_back_as_markers_over_mcp(server: HttpServer) -> None:
    async with Client(server.base + "/mcp") as client:
        for depth in (400, 900, 5000):
            sql = f"SELECT (repeat('[', {depth}) || repeat(']', {depth}))::jsonb AS deep"
            result = await client.call_tool("execute_sql", {"sql": sql, "database": "shop"})
            assert not result.is_error, text_of(result)[:300]
            assert result.structured_content is not None
            assert "levels deep" in result.structured_content["rows"][0][0]
        result = await client.call_tool("execute_sql", {"sql": "SELECT 1 AS n, repeat('x', 3000000) AS big",
                                                        "database": "shop"})
        assert not result.is_error and result.structured_content is not None
        [[n, big]] = result.structured_content["rows"]
        assert n == 1 and "column 'big' omitted" in big
        assert result.structured_content["truncated"] is True


async def test_postgres_restart_under_load_and_healthz_recovers_on_its_own(
    server: HttpServer, pg_database: TestDatabase
) -> None:
    """On the module's server too (after the hostile calls: the last test of the module; a test
    after it would find the server recovered, which is what this shows)."""
    status, _, body = await asyncio.to_thread(get, server.base + "/livez")
    assert status == 200 and json.loads(body)["status"] == "alive"
    stop = asyncio.Event()
    codes: dict[str, int] = {}
    expected = {"ok", "database_unavailable", "query_timeout"}
    unexpected: list[str] = []  # the whole text of any other outcome, for the failure message

    async def load() -> None:
        async with Client(server.base + "/mcp") as client:
            while not stop.is_set():
                result = await client.call_tool("execute_sql", {"sql": COUNT_ORDERS, "database": "shop"})
                key = outcome(result)
                codes[key] = codes.get(key, 0) + 1
                if key not in expected:
                    unexpected.append(text_of(result))
                await asyncio.sleep(0.02)

    workers = [asyncio.create_task(load()) for _ in range(3)]
    await asyncio.sleep(1.0)
    await asyncio.to_thread(pg_database.server.stop)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (await asyncio.to_thread(get, server.base + "/healthz"))[0] == 200:
            await asyncio.sleep(0.2)
        assert (await asyncio.to_thread(get, server.base + "/healthz"))[0] == 503  # the calls found it down
        stop.set()
        await asyncio.gather(*workers)
        assert set(codes) <= expected, (codes, unexpected)
        assert codes.get("database_unavailable"), codes

        # No tool call from here on: the background re-probe alone brings /healthz back.
        await asyncio.to_thread(pg_database.server.start)
        back = time.monotonic()
        while (await asyncio.to_thread(get, server.base + "/healthz"))[0] != 200:
            assert time.monotonic() - back < 10, "healthz did not recover within 10 s"
            await asyncio.sleep(0.2)
        status, _, body = await asyncio.to_thread(get, server.base + "/livez")
        assert status == 200
        async with Client(server.base + "/mcp") as client:
            result = await client.call_tool("execute_sql", {"sql": COUNT_ORDERS, "database": "shop"})
            assert not result.is_error, text_of(result)
    finally:  # also when an assertion failed: no load left running, PostgreSQL up for the teardown
        stop.set()
        await asyncio.gather(*workers, return_exceptions=True)
        await asyncio.to_thread(pg_database.server.start)  # (nothing to do when it is up again)
