"""`pgmcp demo` as a user and as an MCP host meet it: run as a subprocess, with its own
throwaway PostgreSQL. The tour's output is checked against the same queries run directly on
a copy of the sample shop; the host session goes through the SDK's stdio client; every run
must leave no cluster directory and no postgres process behind, also after a signal. (The
missing-PostgreSQL message, which comes before any cluster or signal, runs in-process.)"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.cli_inprocess import run_pgmcp
from tests.conftest import TestDatabase, TestServer
from tests.fakes.llm_server import FakeLLMServer, text

pytestmark = pytest.mark.pg  # these start PostgreSQL clusters of their own

ROOT = Path(__file__).resolve().parent.parent
TOP_UNITS_SQL = (
    "SELECT p.name, sum(i.quantity) AS units FROM order_items i JOIN products p ON p.id = i.product_id "
    "GROUP BY p.name ORDER BY units DESC, p.name LIMIT 5"
)


def demo_argv() -> list[str]:
    """How a user starts the demo: the installed `pgmcp` script beside this Python."""
    script = Path(sys.executable).parent / "pgmcp"
    if (ROOT / "pgmcp" / "cli" / "main.py").exists() and script.exists():
        return [str(script), "demo"]
    return [sys.executable, "-m", "pgmcp.demo.cli"]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "PGMCP_"))}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def cluster_dir(output: str) -> Path:
    match = re.search(r"(?:cluster in|PostgreSQL in) (/\S+)", output)
    assert match, output
    return Path(match.group(1))


def assert_cluster_gone(path: Path) -> None:
    assert not path.exists(), f"{path} was left behind"
    leftovers = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if str(path) in cmdline:
                leftovers.append(f"{proc.name}: {cmdline}")
    assert not leftovers, leftovers


def rows(db: TestDatabase, sql: str) -> list[list[str]]:
    return [line.split("|") for line in db.run_sql(sql).splitlines() if line]


def table_line(values: list[str]) -> re.Pattern[str]:
    return re.compile(r"^\s*" + r"\s*\|\s*".join(re.escape(v) for v in values) + r"\s*$", re.M)


def test_tour_shows_each_step_with_real_results_then_ctrl_c_removes_the_cluster(shop: TestDatabase) -> None:
    """The tour, kept running (--keep-running), then SIGINT as a terminal's Ctrl-C sends it: one
    throwaway cluster for both (a plain tour's normal exit removes its cluster the same way as
    the MCP host's session below, which ends when the host closes stdin)."""
    proc = subprocess.Popen(
        [*as_from_a_terminal(), *demo_argv(), "--tour", "--keep-running"], stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_env(),
    )
    try:
        assert proc.stdout is not None
        out = ""
        for line in proc.stdout:
            if "stays up: psql 'postgresql://" in line:
                kept = line + proc.stdout.readline()
                break
            out += line
        else:
            raise AssertionError(f"the demo ended early: {out}")
        assert f"`kill {proc.pid}` (SIGTERM) or SIGINT stops it and removes it." in kept
        assert cluster_dir(out).exists()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGINT, err
    assert "interrupted; the demo database was removed" in err and "Traceback" not in err

    assert "shop: The pgmcp sample shop" in out and "status: up" in out  # list_databases
    assert "public.customers (table" in out and "public.product_ratings (view)" in out  # describe_schema
    customer_columns = out.split("public.customers (table", 1)[1].splitlines()[1]
    assert "country" in customer_columns and "email" not in customer_columns
    top_rated = rows(shop, (
        "SELECT p.name, p.category, round(avg(r.rating), 2), count(*) FROM products p "
        "JOIN reviews r ON r.product_id = p.id GROUP BY p.id, p.name, p.category "
        "HAVING count(*) >= 5 ORDER BY 3 DESC, p.name LIMIT 5"
    ))
    assert len(top_rated) == 5
    for row in top_rated:
        assert table_line(row).search(out), row
    refusal = out.split("A query the policy refuses", 1)[1]
    assert "PGM301 column-denied" in refusal and "public.customers.email" in refusal
    [tenant_one] = rows(shop, "SELECT 1, count(*), sum(total) FROM orders WHERE tenant_id = 1")
    assert table_line(tenant_one).search(out)
    assert "_pgmcp_rf.tenant_id = 1" in out
    assert "Skipped: no LLM provider is configured" in out

    snippet = json.loads(re.search(r"^\{\n.*?^\}$", out, re.M | re.S).group(0))  # type: ignore[union-attr]
    entry = snippet["mcpServers"]["pgmcp-demo"]
    assert entry["args"][-1] == "demo"
    assert Path(entry["command"]).is_absolute() and Path(entry["command"]).exists()
    assert f"claude mcp add pgmcp-demo -- {entry['command']} " in out
    assert "Next: your own database" in out.split("claude mcp add pgmcp-demo", 1)[1]  # the last step
    assert "pgmcp init --dsn postgresql://" in out
    assert_cluster_gone(cluster_dir(out))


async def test_mcp_host_lists_tools_and_runs_sql(tmp_path: Path) -> None:
    argv = demo_argv()
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=clean_env())
    errlog = (tmp_path / "stderr.txt").open("w+")
    async with Client(stdio_client(params, errlog=errlog)) as client:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert {"query", "execute_sql", "check_sql", "list_databases", "describe_schema"} <= tools
        result = await client.call_tool("execute_sql", {"sql": "SELECT count(*) AS n FROM customers"})
        assert not result.is_error
        assert result.structured_content["rows"] == [[300]]
        refused = await client.call_tool("execute_sql", {"sql": "SELECT email FROM customers"})
        assert refused.is_error
    errlog.close()
    assert_cluster_gone(cluster_dir((tmp_path / "stderr.txt").read_text()))


# SIGINT in --keep-running: the tour test above.
@pytest.mark.parametrize(("mode", "signum"), [("keep", signal.SIGTERM), ("serve", signal.SIGTERM)])
def test_signal_removes_the_cluster(mode: str, signum: int) -> None:
    # --keep-running without a terminal (stdin is a pipe here): no tour, no MCP, the database
    # stays up until a signal, and the demo says how to stop it.
    args = ["--keep-running"] if mode == "keep" else []
    proc = subprocess.Popen(
        [*as_from_a_terminal(), *demo_argv(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL if mode == "keep" else subprocess.PIPE, env=clean_env(),
    )
    try:
        # Wait until the demo is fully up: --keep-running says so on stdout, the server on stderr.
        stream, ready = (proc.stdout, "stops it and removes it") if mode == "keep" else (proc.stderr, "pgmcp ready")
        assert stream is not None
        seen = ""
        for line in stream:
            seen += line
            if ready in line:
                break
        path = cluster_dir(seen)
        assert path.exists()
        if mode == "keep":
            assert f"`kill {proc.pid}` (SIGTERM) or SIGINT stops it" in seen and "psql 'postgresql://" in seen
            assert "Welcome" not in seen and "PGM301" not in seen  # no tour
            with pytest.raises(subprocess.TimeoutExpired):  # stdin at its end changes nothing: only a signal stops it
                proc.wait(timeout=1)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signum, err
    assert "the demo database was removed" in err
    assert "Traceback" not in err
    assert_cluster_gone(path)


def as_from_a_terminal() -> list[str]:
    """A prefix that runs the command with SIGINT as a terminal's foreground job has it (then
    execs it: same process). A test run started in the background (CI runners, `cmd &`) ignores
    SIGINT, the ignoring is inherited across exec, and Python then leaves Ctrl-C ignored: the
    demo would never see the signal the test sends."""
    restore = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
               "os.execv(sys.argv[1], sys.argv[1:])")
    return [sys.executable, "-c", restore]


def test_missing_postgres_says_how_to_install() -> None:
    # PGMCP_PG_BINDIR, when set, is the only place looked at; PATH has no PostgreSQL either.
    # In-process (tests/cli_inprocess.py): it ends before any cluster or signal.
    env = {"PGMCP_PG_BINDIR": "/nonexistent", "PATH": str(Path(sys.executable).parent)}
    proc = run_pgmcp("demo", "--tour", env=env, clean=True)
    assert proc.returncode == 2
    assert "error: PGMCP_PG_BINDIR is /nonexistent, which holds no initdb and pg_ctl" in proc.stderr
    for hint in ("sudo apt-get install postgresql", "brew install postgresql", "--dsn"):
        assert hint in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_dsn_uses_an_existing_server(pg_server: TestServer, fake: FakeLLMServer) -> None:
    """The tour on the test server (--dsn), kept running, then stopped by a signal; with a
    provider configured, so that it also asks in plain language (through the fake vendor)."""
    if pg_server.run_sql("SELECT 1 FROM pg_database WHERE datname = 'shop'").strip():
        pytest.skip("the test server already has a database named shop")
    fake.script(text(f"```sql\n{TOP_UNITS_SQL}\n```"))
    env = clean_env(OPENAI_API_KEY="test-key", OPENAI_BASE_URL=fake.openai_url)
    try:
        kept = subprocess.Popen(
            [*as_from_a_terminal(), *demo_argv(), "--tour", "--keep-running", "--dsn", pg_server.admin_dsn],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        try:
            assert kept.stdout is not None
            out = ""
            for line in kept.stdout:
                out += line
                if "(the database stays on that server)" in line:
                    assert f"`kill {kept.pid}` (SIGTERM) or SIGINT ends pgmcp demo" in line  # stdin is no terminal
                    break
            kept.send_signal(signal.SIGTERM)
            _, err = kept.communicate(timeout=60)
        finally:
            if kept.poll() is None:
                kept.kill()
                kept.wait()
        assert "(the database stays on that server)" in out, err
        assert "the server given with --dsn" in out
        assert "PGM301" in out
        step = out.split("A question in plain language", 1)[1]
        assert "The model (openai) wrote, and the policy allowed:" in step
        assert TOP_UNITS_SQL in step
        for row in [line.split("|") for line in pg_server.run_sql(TOP_UNITS_SQL, "shop").splitlines() if line]:
            assert table_line(row).search(step), row
        assert "email" not in str(fake.requests[0].body)  # hidden columns never reach the model
        # Stopped by a signal, the demo says the database stays (nothing is removed from --dsn).
        assert kept.returncode == 128 + signal.SIGTERM, err
        assert "the database 'shop' stays on the --dsn server" in err
        assert "removed" not in err
        # Kept on the server, and served through the read-only role, never the admin user.
        assert pg_server.run_sql("SELECT count(*) FROM customers", "shop").strip() == "300"
    finally:
        pg_server.run_sql("DROP DATABASE IF EXISTS shop WITH (FORCE)")
