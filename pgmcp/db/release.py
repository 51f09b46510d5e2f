"""How a connection goes back to its pool: reset, and never before its transaction ended.

Plainly (`give_back`): asyncpg's pool rolls back an open transaction and runs the reset
callback (`reset_callback`: asyncpg's reset query, `RESET ALL` and the rest, then `SET ROLE`
again: `pgmcp.db.session.reset_sql`). Or, for a caller that is done with its rows and left its
read-only transaction open (`end_later`, the executor): `ROLLBACK` and the reset go as one
message in a background task, so the caller answers without waiting for them, and the release
that follows skips the pool's own reset (one round trip instead of three). Either way the
connection is back in the pool, reset, only once the message was answered; a connection whose
end fails is terminated, not reused. `wait` lets the pools close after the releases in flight.

Which connections were just reset is known by the identity of their settings object (the same
through the pool's proxy and in the reset callback; held here while the release runs, so the
id cannot be reused meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger

from pgmcp.config.model import DatabaseConfig
from pgmcp.db.session import reset_sql
from pgmcp.observe.metrics import DB_ACTIVE_CONNECTIONS

END_TIMEOUT = 10.0  # seconds for ROLLBACK and the reset; past it the connection is dropped


def _reset_query(conn: Any) -> str:
    return str(conn.get_reset_query() or "")


class Releases:
    """Connections on their way back to their pools (see the module docstring)."""

    def __init__(self) -> None:
        self._reset_done: dict[int, Any] = {}
        self._ending: set[asyncio.Task[None]] = set()

    def reset_callback(self, config: DatabaseConfig) -> Callable[[Any], Awaitable[None]]:
        """The pool's `reset=`: asyncpg has rolled back an open transaction already."""

        async def reset(conn: Any) -> None:
            if id(conn.get_settings()) in self._reset_done:
                return  # the message that ended the transaction reset the session too (_end)
            if sql := reset_sql(config, _reset_query(conn)):
                await conn.execute(sql)

        return reset

    async def give_back(self, name: str, pool: Any, conn: Any) -> None:
        DB_ACTIVE_CONNECTIONS.labels(database=name).dec()
        try:
            await pool.release(conn)
        except Exception as exc:  # the pool has terminated that connection already
            logger.debug("database {}: connection dropped on release: {}", name, exc)

    def end_later(self, config: DatabaseConfig, pool: Any, conn: Any) -> None:
        task = asyncio.get_running_loop().create_task(self._end(config, pool, conn))
        self._ending.add(task)
        task.add_done_callback(self._ending.discard)

    async def _end(self, config: DatabaseConfig, pool: Any, conn: Any) -> None:
        settings = conn.get_settings()
        try:
            async with asyncio.timeout(END_TIMEOUT):
                await conn.execute("ROLLBACK;\n" + reset_sql(config, _reset_query(conn)))
            self._reset_done[id(settings)] = settings
        except BaseException as exc:  # lost, or stuck: the connection is not reused
            logger.debug("database {}: ending a transaction failed ({}); dropping the connection",
                         config.name, exc)
            with contextlib.suppress(Exception):
                conn.terminate()
        try:
            await self.give_back(config.name, pool, conn)
        finally:
            self._reset_done.pop(id(settings), None)

    async def wait(self, timeout: float) -> None:
        """Let the releases in flight finish (at most `timeout` seconds)."""
        if self._ending:
            await asyncio.wait(set(self._ending), timeout=timeout)
