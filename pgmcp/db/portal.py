"""Prepare statements and open cursors with as few round trips as asyncpg allows.

Two things asyncpg's public API costs that pgmcp does not need to pay:

- `await stmt.cursor()` sends Bind and waits, then each `fetch(n)` sends Execute and waits: two
  round trips before the first row. The extended protocol lets Bind and Execute travel in one
  message (PostgreSQL, src/backend/tcop/postgres.c reads the messages in order until Sync),
  which is what asyncpg's own iterating cursor does for its first batch
  (`BaseCursor._bind_exec`). `open_cursor` does the same on a `Cursor`.
- `conn.prepare()` parses the statement every time. pgmcp's capped form of a statement
  (`pgmcp.db.valuecap`) is written from the columns the statement has right now, so the same
  text always means the same thing; `prepare(..., cached=True)` takes it from the connection's
  statement cache (asyncpg's, `statement_cache_size`), and a repeated call skips Parse.
  PostgreSQL re-plans a cached statement whenever what it depends on changed (tables, search_path,
  role: src/backend/utils/cache/plancache.c, RevalidateCachedQuery) and refuses to run one whose
  result columns changed (`InvalidCachedStatementError`): `forget` drops the connection's cache,
  and the executor runs the call once more.

Both use asyncpg internals (stable since asyncpg 0.18); where they are missing, the public
path runs instead: a future asyncpg costs round trips, never correctness.
"""

from __future__ import annotations

from typing import Any

from asyncpg.cursor import Cursor
from asyncpg.exceptions import InvalidCachedStatementError

__all__ = ["Statement", "forget", "is_stale_statement", "prepare"]


class Statement:
    """A prepared statement: its columns (`attributes()`, asyncpg's Attribute values) and a cursor
    on it (`open_cursor`)."""

    def __init__(self, conn: Any, query: str, state: Any = None, public: Any = None) -> None:
        self._conn, self._query, self._state, self._public = conn, query, state, public

    def attributes(self) -> Any:
        if self._public is not None:
            return self._public.get_attributes()
        return self._state._get_attributes()

    async def open_cursor(self, first: int) -> tuple[Any, list[Any]]:
        """A cursor on the statement (inside a transaction) and its first `first` rows, Bind and
        Execute in one round trip. `cursor.fetch(n)` reads on; it returns [] once exhausted."""
        if self._public is not None:
            found = _internals(self._public)
            if found is None:
                cursor = await self._public.cursor()
                return cursor, await cursor.fetch(first)
            connection, query, state = found
        else:
            connection, query, state = self._conn, self._query, self._state
        cursor = Cursor(connection, query, state, (), state.record_class)
        return cursor, list(await cursor._bind_exec(first, None))


def _internals(stmt: Any) -> tuple[Any, str, Any] | None:
    """(raw connection, query, statement state) of an asyncpg PreparedStatement, if it has them."""
    try:
        found = stmt._connection, stmt._query, stmt._state
    except AttributeError:
        return None
    if not hasattr(Cursor, "_bind_exec") or not hasattr(found[2], "record_class"):
        return None
    return found


async def prepare(conn: Any, sql: str, *, cached: bool = False) -> Statement:
    """`sql` prepared on `conn`: the unnamed statement (parsed now, replaced by the next one), or
    with `cached` a named one from the connection's statement cache (parsed once per connection)."""
    raw = getattr(conn, "_con", conn)  # the pool's proxy holds the connection
    get = getattr(raw, "_get_statement", None)
    if cached and get is not None and hasattr(Cursor, "_bind_exec"):
        try:
            state = await get(sql, None, named=True)
        except TypeError:  # another signature: the public path
            pass
        else:
            return Statement(raw, sql, state=state)
    # The unnamed statement (name ""): a named one (asyncpg's default) is closed on the server
    # when garbage-collected, which costs the next execution a round trip.
    return Statement(conn, sql, public=await conn.prepare(sql, name=""))


def forget(conn: Any) -> None:
    """Drop `conn`'s statement cache (after `InvalidCachedStatementError`)."""
    drop = getattr(getattr(conn, "_con", conn), "_drop_local_statement_cache", None)
    if drop is not None:
        drop()


def is_stale_statement(exc: BaseException) -> bool:
    """A cached statement whose result columns changed under it (the call can be run again)."""
    return isinstance(exc, InvalidCachedStatementError)
