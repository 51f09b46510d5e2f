"""SchemaCache over real introspection: misses, hits, shared loads, TTL, refresh-ahead, failures.

Time is a fake clock handed to the cache (and to cachetools), so nothing sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from loguru import logger

from pgmcp.demo.tempserver import free_port
from pgmcp.errors import DatabaseUnavailable
from pgmcp.schema.cache import SchemaCache
from pgmcp.schema.introspect import introspect_dsn
from pgmcp.schema.snapshot import SchemaSnapshot
from tests.conftest import TestDatabase, TestServer

TTL = 100.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingLoader:
    """Real introspection of one database per name, counting the loads."""

    def __init__(self, dsns: dict[str, str]) -> None:
        self.dsns = dsns
        self.calls: list[str] = []
        self.gate: asyncio.Event | None = None  # when set, loads wait for it

    async def __call__(self, database: str) -> SchemaSnapshot:
        self.calls.append(database)
        if self.gate is not None:
            await self.gate.wait()
        return await introspect_dsn(self.dsns[database], database, timeout=5)


@pytest.fixture(scope="module")
def db(pg_database: TestDatabase) -> TestDatabase:
    pg_database.run_sql("CREATE TABLE first (id integer PRIMARY KEY)")
    return pg_database


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def loader(db: TestDatabase) -> CountingLoader:
    return CountingLoader({"app": db.dsn, "down": f"postgresql://nobody@127.0.0.1:{free_port()}/x"})


@pytest.fixture
async def cache(loader: CountingLoader, clock: Clock) -> AsyncIterator[SchemaCache]:
    cache = SchemaCache(loader, ttl=TTL, refresh_ahead=0.8, timer=clock, retry_after=10.0)
    yield cache
    await cache.close()


@pytest.fixture
def warnings_logged() -> Iterator[list[str]]:
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(str(m)), level="WARNING", format="{message}")
    yield messages
    logger.remove(sink)


def names(snapshot: SchemaSnapshot) -> set[str]:
    return {r.name for r in snapshot.relations}


async def test_miss_introspects_then_hits(cache: SchemaCache, loader: CountingLoader, clock: Clock) -> None:
    assert cache.status("app").loaded is False and cache.age("app") is None
    first = await cache.get("app")
    assert names(first) == {"first"} and first.database == "app"
    clock.now += 30
    assert await cache.get("app") is first
    assert loader.calls == ["app"]
    status = cache.status("app")
    assert (status.loaded, status.age, status.refreshing, status.last_error) == (True, 30.0, False, None)
    assert cache.databases() == ("app",)


async def test_concurrent_misses_share_one_introspection(cache: SchemaCache, loader: CountingLoader) -> None:
    snapshots = await asyncio.gather(*(cache.get("app") for _ in range(20)))
    assert loader.calls == ["app"]
    assert all(s is snapshots[0] for s in snapshots)


async def test_expired_entry_is_introspected_again(
    cache: SchemaCache, loader: CountingLoader, clock: Clock
) -> None:
    first = await cache.get("app")
    clock.now += TTL + 1
    second = await cache.get("app")
    assert second is not first and loader.calls == ["app", "app"]
    assert cache.age("app") == 0


async def test_refresh_ahead_serves_current_snapshot_while_refreshing(
    cache: SchemaCache, loader: CountingLoader, clock: Clock, db: TestDatabase
) -> None:
    first = await cache.get("app")
    clock.now += 0.5 * TTL
    assert await cache.get("app") is first and not cache.status("app").refreshing
    db.run_sql("CREATE TABLE ahead (id integer)")
    try:
        clock.now += 0.35 * TTL  # past 0.8 * TTL, before expiry
        loader.gate = asyncio.Event()
        assert await cache.get("app") is first  # answered at once, refresh in the background
        assert cache.status("app").refreshing
        assert await cache.get("app") is first  # one refresh at a time
        loader.gate.set()
        await cache.wait_idle()
        assert loader.calls == ["app", "app"]
        refreshed = await cache.get("app")
        assert "ahead" in names(refreshed) and cache.age("app") == 0
    finally:
        db.run_sql("DROP TABLE ahead")


async def test_refresh_on_demand_sees_new_tables(cache: SchemaCache, db: TestDatabase) -> None:
    assert "later" not in names(await cache.get("app"))
    db.run_sql("CREATE TABLE later (id integer)")
    try:
        assert "later" in names(await cache.refresh("app"))
        assert "later" in names(await cache.get("app"))
    finally:
        db.run_sql("DROP TABLE later")


async def test_failed_refresh_keeps_previous_snapshot_and_says_so(
    cache: SchemaCache, loader: CountingLoader, clock: Clock, pg_server: TestServer,
    warnings_logged: list[str],
) -> None:
    first = await cache.get("app")
    pg_server.stop()
    try:
        clock.now += 0.9 * TTL
        assert await cache.get("app") is first  # background refresh starts and fails
        await cache.wait_idle()
        status = cache.status("app")
        assert status.loaded and not status.refreshing
        assert status.last_error is not None and "DatabaseUnavailable" in status.last_error
        assert status.age == 0.9 * TTL and status.last_error_age == 0
        assert any("still serving the snapshot" in m for m in warnings_logged)
        # Past the TTL the old snapshot is still served, without waiting on the dead server.
        clock.now += TTL
        assert await cache.get("app") is first
        await cache.wait_idle()
        with pytest.raises(DatabaseUnavailable):
            await cache.refresh("app")
        assert await cache.get("app") is first
        calls_while_down = len(loader.calls)
        assert await cache.get("app") is first  # within retry_after: no new attempt
        assert len(loader.calls) == calls_while_down
    finally:
        pg_server.start()
    clock.now += 10.0  # retry_after
    assert await cache.get("app") is first
    await cache.wait_idle()
    status = cache.status("app")
    assert status.last_error is None and status.age == 0
    assert await cache.get("app") is not first


async def test_never_loaded_database_raises_and_records(
    cache: SchemaCache, warnings_logged: list[str]
) -> None:
    with pytest.raises(DatabaseUnavailable):
        await cache.get("down")
    status = cache.status("down")
    assert not status.loaded and status.age is None and not status.refreshing
    assert status.last_error is not None and "cannot connect" in status.last_error
    assert any("introspection of down failed" in m for m in warnings_logged)


async def test_close_cancels_background_refresh(
    loader: CountingLoader, clock: Clock
) -> None:
    cache = SchemaCache(loader, ttl=TTL, timer=clock)
    await cache.get("app")
    clock.now += 0.85 * TTL
    loader.gate = asyncio.Event()  # the refresh hangs until cancelled
    await cache.get("app")
    assert cache.status("app").refreshing
    await cache.close()
    assert not cache.status("app").refreshing
    with pytest.raises(RuntimeError):
        await cache.refresh("app")


def test_bad_settings_are_refused(loader: CountingLoader) -> None:
    with pytest.raises(ValueError):
        SchemaCache(loader, ttl=0)
    with pytest.raises(ValueError):
        SchemaCache(loader, ttl=10, refresh_ahead=1.5)
