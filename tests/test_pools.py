"""PoolSet against the real PostgreSQL: hardening, reset on release, SET ROLE, role checks, faults."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest

from pgmcp.config.model import DatabaseConfig, LimitsConfig, PoolConfig
from pgmcp.db.pools import PoolSet
from pgmcp.demo.tempserver import TemporaryPostgres, free_port
from pgmcp.errors import DatabaseNotFound, DatabaseUnavailable, UnsafeRole
from tests.conftest import TestDatabase

LIMITS = LimitsConfig(statement_timeout=3.0, lock_timeout=0.5, idle_in_transaction_timeout=7.0)
SUFFIX = uuid.uuid4().hex[:6]
PLAIN, READER, FILES = f"plain_{SUFFIX}", f"reader_{SUFFIX}", f"files_{SUFFIX}"


@pytest.fixture(scope="module")
def roles(pg_database: TestDatabase) -> Iterator[None]:
    pg_database.run_sql(f"""
        CREATE SCHEMA app;
        CREATE ROLE {PLAIN} LOGIN;
        CREATE ROLE {READER} NOLOGIN;
        GRANT {READER} TO {PLAIN};
        CREATE ROLE {FILES} LOGIN IN ROLE pg_read_server_files;
    """)
    yield None
    pg_database.server.run_sql(f"DROP OWNED BY {PLAIN}, {READER}, {FILES}; ", pg_database.name)
    pg_database.server.run_sql(f"DROP ROLE {FILES}; DROP ROLE {PLAIN}; DROP ROLE {READER};")


def db(pg_database: TestDatabase, name: str = "main", **kw: object) -> DatabaseConfig:
    base = DatabaseConfig(name=name, dsn=pg_database.dsn, pool=PoolConfig(min_size=1, max_size=1))
    return replace(base, **kw)  # type: ignore[arg-type]


async def opened(*configs: DatabaseConfig, **kw: object) -> PoolSet:
    pools = PoolSet(configs, LIMITS, **kw)  # type: ignore[arg-type]
    await pools.open()
    return pools


SETTINGS = [
    ("default_transaction_read_only", "on"),
    ("transaction_read_only", "on"),
    ("statement_timeout", "3s"),
    ("lock_timeout", "500ms"),
    ("idle_in_transaction_session_timeout", "7s"),
    ("search_path", "app, public, pg_temp"),
    ("standard_conforming_strings", "on"),
    ("application_name", "pgmcp"),
]


@pytest.mark.parametrize(("setting", "expected"), SETTINGS)
async def test_hardening_visible_inside_a_query(
    pg_database: TestDatabase, roles: None, setting: str, expected: str
) -> None:
    pools = await opened(db(pg_database), search_paths={"main": ["app", "public"]})
    try:
        async with pools.acquire("main") as conn:
            assert await conn.fetchval("SELECT current_setting($1)", setting) == expected
    finally:
        await pools.close()


async def test_config_search_path_wins_over_the_policys(pg_database: TestDatabase, roles: None) -> None:
    pools = await opened(db(pg_database, search_path=("public",)), search_paths={"main": ["app"]})
    try:
        async with pools.acquire("main") as conn:
            assert await conn.fetchval("SHOW search_path") == "public, pg_temp"
    finally:
        await pools.close()


async def test_session_escape_does_not_survive_release(pg_database: TestDatabase, roles: None) -> None:
    """What one user of a connection changes for the session is undone before the next one."""
    pools = await opened(db(pg_database, user=PLAIN, role=READER))
    try:
        async with pools.acquire("main") as conn:
            pid = await conn.fetchval("SELECT pg_backend_pid()")
            assert await conn.fetchval("SELECT current_user") == READER
            await conn.fetchval("SELECT set_config('default_transaction_read_only', 'off', false)")
            await conn.fetchval("SELECT set_config('statement_timeout', '0', false)")
            await conn.fetchval("SELECT set_config('search_path', 'evil', false)")
            await conn.fetchval("SELECT set_config('role', 'none', false)")
            assert await conn.fetchval("SELECT current_user") == PLAIN
            assert await conn.fetchval("SHOW transaction_read_only") == "off"
        async with pools.acquire("main") as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == pid  # the same connection
            assert await conn.fetchval("SHOW default_transaction_read_only") == "on"
            assert await conn.fetchval("SHOW transaction_read_only") == "on"
            assert await conn.fetchval("SHOW statement_timeout") == "3s"
            assert await conn.fetchval("SHOW search_path") == "public, pg_temp"
            assert await conn.fetchval("SELECT current_user") == READER
    finally:
        await pools.close()


async def test_pgbouncer_mode_sends_no_session_state(pg_database: TestDatabase, roles: None) -> None:
    pools = await opened(db(pg_database, pgbouncer=True, role=READER))
    try:
        assert pools.session_settings("main") == {"application_name": "pgmcp"}
        async with pools.acquire("main") as conn:
            assert conn._con._config.statement_cache_size == 0
            # Nothing is assumed about the session; the executor applies SET LOCAL per transaction.
            assert await conn.fetchval("SELECT current_setting('application_name')") == "pgmcp"
        assert "SET LOCAL ROLE" in pools.local_settings_sql("main")
    finally:
        await pools.close()


ROLE_CASES = [
    # (connect as, SET ROLE, expected warning fragments (empty: none))
    (None, None, ["is a superuser"]),
    (PLAIN, None, []),
    (PLAIN, READER, []),
    (FILES, None, ["is a member of pg_read_server_files"]),
]


@pytest.mark.parametrize(("user", "role", "expected"), ROLE_CASES,
                         ids=["superuser", "plain", "plain-set-role", "read-server-files"])  # stable across runs
async def test_role_warnings(
    pg_database: TestDatabase, roles: None, user: str | None, role: str | None, expected: list[str]
) -> None:
    pools = await opened(db(pg_database, user=user, role=role))
    try:
        status = pools.status("main")
        assert status.up
        assert len(status.role_warnings) == len(expected)
        for fragment, warning in zip(expected, status.role_warnings, strict=True):
            assert fragment in warning
        if role:
            assert status.current_role == role and status.login_role == user
    finally:
        await pools.close()


async def test_unsafe_role_refused_when_configured(pg_database: TestDatabase, roles: None) -> None:
    pools = await opened(db(pg_database, refuse_unsafe_role=True), db(pg_database, "plain", user=PLAIN,
                                                                       refuse_unsafe_role=True))
    try:
        status = pools.status("main")
        assert status.refused and not status.up
        assert "superuser" in (status.last_error or "")
        with pytest.raises(UnsafeRole):
            async with pools.acquire("main"):
                pass
        async with pools.acquire("plain") as conn:  # the safe one is unaffected
            assert await conn.fetchval("SELECT 1") == 1
    finally:
        await pools.close()


async def test_unknown_database_lists_valid_names(pg_database: TestDatabase, roles: None) -> None:
    pools = PoolSet([db(pg_database, "a"), db(pg_database, "b")], LIMITS)
    with pytest.raises(DatabaseNotFound, match="configured databases: a, b"):
        pools.status("c")


async def test_database_down_at_startup_comes_up_later(pg_database: TestDatabase, roles: None) -> None:
    """A database that is down at startup does not stop the others; it is retried until it is up."""
    late = TemporaryPostgres(port=free_port())
    try:
        late_cfg = DatabaseConfig(name="late", dsn=late.dsn(), pool=PoolConfig(min_size=1, max_size=1))
        pools = await opened(db(pg_database), late_cfg)
        try:
            assert pools.status("main").up
            down = pools.status("late")
            assert not down.up and "unavailable" in (down.last_error or "")
            with pytest.raises(DatabaseUnavailable, match="reconnects"):
                async with pools.acquire("late"):
                    pass
            async with pools.acquire("main") as conn:
                assert await conn.fetchval("SELECT 1") == 1
            await asyncio.to_thread(late.start)
            for _ in range(400):  # the background retry (backoff <= 30 s) brings it up
                if pools.status("late").up:
                    break
                await asyncio.sleep(0.1)
            async with pools.acquire("late") as conn:
                assert await conn.fetchval("SELECT current_setting('default_transaction_read_only')") == "on"
            assert pools.status("late").up
        finally:
            await pools.close()
    finally:
        await asyncio.to_thread(late.cleanup)


async def test_server_restart_reconnects(pg_database: TestDatabase, roles: None) -> None:
    pools = await opened(db(pg_database, pool=PoolConfig(min_size=2, max_size=2)))
    try:
        async with pools.acquire("main") as conn:
            before = await conn.fetchval("SELECT pg_backend_pid()")
        await asyncio.to_thread(pg_database.server.restart)
        for attempt in range(2):  # the first use after a restart may find its connection dead
            try:
                async with pools.acquire("main") as conn:
                    after = await conn.fetchval("SELECT pg_backend_pid()")
                break
            except Exception:
                if attempt:
                    raise
        assert after != before
        assert pools.status("main").up
    finally:
        await pools.close()


SCRUB_CASES = [
    ("connect to postgresql://u:hunter2@h/db failed", "connect to postgresql://u:***@h/db failed"),
    ("host=h password=hunter2 dbname=x", "host=h password=*** dbname=x"),
    ("the secret hunter2 leaked", "the secret *** leaked"),
]


@pytest.mark.parametrize(("text", "expected"), SCRUB_CASES)
def test_scrub(text: str, expected: str) -> None:
    from pgmcp.db.pgerrors import scrub

    assert scrub(text, ["hunter2"]) == expected


async def test_connection_errors_never_show_the_password(pg_database: TestDatabase, roles: None) -> None:
    from pgmcp.config.model import Secret

    missing = db(pg_database, "gone", dbname="no_such_db", password=Secret("hunter2x"))
    pools = await opened(missing)
    try:
        status = pools.status("gone")
        assert not status.up and "does not exist" in (status.last_error or "")
        assert "hunter2x" not in (status.last_error or "")
        with pytest.raises(DatabaseUnavailable) as caught:
            async with pools.acquire("gone"):
                pass
        assert "connection settings" in str(caught.value) and "hunter2x" not in str(caught.value)
    finally:
        await pools.close()
