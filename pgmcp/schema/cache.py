"""`SchemaCache`: one `SchemaSnapshot` per database in a cachetools TTL cache, kept fresh.

A miss introspects (through the injected `loader`) and concurrent misses for one database
share that single load. A hit older than `refresh_ahead * ttl` starts one background refresh
and keeps answering with the current snapshot, so an active database never waits on
introspection. When a load fails and an earlier snapshot exists, that snapshot stays in
service (put back in the cache), the error is recorded in `status()` and logged, and the
next refresh is tried in the background no sooner than `retry_after` seconds later. Only a
database that was never loaded makes `get` raise.

The clock is injectable (`timer`, handed to cachetools too) so tests advance time without
sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from cachetools import TTLCache
from loguru import logger

from pgmcp.schema.snapshot import SchemaSnapshot

Loader = Callable[[str], Awaitable[SchemaSnapshot]]


@dataclass(frozen=True)
class CacheStatus:
    """How fresh one database's snapshot is, for health checks and tool output."""

    database: str
    loaded: bool  # a snapshot is available
    age: float | None  # seconds since the snapshot in service was introspected
    refreshing: bool  # a load is in flight
    last_error: str | None  # the last load failure, cleared by the next success
    last_error_age: float | None  # seconds since that failure


@dataclass(frozen=True)
class _Entry:
    snapshot: SchemaSnapshot
    loaded_at: float  # timer() when the load finished


class SchemaCache:
    """Snapshots by database name, introspected on demand and refreshed before they expire."""

    def __init__(
        self,
        loader: Loader,
        ttl: float,
        refresh_ahead: float = 0.8,
        *,
        timer: Callable[[], float] = time.monotonic,
        retry_after: float | None = None,
        maxsize: int = 256,
    ) -> None:
        if ttl <= 0 or not 0 < refresh_ahead <= 1:
            raise ValueError("ttl must be > 0 and refresh_ahead in (0, 1]")
        self._loader = loader
        self._ttl = ttl
        self._refresh_at = refresh_ahead * ttl
        self._retry_after = retry_after if retry_after is not None else max(ttl - self._refresh_at, 1.0)
        self._timer = timer
        self._fresh: TTLCache[str, _Entry] = TTLCache(maxsize=maxsize, ttl=ttl, timer=timer)
        self._last: dict[str, _Entry] = {}  # last good entry, outliving the TTL
        self._errors: dict[str, tuple[str, float]] = {}
        self._loads: dict[str, asyncio.Task[SchemaSnapshot]] = {}
        self._closed = False

    async def get(self, database: str) -> SchemaSnapshot:
        """The snapshot of `database`: cached, or introspected now on a miss.

        Raises the loader's error only when no snapshot of `database` was ever loaded.
        """
        entry = self._fresh.get(database)
        if entry is not None:
            if self._due_for_refresh(database, entry):
                self._start_load(database)
            return entry.snapshot
        try:
            return await self._join(database)
        except Exception:
            previous = self._last.get(database)
            if previous is None:
                raise
            return previous.snapshot

    async def refresh(self, database: str) -> SchemaSnapshot:
        """Introspect `database` now (or join a load already in flight) and return the result.

        On failure the previous snapshot stays in service and the error is raised to the
        caller, who asked for fresh data and should know it did not get it.
        """
        return await self._join(database)

    def age(self, database: str) -> float | None:
        """Seconds since the snapshot in service was introspected; None if never loaded."""
        entry = self._last.get(database)
        return None if entry is None else self._timer() - entry.loaded_at

    def status(self, database: str) -> CacheStatus:
        error = self._errors.get(database)
        return CacheStatus(
            database=database,
            loaded=database in self._last,
            age=self.age(database),
            refreshing=database in self._loads,
            last_error=error[0] if error else None,
            last_error_age=self._timer() - error[1] if error else None,
        )

    def databases(self) -> tuple[str, ...]:
        """The databases with a snapshot in service."""
        return tuple(self._last)

    async def close(self) -> None:
        """Cancel every load in flight; the cache answers nothing afterwards."""
        self._closed = True
        tasks = list(self._loads.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self._loads.clear()

    async def wait_idle(self) -> None:
        """Wait until no load is in flight (background refreshes included)."""
        while self._loads:
            await asyncio.gather(*self._loads.values(), return_exceptions=True)

    # -- loading ---------------------------------------------------------------------------

    def _due_for_refresh(self, database: str, entry: _Entry) -> bool:
        if database in self._loads:
            return False
        now = self._timer()
        error = self._errors.get(database)
        if error is not None and now - error[1] < self._retry_after:
            return False
        return now - entry.loaded_at >= self._refresh_at

    async def _join(self, database: str) -> SchemaSnapshot:
        # shield: a caller that gives up must not cancel a load other callers share.
        return await asyncio.shield(self._start_load(database))

    def _start_load(self, database: str) -> asyncio.Task[SchemaSnapshot]:
        if self._closed:
            raise RuntimeError("the schema cache is closed")
        task = self._loads.get(database)
        if task is None:
            task = asyncio.create_task(self._load(database), name=f"pgmcp-schema-load:{database}")
            self._loads[database] = task
            # A background refresh nobody awaits must not log "exception never retrieved".
            task.add_done_callback(_consume_exception)
        return task

    async def _load(self, database: str) -> SchemaSnapshot:
        try:
            snapshot = await self._loader(database)
        except Exception as exc:
            now = self._timer()
            self._errors[database] = (f"{type(exc).__name__}: {exc}", now)
            previous = self._last.get(database)
            if previous is not None:
                # Keep serving it without blocking callers; refreshes retry after retry_after.
                self._fresh[database] = previous
                logger.warning(
                    "schema refresh of {} failed, still serving the snapshot from {:.0f} s ago: {}",
                    database, now - previous.loaded_at, exc,
                )
            else:
                logger.warning("schema introspection of {} failed: {}", database, exc)
            raise
        finally:
            self._loads.pop(database, None)
        entry = _Entry(snapshot, self._timer())
        self._fresh[database] = entry
        self._last[database] = entry
        self._errors.pop(database, None)
        return snapshot


def _consume_exception(task: asyncio.Task[SchemaSnapshot]) -> None:
    if not task.cancelled():
        task.exception()
