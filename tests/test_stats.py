"""`pgmcp stats`: a stdio server keeps its metrics text in a file; the command (run in-process,
tests/cli_inprocess.py) reads it (or /metrics)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from loguru import logger
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters

from pgmcp.cli.stats import parse_prometheus, summary
from pgmcp.observe import metrics
from pgmcp.observe.stats_file import INTERVAL, read_live_stats, stats_interval, write_stats
from tests.cli_inprocess import run_pgmcp
from tests.conftest import TestDatabase
from tests.mcp_setup import COUNT_ORDERS, serve_command, write_config


def test_a_stats_file_holds_the_metrics_text_and_who_wrote_it(tmp_path: Path) -> None:
    metrics.REQUESTS_TOTAL.labels(tool="execute_sql", database="stats-test", status="ok").inc(3)
    write_stats(tmp_path / "live.prom", "a.yaml")
    [live] = read_live_stats(tmp_path)
    assert (live.pid, live.config) == (os.getpid(), "a.yaml")
    samples = [s for s in parse_prometheus(live.text) if s[1].get("database") == "stats-test"]
    assert samples == [("pgmcp_requests_total", {"tool": "execute_sql", "database": "stats-test", "status": "ok"}, 3.0)]
    assert any("execute_sql" in line and line.rstrip().endswith(" 3") for line in summary(samples))


def test_files_of_dead_processes_are_removed(tmp_path: Path) -> None:
    write_stats(tmp_path / "live.prom", None)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    (tmp_path / "dead.prom").write_text(f'# pgmcp {{"pid": {dead.stdout.strip()}, "config": null}}\n')
    live = read_live_stats(tmp_path)
    assert [s.pid for s in live] == [os.getpid()]
    assert not (tmp_path / "dead.prom").exists()


@pytest.mark.parametrize(("raw", "seconds", "warned"), [
    (None, INTERVAL, False), ("", INTERVAL, False), ("0.25", 0.25, False), (" 2 ", 2.0, False),
    ("fast", INTERVAL, True), ("0", INTERVAL, True), ("-1", INTERVAL, True), ("nan", INTERVAL, True),
    ("inf", INTERVAL, True),
], ids=["unset", "empty", "fraction", "spaces", "word", "zero", "negative", "nan", "inf"])
def test_the_interval_comes_from_the_environment(
    raw: str | None, seconds: float, warned: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if raw is None:
        monkeypatch.delenv("PGMCP_STATS_INTERVAL", raising=False)
    else:
        monkeypatch.setenv("PGMCP_STATS_INTERVAL", raw)
    warnings: list[str] = []
    handler = logger.add(warnings.append, level="WARNING", format="{message}")
    try:
        assert stats_interval() == seconds
    finally:
        logger.remove(handler)
    assert bool(warnings) == warned
    if warned:
        assert f"PGMCP_STATS_INTERVAL is {raw!r}" in warnings[0] and "using 5.0" in warnings[0]


async def test_stats_of_a_running_stdio_server(
    tmp_path: Path, pg_database: TestDatabase, shop_role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, pg_database, shop_role, {"provider": "client"})
    stats = tmp_path / "stats"
    command, *args = serve_command(config)
    env = {**os.environ, "PGMCP_STATS_DIR": str(stats), "PGMCP_STATS_INTERVAL": "0.1"}
    params = StdioServerParameters(command=command, args=args, cwd=tmp_path, env=env)
    async with Client(params, read_timeout_seconds=60) as client:
        result = await client.call_tool("execute_sql", {"sql": COUNT_ORDERS, "database": "shop"})
        assert not result.is_error
        denied = await client.call_tool("execute_sql", {"sql": "SELECT pg_sleep(1)", "database": "shop"})
        assert denied.is_error
        shown = ""
        for _ in range(200):  # the server rewrites its file every 0.1 s here (PGMCP_STATS_INTERVAL)
            out = run_pgmcp("stats", "--dir", str(stats))
            assert out.returncode == 0, out.stderr
            shown = out.stdout
            if "execute_sql" in shown and "PGM401" in shown:
                break
            await asyncio.sleep(0.05)
        assert "calls     execute_sql" in shown and "ok" in shown
        assert "refusals" in shown and "PGM401" in shown
    # the file goes away with the server
    assert "no running pgmcp server" in run_pgmcp("stats", "--dir", str(stats)).stdout
