"""The guided tour `pgmcp demo` shows in a terminal: a real MCP client session, step by step.

Every step is a tool call through the MCP SDK's `Client` against `build_server(config)` in
this process (JSON-RPC over in-memory streams, the initialize handshake included), so what
the tour prints is what an MCP host would get. The tour ends with the snippets that make an
MCP host (Claude Desktop, Claude Code) start `pgmcp demo` itself, and points at `pgmcp init`
for the reader's own database.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any, TextIO

from mcp.client.client import Client

from pgmcp.cli.table import render_table
from pgmcp.config.model import Config
from pgmcp.mcp.server import build_server

HOST_NAME = "pgmcp-demo"
TOP_RATED_SQL = (
    "SELECT p.name, p.category, round(avg(r.rating), 2) AS avg_rating, count(*) AS reviews\n"
    "FROM products p JOIN reviews r ON r.product_id = p.id\n"
    "GROUP BY p.id, p.name, p.category HAVING count(*) >= 5\n"
    "ORDER BY avg_rating DESC, p.name LIMIT 5"
)
REFUSED_SQL = "SELECT name, email FROM customers ORDER BY id LIMIT 5"
ROW_FILTER_SQL = (
    "SELECT tenant_id, count(*) AS orders, sum(total) AS revenue FROM orders\n"
    "GROUP BY tenant_id ORDER BY tenant_id"
)
QUESTION = "Which five products sold the most units, and how many?"


def pgmcp_command() -> list[str]:
    """The absolute command that starts this pgmcp: the running `pgmcp` script when that is
    what was started, else the one on PATH, else the one beside this Python."""
    argv0 = Path(sys.argv[0])
    if argv0.name.startswith("pgmcp") and argv0.is_file():
        return [str(argv0.absolute())]
    for candidate in (shutil.which("pgmcp"), Path(sys.executable).parent / "pgmcp"):
        if candidate and Path(candidate).is_file():
            return [str(Path(candidate).absolute())]
    return [sys.executable, "-c", "import sys; from pgmcp.cli.main import main; sys.exit(main())"]


def desktop_snippet(command: list[str]) -> str:
    """The `mcpServers` entry for Claude Desktop's claude_desktop_config.json."""
    entry = {"command": command[0], "args": [*command[1:], "demo"]}
    return json.dumps({"mcpServers": {HOST_NAME: entry}}, indent=2)


def claude_code_command(command: list[str]) -> str:
    return " ".join(["claude", "mcp", "add", HOST_NAME, "--", *(_shell_quote(p) for p in command), "demo"])


def _shell_quote(part: str) -> str:
    import shlex

    return shlex.quote(part)


class Tour:
    """Prints the tour to `out`; `where` says where the PostgreSQL runs (one line)."""

    def __init__(self, config: Config, out: TextIO, where: str) -> None:
        self.config = config
        self.out = out
        self.where = where
        self.step = 0

    def say(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def heading(self, tool: str, title: str) -> None:
        self.step += 1
        self.say()
        self.say(f"{self.step}. {title}")
        self.say(f"   (MCP tool: {tool})")

    async def call(self, client: Client, tool: str, args: dict[str, Any]) -> tuple[bool, Any, str]:
        """(ok, structured result, text) of one tool call; shows the call as a host would send it."""
        shown = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in args.items())
        self.say(f"   > {tool}({shown})")
        result = await client.call_tool(tool, args)
        text = "\n".join(getattr(c, "text", "") for c in result.content)
        return not result.is_error, result.structured_content, text

    async def run(self) -> None:
        self.say("pgmcp demo: a guided tour through a real MCP session")
        self.say("=" * 52)
        self.say(f"PostgreSQL: {self.where}")
        self.say("Database 'shop' (the sample online shop), connected as the read-only role pgmcp_demo,")
        self.say("under the policy policies/demo.yaml.")
        async with Client(build_server(self.config), mode="legacy") as client:
            await self.databases(client)
            await self.schema(client)
            await self.query_rows(client)
            await self.refusal(client)
            await self.row_filter(client)
            await self.natural_language(client)
        self.hosts()
        self.your_database()

    async def databases(self, client: Client) -> None:
        self.heading("list_databases", "What this pgmcp serves")
        ok, data, text = await self.call(client, "list_databases", {})
        if not ok:
            self.say(f"   error: {text}")
            return
        for db in data["databases"]:
            self.say(f"   {db['name']}: {db['description']}")
            self.say(f"     status: {db['status']}")
            self.say(f"     {db['policy']}")

    async def schema(self, client: Client) -> None:
        self.heading("describe_schema", "The schema the policy lets a model see")
        ok, data, text = await self.call(client, "describe_schema", {})
        if not ok:
            self.say(f"   error: {text}")
            return
        for rel in data["relations"]:
            rows = f", ~{rel['row_estimate']} rows" if rel.get("row_estimate") else ""
            self.say(f"   {rel['schema']}.{rel['name']} ({rel['kind']}{rows}): {rel.get('comment') or ''}")
            self.say("       " + ", ".join(c["name"] for c in rel["columns"]))
        self.say("   Hidden columns (customers.email and .phone, payment card details, IBANs) are")
        self.say("   not listed at all: the model never learns they exist.")

    async def show_rows(self, data: dict[str, Any]) -> None:
        columns = [c["name"] for c in data["columns"]]
        self.say(render_table(columns, data["rows"], limit=10, indent="   "))

    async def query_rows(self, client: Client) -> None:
        self.heading("execute_sql", "SQL, checked against the policy and run read-only")
        ok, data, text = await self.call(client, "execute_sql", {"sql": TOP_RATED_SQL})
        if not ok:
            self.say(f"   error: {text}")
            return
        await self.show_rows(data)

    async def refusal(self, client: Client) -> None:
        self.heading("execute_sql", "A query the policy refuses, and why")
        ok, _, text = await self.call(client, "execute_sql", {"sql": REFUSED_SQL})
        if ok:
            self.say("   unexpected: the query ran")
            return
        for line in text.splitlines():
            self.say("   " + line.removeprefix("Error executing tool execute_sql: "))

    async def row_filter(self, client: Client) -> None:
        self.heading("execute_sql", "A row filter: orders of storefront 1 only")
        self.say("   The orders table holds three storefronts (tenant_id 1, 2, 3); the policy's")
        self.say("   row filter `tenant_id = 1` is built into every read of it.")
        ok, data, text = await self.call(client, "execute_sql", {"sql": ROW_FILTER_SQL})
        if not ok:
            self.say(f"   error: {text}")
            return
        self.say("   What ran:")
        self.say("     " + data["sql"])
        await self.show_rows(data)

    async def natural_language(self, client: Client) -> None:
        self.heading("query", "A question in plain language")
        if self.config.llm.provider == "client":
            self.say("   Skipped: no LLM provider is configured. To try it, set OPENAI_API_KEY or")
            self.say("   ANTHROPIC_API_KEY (or pass --config FILE with an llm: section) and run")
            self.say("   `pgmcp demo` again. Started by an MCP host (below), pgmcp asks the host's")
            self.say("   own model through MCP sampling instead.")
            return
        ok, data, text = await self.call(client, "query", {"question": QUESTION})
        if not ok:
            self.say("   " + text.removeprefix("Error executing tool query: ").replace("\n", "\n   "))
            return
        self.say(f"   The model ({self.config.llm.provider}) wrote, and the policy allowed:")
        self.say("     " + data["sql"].replace("\n", "\n     "))
        await self.show_rows(data)

    def your_database(self) -> None:
        self.say()
        self.say("Next: your own database")
        self.say("=" * 23)
        self.say("`pgmcp init` connects as an admin (--dsn postgresql://user@host:5432/dbname, or PGHOST,")
        self.say("PGUSER, PGDATABASE, PGPASSWORD...), reads the schema and writes pgmcp.yaml, a first policy")
        self.say("with the columns that look sensitive hidden, and pgmcp-role.sql, which creates the read-only")
        self.say("role pgmcp_ro that pgmcp logs in as. It prints the next steps; in short:")
        self.say()
        self.say("  pgmcp init --dsn postgresql://admin@your-host:5432/your_db")
        self.say("  export YOUR_DB_DB_PASSWORD='...'   # pgmcp_ro's password, chosen now")
        self.say("  psql -v ON_ERROR_STOP=1 -v pw=\"$YOUR_DB_DB_PASSWORD\" -f pgmcp-role.sql "
                 "'postgresql://admin@your-host:5432/your_db'")
        self.say("  pgmcp check-config --config pgmcp.yaml --connect --strict")

    def hosts(self) -> None:
        command = pgmcp_command()
        self.say()
        self.say("Use the demo from an MCP host")
        self.say("=" * 29)
        self.say("Started by a host, `pgmcp demo` serves MCP on stdio (its own throwaway PostgreSQL,")
        self.say("removed when the host stops it). Claude Desktop: add this to")
        self.say("claude_desktop_config.json (Settings > Developer > Edit Config), then restart it:")
        self.say()
        self.say(desktop_snippet(command))
        self.say()
        self.say("Claude Code:")
        self.say()
        self.say("  " + claude_code_command(command))
        self.say()
