"""`pgmcp stats`: a stdio server keeps a metrics snapshot file; the command reads it (or /metrics)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters

from pgmcp.cli.stats import parse_prometheus, snapshot_samples, summary
from pgmcp.observe import metrics
from pgmcp.observe.stats_file import read_live_snapshots, write_snapshot
from tests.conftest import TestDatabase
from tests.mcp_setup import COUNT_ORDERS, create_shop, drop_role, serve_command, write_config

PGMCP = str(Path(sys.executable).parent / "pgmcp")


@pytest.fixture(scope="module")
def shop(pg_database: TestDatabase) -> Iterator[str]:
    role = create_shop(pg_database)
    yield role
    drop_role(pg_database, role)


def test_prometheus_text_and_snapshot_give_the_same_samples() -> None:
    registry = metrics.Registry()
    labels = ("tool", "database", "status")
    calls = metrics.Counter("pgmcp_requests_total", "calls", labels, registry=registry)
    calls.inc(3, tool="execute_sql", database="shop", status="ok")
    from_text = [s for s in parse_prometheus(registry.render()) if s[0] == "pgmcp_requests_total"]
    from_snapshot = snapshot_samples(registry.snapshot())
    assert from_text == from_snapshot == [
        ("pgmcp_requests_total", {"tool": "execute_sql", "database": "shop", "status": "ok"}, 3.0)
    ]
    assert any("execute_sql" in line and line.rstrip().endswith(" 3") for line in summary(from_text))


def test_files_of_dead_processes_are_removed(tmp_path: Path) -> None:
    write_snapshot(tmp_path / "live.json", {"config": "a.yaml"})
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    (tmp_path / "dead.json").write_text(f'{{"pid": {dead.stdout.strip()}, "metrics": {{}}}}')
    live = read_live_snapshots(tmp_path)
    assert [s["pid"] for s in live] == [os.getpid()]
    assert not (tmp_path / "dead.json").exists()


async def test_stats_of_a_running_stdio_server(
    tmp_path: Path, pg_database: TestDatabase, shop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, pg_database, shop, {"provider": "client"})
    stats = tmp_path / "stats"
    command, *args = serve_command(config)
    env = {**os.environ, "PGMCP_STATS_DIR": str(stats)}
    params = StdioServerParameters(command=command, args=args, cwd=tmp_path, env=env)
    async with Client(params, read_timeout_seconds=60) as client:
        result = await client.call_tool("execute_sql", {"sql": COUNT_ORDERS, "database": "shop"})
        assert not result.is_error
        denied = await client.call_tool("execute_sql", {"sql": "SELECT pg_sleep(1)", "database": "shop"})
        assert denied.is_error
        shown = ""
        for _ in range(100):  # the server rewrites its file every few seconds
            out = subprocess.run([PGMCP, "stats", "--dir", str(stats)], capture_output=True, text=True,
                                 check=False, timeout=30)
            assert out.returncode == 0, out.stderr
            shown = out.stdout
            if "execute_sql" in shown and "PGM401" in shown:
                break
            await asyncio.sleep(0.2)
        assert "calls     execute_sql" in shown and "ok" in shown
        assert "refusals" in shown and "PGM401" in shown
    # the file goes away with the server
    assert "no running pgmcp server" in subprocess.run(
        [PGMCP, "stats", "--dir", str(stats)], capture_output=True, text=True, check=False, timeout=30
    ).stdout
