"""What `pgmcp serve` over stdio loads up to its first answers: not what only other paths need.

Starting is mostly importing (docs/benchmarks.md, "Startup"), so the parts a stdio server
does not need until a request asks for them are imported on demand, and users rely on that:
a config that names an LLM vendor does not pay for its SDK until the first question, the token
verifier is HTTP's, and so on. A real `pgmcp serve` subprocess answers the SDK's stdio client
(initialize, the tool list, one `execute_sql`), and on its way out writes the names of the
modules it loaded; the test reads them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import pytest
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.conftest import TestDatabase
from tests.fakes.llm_server import FakeLLMServer
from tests.mcp_setup import COUNT_ORDERS, openai_llm, text_of, write_config

# `pgmcp serve` as its console script runs it, plus a hook that lists sys.modules at exit.
SERVE_AND_LIST_MODULES = """
import atexit, json, sys
config, listing = sys.argv[1], sys.argv[2]
atexit.register(lambda: open(listing, "w").write(json.dumps(sorted(sys.modules))))
from pgmcp.cli.main import main
raise SystemExit(main(["serve", "--config", config]))
"""

# (module, what loads it instead): none of these may be imported by serving stdio up to an
# `execute_sql` answer.
NOT_LOADED = [
    ("openai", "the first question to the configured OpenAI model (pgmcp.llm.openai_provider)"),
    ("anthropic", "the first question to an Anthropic model"),
    ("pgmcp.ask", "the `query` tool (the NL->SQL pipeline)"),
    ("jwt", "an HTTP request carrying a JWT (pgmcp.auth.jwt_verifier)"),
    ("pgmcp.auth.jwt_verifier", "an HTTP request carrying a bearer token"),
    ("pgmcp.auth.verifier", "serving HTTP with auth configured"),
    ("pgmcp.db.checkworker", "a statement too long to check inline (checker processes)"),
    ("pgmcp.policy.describe", "the policy resource or `pgmcp explain-policy`"),
    ("pgmcp.demo", "`pgmcp demo`"),
    ("pgmcp.cli.ops", "a config error on the way out"),
]
# What the same run must have loaded: proof that the listing is the server's.
LOADED = ["pgmcp.service.runtime", "pgmcp.mcp.server", "pgmcp.policy.checker", "sqlglot", "asyncpg"]


@pytest.fixture(scope="module")
def loaded_modules(
    tmp_path_factory: pytest.TempPathFactory, pg_database: TestDatabase, shop_role: str, fake_llm: FakeLLMServer
) -> set[str]:
    folder = tmp_path_factory.mktemp("serve-imports")
    config = write_config(folder, pg_database, shop_role, openai_llm(fake_llm.openai_url), only=("shop",))
    listing = folder / "modules.json"
    params = StdioServerParameters(
        command=sys.executable, args=["-c", SERVE_AND_LIST_MODULES, str(config), str(listing)], cwd=folder
    )

    async def session() -> None:
        async with Client(stdio_client(params), mode="legacy", read_timeout_seconds=60) as client:
            tools = await client.list_tools()
            assert "execute_sql" in {t.name for t in tools.tools}
            result = await client.call_tool("execute_sql", {"sql": COUNT_ORDERS, "database": "shop"})
            assert not result.is_error, text_of(result)


    anyio.run(session)
    names: list[str] = json.loads(Path(listing).read_text())
    return set(names)


@pytest.mark.parametrize(("module", "loaded_by"), NOT_LOADED, ids=[m for m, _ in NOT_LOADED])
def test_serving_stdio_does_not_import(loaded_modules: set[str], module: str, loaded_by: str) -> None:
    assert module not in loaded_modules, f"{module} is imported by serving stdio; it belongs to {loaded_by}"


def test_the_listing_is_the_servers(loaded_modules: set[str]) -> None:
    assert set(LOADED) <= loaded_modules, sorted(set(LOADED) - loaded_modules)
