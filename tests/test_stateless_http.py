"""`pgmcp serve --transport http --stateless`: two replicas on two ports, one client whose
consecutive HTTP requests alternate between them (a round-robin load balancer without
session affinity, in the client's transport), and the combinations refused at startup.

The same alternation against two ordinary (stateful) replicas fails on the legacy protocol:
the second replica has never seen the session the first one opened, which is what shows the
alternation is real.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client

from pgmcp.auth.static_tokens import mint_token, token_hash
from pgmcp.cli.stats import parse_prometheus
from tests.cli_inprocess import run_pgmcp
from tests.conftest import TestDatabase
from tests.mcp_setup import COUNT_ORDERS, openai_llm, serve_command, text_of, write_config
from tests.test_mcp_http import HttpServer, free_port, get


class Replica(HttpServer):
    """`pgmcp serve --transport http` with extra options (HttpServer starts it without)."""

    def __init__(self, config_path: Path, log: Path, *extra: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._log = log.open("wb")
        self.proc = subprocess.Popen(
            serve_command(config_path, "--transport", "http", "--port", str(self.port), *extra),
            stdout=self._log, stderr=subprocess.STDOUT, cwd=config_path.parent,
        )
        self.log = log


class RoundRobin(httpx2.AsyncBaseTransport):
    """Sends each request to the next port in turn, as a load balancer without affinity would."""

    def __init__(self, ports: list[int]) -> None:
        self.inner = httpx2.AsyncHTTPTransport()
        self.ports = ports
        self.hits: Counter[int] = Counter()
        self._next = 0

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        port = self.ports[self._next % len(self.ports)]
        self._next += 1
        self.hits[port] += 1
        request.url = request.url.copy_with(port=port)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()



TOKEN = mint_token()


def replica_config(folder: Path, db: TestDatabase, role: str) -> Path:
    # The LLM is a vendor's (stateless replicas cannot sample the client's model); nothing here asks it.
    path = write_config(folder, db, role, openai_llm("http://127.0.0.1:9/v1"), only=("shop",))
    config = json.loads(path.read_text())
    config["auth"] = {"tokens": [{"principal": "alice", "sha256": token_hash(TOKEN)}]}
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[list[Replica]]:
    started: list[Replica] = []
    yield started
    for replica in started:
        replica.stop()


def start_pair(replicas: list[Replica], config: Path, *extra: str) -> tuple[Replica, Replica]:
    for n in range(2):
        replicas.append(Replica(config, config.parent / f"replica-{n}.log", *extra))
    for replica in replicas:
        replica.wait_ready()
    return replicas[0], replicas[1]


def balanced(first: Replica, second: Replica) -> tuple[httpx2.AsyncClient, RoundRobin]:
    transport = RoundRobin([first.port, second.port])
    http = httpx2.AsyncClient(transport=transport, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
    return http, transport


async def calls(client: Client) -> list[Any]:
    out = []
    for _ in range(3):
        counted = await client.call_tool("execute_sql", {"sql": COUNT_ORDERS})
        assert not counted.is_error, text_of(counted)
        out.append(counted.structured_content["rows"] if counted.structured_content else None)
        listed = await client.call_tool("list_databases", {})
        assert listed.structured_content is not None
        out.append([d["name"] for d in listed.structured_content["databases"]])
        schema = await client.call_tool("describe_schema", {"tables": ["orders"]})
        assert schema.structured_content is not None
        out.append([r["name"] for r in schema.structured_content["relations"]])
        refused = await client.call_tool("execute_sql", {"sql": "SELECT email FROM customers"})
        out.append(refused.is_error and "PGM301" in text_of(refused))
    return out


EXPECTED = [[[4]], ["shop"], ["orders"], True] * 3


@pytest.fixture(scope="module")
def stateless_pair(
    tmp_path_factory: pytest.TempPathFactory, pg_database: TestDatabase, shop_role: str
) -> Iterator[tuple[Replica, Replica]]:
    """Two --stateless replicas for both protocol modes (a stateless replica keeps nothing
    between requests, so one client's calls leave nothing behind for the next)."""
    started: list[Replica] = []
    try:
        yield start_pair(started, replica_config(tmp_path_factory.mktemp("stateless"), pg_database, shop_role),
                         "--stateless")
    finally:
        for replica in started:
            replica.stop()


def served(replica: Replica) -> float:
    """The replica's count of successful execute_sql calls, from its /metrics."""
    _, _, body = get(replica.base + "/metrics")
    ok = {"tool": "execute_sql", "database": "shop", "status": "ok"}
    return sum(value for name, labels, value in parse_prometheus(body) if name == "pgmcp_requests_total"
               and labels == ok)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_stateless_replicas_answer_alternating_requests(
    stateless_pair: tuple[Replica, Replica], mode: str
) -> None:
    first, second = stateless_pair
    before = [served(first), served(second)]
    http, transport = balanced(first, second)
    async with http, Client(streamable_http_client(first.base + "/mcp", http_client=http), mode=mode) as client:
        assert await calls(client) == EXPECTED
    assert transport.hits[first.port] >= 6 and transport.hits[second.port] >= 6, transport.hits
    assert served(first) > before[0] and served(second) > before[1]  # both really served tool calls


async def test_stateful_replicas_lose_the_session_when_requests_alternate(
    tmp_path: Path, pg_database: TestDatabase, shop_role: str, replicas: list[Replica]
) -> None:
    first, second = start_pair(replicas, replica_config(tmp_path, pg_database, shop_role))
    http, _ = balanced(first, second)
    with pytest.raises(Exception) as caught:
        async with http, Client(streamable_http_client(first.base + "/mcp", http_client=http),
                                mode="legacy") as client:
            await calls(client)
    assert "Session not found" in repr(caught.value)


REFUSED = [
    ("client-sampling", {"provider": "client"}, ["--transport", "http", "--stateless"], None,
     ["--stateless cannot serve the query tool with llm.provider 'client'", "openai or anthropic"]),
    ("stateless-stdio", None, ["--stateless"], None, ["--stateless is an option of the HTTP transport"]),
    ("access-without-auth", None, ["--transport", "http"], [{"principals": ["alice"]}],
     ["have access lists, but HTTP without auth cannot tell who calls", "configure auth"]),
]


@pytest.mark.parametrize(("name", "llm", "args", "access", "expected"), REFUSED, ids=[r[0] for r in REFUSED])
def test_unservable_combinations_are_refused_at_startup(
    tmp_path: Path, pg_database: TestDatabase, shop_role: str, name: str, llm: dict[str, Any] | None,
    args: list[str], access: list[dict[str, Any]] | None, expected: list[str],
) -> None:
    path = write_config(tmp_path, pg_database, shop_role, llm or openai_llm("http://127.0.0.1:9/v1"), only=("shop",))
    if access is not None:
        config = json.loads(path.read_text())
        config["databases"]["shop"]["access"] = access
        path.write_text(json.dumps(config))
    done = run_pgmcp(*serve_command(path, *args, "--port", str(free_port()))[1:])  # in-process
    assert done.returncode == 2, done.stderr
    for text in expected:
        assert text in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
