"""Open a cursor on a prepared statement with its first rows in one round trip.

asyncpg's public `await stmt.cursor()` sends Bind and waits, then each `fetch(n)` sends
Execute and waits: two round trips before the first row. The extended protocol lets Bind and
Execute travel in one message (PostgreSQL, src/backend/tcop/postgres.c: the messages are read
in order until Sync), which is what asyncpg's own iterating cursor does for its first batch
(`BaseCursor._bind_exec`). `open_cursor` does the same on a `Cursor`, so the first batch
costs one round trip and later batches are fetched as before with `cursor.fetch(n)`.

That uses asyncpg's cursor internals (stable since asyncpg 0.18); where they are missing,
it falls back to the public two-step path, so a future asyncpg costs a round trip, never
correctness. tests/test_executor.py checks which path runs.
"""

from __future__ import annotations

from typing import Any

from asyncpg.cursor import Cursor


def _internals(stmt: Any) -> tuple[Any, str, Any] | None:
    """(connection, query, statement state) of an asyncpg PreparedStatement, if it has them."""
    try:
        found = stmt._connection, stmt._query, stmt._state
    except AttributeError:
        return None
    if not hasattr(Cursor, "_bind_exec") or not hasattr(found[2], "record_class"):
        return None
    return found


async def open_cursor(stmt: Any, first: int, timeout: float | None = None) -> tuple[Any, list[Any]]:
    """A cursor on `stmt` (inside a transaction) and its first `first` rows. `cursor.fetch(n)`
    reads on; it returns [] once the portal is exhausted."""
    found = _internals(stmt)
    if found is None:
        cursor = await stmt.cursor()
        return cursor, await cursor.fetch(first)
    connection, query, state = found
    cursor = Cursor(connection, query, state, (), state.record_class)
    records = await cursor._bind_exec(first, timeout)
    return cursor, list(records)


def one_round_trip() -> bool:
    """Whether `open_cursor` binds and executes in one round trip with this asyncpg."""
    return hasattr(Cursor, "_bind_exec")
