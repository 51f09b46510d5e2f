"""pgmcp through a real PgBouncer in transaction mode (Debian's `pgbouncer` package; .ci/run
installs it). With `pgbouncer: true` everything holds: read-only, the SET LOCAL timeouts,
application_name, concurrent calls, refresh_schema, and check-config --connect. Without it,
`serve` and `check-config --connect` fail alike and both say to set `pgbouncer: true`.
Skipped only when no pgbouncer binary can be found.
"""

from __future__ import annotations

import asyncio
import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from mcp.client.client import Client

from pgmcp.cli import check_config
from pgmcp.config.loader import load_config
from pgmcp.config.model import DatabaseConfig, LimitsConfig, PoolConfig
from pgmcp.db.executor import Executor
from pgmcp.db.pools import PoolSet
from pgmcp.errors import PermissionDenied, QueryTimeout
from pgmcp.mcp.server import build_server
from pgmcp.policy.verdict import Verdict
from tests.conftest import TestDatabase
from tests.mcp_setup import COUNT_ORDERS, HEAVY_SQL, POLICY_YAML, text_of
from tests.test_mcp_http import HttpServer, free_port, serve, start

__all__ = ["serve"]  # the fixture, imported for pytest


def find_pgbouncer() -> str | None:
    for candidate in (shutil.which("pgbouncer"), "/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"):
        if candidate and os.path.exists(candidate):
            return candidate
    return None


class PgBouncer:
    """A PgBouncer in transaction mode in front of the test server, in a folder of its own."""

    def __init__(self, binary: str, pg_dsn: str, dbname: str, user: str) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="pgmcp-pgbouncer-"))
        self.port = free_port()
        parts = urlsplit(pg_dsn)
        run_as = "postgres" if os.geteuid() == 0 else None
        (self.folder / "userlist.txt").write_text(f'"{user}" ""\n')
        (self.folder / "pgbouncer.ini").write_text(f"""\
[databases]
{dbname} = host={parts.hostname} port={parts.port} dbname={dbname}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
auth_file = {self.folder / "userlist.txt"}
pool_mode = transaction
max_client_conn = 200
default_pool_size = 4
logfile = {self.folder / "pgbouncer.log"}
pidfile = {self.folder / "pgbouncer.pid"}
""")
        command = [binary, str(self.folder / "pgbouncer.ini")]
        if run_as:  # PgBouncer refuses to run as root
            ent = pwd.getpwnam(run_as)
            for path in (self.folder, *self.folder.iterdir()):
                os.chown(path, ent.pw_uid, ent.pw_gid)
            command.insert(1, "-u")
            command.insert(2, run_as)
        self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.dsn = f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}"
        self._wait()

    def _wait(self) -> None:
        import socket

        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.folder / "pgbouncer.log"
                raise AssertionError(f"pgbouncer exited: {log.read_text() if log.exists() else ''}")
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise AssertionError("pgbouncer did not start")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture(scope="module")
def bouncer(pg_database: TestDatabase, shop_role: str) -> Iterator[tuple[PgBouncer, str]]:
    binary = find_pgbouncer()
    if binary is None:
        pytest.skip("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
    pgb = PgBouncer(binary, pg_database.dsn, pg_database.name, shop_role)
    try:
        yield pgb, shop_role
    finally:
        pgb.stop()


def write(folder: Path, dsn: str, pgbouncer: bool) -> Path:
    (folder / "mcp-test.yaml").write_text(POLICY_YAML)
    common: dict[str, Any] = {"dsn": dsn, "policies": ["mcp-test.yaml"], "pgbouncer": pgbouncer,
                              "pool": {"min_size": 1, "max_size": 6}}
    config = {
        "databases": {
            "shop": {**common, "statement_timeout": "2s"},
            "shop_fast": {**common, "statement_timeout": "100ms"},
        },
        "llm": {"provider": "client"},
        "limits": {"max_rows": 100, "statement_timeout": "5s", "max_concurrent_queries": 8},
    }
    path = folder / "pgmcp.yaml"
    path.write_text(json.dumps(config))
    return path


def permissive(sql: str) -> Verdict:
    return Verdict(sql=sql, allowed=True, statement_kind="select")


async def test_hardening_holds_behind_pgbouncer(bouncer: tuple[PgBouncer, str]) -> None:
    """Checked by PostgreSQL itself, from inside the statement (the policy would refuse these)."""
    pgb, _ = bouncer
    limits = LimitsConfig(statement_timeout=2.0, lock_timeout=0.5)
    pools = PoolSet([DatabaseConfig(name="shop", dsn=pgb.dsn, pgbouncer=True, pool=PoolConfig(1, 3))], limits)
    await pools.connect("shop")
    ex = Executor(pools, {"shop": permissive}, limits)
    try:
        names = ["transaction_read_only", "lock_timeout", "application_name", "work_mem",
                 "standard_conforming_strings", "search_path"]
        result = await ex.execute("shop", "SELECT " + ", ".join(f"current_setting('{n}')" for n in names))
        assert result.rows == [["on", "500ms", "pgmcp", "16MB", "on", "public, pg_temp"]]
        with pytest.raises(PermissionDenied, match="read-only"):
            await ex.execute("shop", "CREATE TABLE t_written (i int)")
        with pytest.raises(QueryTimeout, match="statement_timeout"):
            await ex.execute("shop", "SELECT pg_sleep(3)")
        # A session-level escape is undone with its transaction, whichever server connection serves next.
        await ex.execute("shop", "SELECT set_config('default_transaction_read_only', 'off', false)")
        for _ in range(5):
            assert (await ex.execute("shop", "SELECT current_setting('transaction_read_only')")).rows == [["on"]]
    finally:
        await ex.close()
        await pools.close()


async def test_through_pgbouncer_in_transaction_mode(
    tmp_path: Path, bouncer: tuple[PgBouncer, str], serve: list[HttpServer], pg_database: TestDatabase
) -> None:
    pgb, role = bouncer
    server = start(serve, write(tmp_path, pgb.dsn, pgbouncer=True))
    async with Client(server.base + "/mcp") as client:
        timed_out = await client.call_tool("execute_sql", {"sql": HEAVY_SQL, "database": "shop_fast"})
        assert timed_out.is_error and text_of(timed_out).startswith("[query_timeout]"), text_of(timed_out)

        calls = [client.call_tool("execute_sql", {"sql": COUNT_ORDERS, "database": "shop"}) for _ in range(20)]
        results = await asyncio.gather(*calls)
        assert all(not r.is_error and r.structured_content and r.structured_content["rows"] == [[4]]
                   for r in results), [text_of(r) for r in results if r.is_error]

        refreshed = await client.call_tool("refresh_schema", {"database": "shop"})
        assert not refreshed.is_error and refreshed.structured_content is not None
        assert refreshed.structured_content["stale"] is False and refreshed.structured_content["relations"] >= 2

    # Nothing of pgmcp's is left idle in a transaction behind the pooler.
    idle = pg_database.run_sql(
        f"SELECT count(*) FROM pg_stat_activity WHERE usename = '{role}' AND state = 'idle in transaction'"
    )
    assert idle.strip() == "0"


async def test_without_pgbouncer_true_serve_and_check_config_say_to_set_it(
    tmp_path: Path, bouncer: tuple[PgBouncer, str], capsys: pytest.CaptureFixture[str]
) -> None:
    pgb, _ = bouncer
    config = write(tmp_path, pgb.dsn, pgbouncer=False)
    # In-process (the HTTP process is the previous test's): what the tools say is the point.
    async with Client(build_server(load_config(config))) as client:
        listed = await client.call_tool("list_databases", {})
        assert listed.structured_content is not None
        status = listed.structured_content["databases"][0]["status"]
        assert status.startswith("down") and "set `pgbouncer: true`" in status, status
        failed = await client.call_tool("execute_sql", {"sql": COUNT_ORDERS, "database": "shop"})
        assert failed.is_error and "set `pgbouncer: true`" in text_of(failed), text_of(failed)

    os.chdir(tmp_path)
    code = await asyncio.to_thread(check_config.main, ["--config", str(config), "--connect"])
    out = capsys.readouterr().out
    assert code == 1
    assert "unsupported startup parameter" in out and "set `pgbouncer: true` for database 'shop'" in out

    good = write(tmp_path, pgb.dsn, pgbouncer=True)
    assert await asyncio.to_thread(check_config.main, ["--config", str(good), "--connect"]) == 0
