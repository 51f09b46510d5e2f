"""Policy-checked, read-only execution: `Executor.execute(database, sql) -> QueryResult`.

The SQL is checked first (a refusal raises PolicyDenied carrying the verdict; nothing runs).
What runs is exactly `verdict.executable_sql`, through the extended protocol only (Parse
rejects multi-statement text), inside `BEGIN READ ONLY` with the hardening re-applied by
`SET LOCAL`. Rows are read through a cursor in batches, so no more than `max_rows + 1` rows
ever leave the server, and reading stops as soon as the JSON size passes `max_result_bytes`.
The transaction is always rolled back, which also undoes any session-level `set_config` the
statement may have made.

Round trips per statement: `BEGIN READ ONLY` and the `SET LOCAL`s are one simple-protocol
execute of pgmcp's own text (never the user's SQL); then Parse/Describe of the unnamed
statement, Bind, one Execute per batch, `ROLLBACK`, and the pool's reset on release.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pgmcp.config.model import LimitsConfig
from pgmcp.db.concurrency import Limiter
from pgmcp.db.pgerrors import is_connection_lost, translate
from pgmcp.db.pools import PoolSet
from pgmcp.db.result import Column, QueryResult
from pgmcp.db.serialize import JsonValue, SerializeOptions, row_to_json
from pgmcp.errors import DatabaseNotFound, PolicyDenied
from pgmcp.policy.verdict import Verdict

Checker = Callable[[str], Verdict]
CLIENT_GRACE = 2.0  # seconds past statement_timeout before the client gives up on the server
FIRST_BATCH = 10  # rows in the first cursor fetch; later batches are sized from the bytes left
MAX_BATCH = 5000
# Result size is measured as compact ASCII JSON: C-accelerated, and never less than the UTF-8
# size of the same JSON written with ensure_ascii=False, so the cap errs on the safe side.
_ENCODER = json.JSONEncoder(separators=(",", ":"))


@dataclass
class _Rows:
    rows: list[list[JsonValue]]
    fetched: int = 0
    truncated_reason: str | None = None


class Executor:
    """Checks and runs SQL against the databases of a PoolSet (see the module docstring).

    `checkers` maps each database to its policy check; `timeouts` optionally gives a
    per-database statement timeout in seconds (the policy's); `max_rows` a per-database row
    cap (the policy's). Where the policy and the config both set a timeout or cap, the
    smaller wins.
    """

    def __init__(
        self,
        pools: PoolSet,
        checkers: Mapping[str, Checker],
        limits: LimitsConfig,
        timeouts: Mapping[str, float] | None = None,
        *,
        max_rows: Mapping[str, int] | None = None,
    ) -> None:
        self._pools = pools
        self._checkers = dict(checkers)
        self._limits = limits
        self._timeouts = dict(timeouts or {})
        self._max_rows = dict(max_rows or {})
        self._options = SerializeOptions.from_limits(limits)
        self._limiter = Limiter.for_queries(limits)  # every query, from every tool and database

    def statement_timeout(self, database: str) -> float:
        configured = self._pools.statement_timeout(database)
        policy = self._timeouts.get(database)
        return min(configured, policy) if policy else configured

    def row_cap(self, database: str) -> int:
        policy = self._max_rows.get(database)
        return min(self._limits.max_rows, policy) if policy else self._limits.max_rows

    def check(self, database: str, sql: str) -> Verdict:
        """The verdict of `database`'s policy on `sql` (DatabaseNotFound for unknown names)."""
        if database not in self._pools.names() or database not in self._checkers:
            valid = ", ".join(n for n in self._pools.names() if n in self._checkers) or "(none)"
            raise DatabaseNotFound(
                f"unknown database '{database}'; configured databases: {valid}", hint=f"use one of: {valid}"
            )
        return self._checkers[database](sql)

    async def execute(self, database: str, sql: str) -> QueryResult:
        """Check `sql`, then run exactly the checked text read-only; see the module docstring."""
        verdict = self.check(database, sql)
        if not verdict.allowed:
            raise PolicyDenied(
                f"refused by policy: {verdict.reason()}", hint="change the query as the violations say",
                verdict=verdict,
            )
        text = verdict.executable_sql
        timeout = self.statement_timeout(database)
        ctx = self._pools.error_context(database, text, timeout)
        async with self._limiter.slot():
            started = time.perf_counter()
            for attempt in (1, 2):
                try:
                    async with self._pools.acquire(database) as conn:
                        columns, got = await self._run(conn, database, text, timeout)
                    break
                except Exception as exc:
                    # A read-only statement is safe to run again when the connection (not the
                    # query) failed, e.g. the server restarted since the connection was opened.
                    if attempt == 1 and is_connection_lost(exc):
                        continue
                    raise translate(exc, ctx) from exc
        if got.truncated_reason is None:
            got.truncated_reason = self._policy_cap_reached(database, verdict, len(got.rows))
        truncated = got.truncated_reason is not None
        return QueryResult(
            database=database, sql=text, columns=columns, rows=got.rows, row_count=len(got.rows),
            truncated=truncated, truncated_reason=got.truncated_reason, verdict=verdict,
            elapsed_ms=(time.perf_counter() - started) * 1000, rows_fetched=got.fetched,
        )

    def _policy_cap_reached(self, database: str, verdict: Verdict, rows: int) -> str | None:
        """Say so when the policy's own LIMIT rewrite (PGM501) may have cut the result."""
        cap = verdict.row_cap
        if cap is not None and rows >= cap:
            return f"the policy's row cap (LIMIT {cap}) was reached; there may be more rows"
        return None

    async def _run(
        self, conn: Any, database: str, sql: str, timeout: float
    ) -> tuple[tuple[Column, ...], _Rows]:
        try:
            async with asyncio.timeout(timeout + CLIENT_GRACE):
                await conn.execute("BEGIN READ ONLY;\n" + self._pools.local_settings_sql(database, timeout))
                # The unnamed statement (name ""): a named one (asyncpg's default) is closed on the
                # server when garbage-collected, which costs the next execution a round trip.
                stmt = await conn.prepare(sql, name="")
                attrs = stmt.get_attributes()
                columns = tuple(Column(a.name, a.type.name) for a in attrs)
                cursor = await stmt.cursor()
                got = await self._fetch(cursor, tuple(c.type for c in columns), self.row_cap(database))
        except BaseException as exc:
            server_side = isinstance(exc, Exception) and not isinstance(exc, TimeoutError)
            if server_side and not is_connection_lost(exc):
                await conn.execute("ROLLBACK")  # the server reported an error; the connection is fine
            else:
                conn.terminate()  # cancelled, timed out or broken: do not reuse this connection
            raise
        await conn.execute("ROLLBACK")
        return columns, got

    async def _fetch(self, cursor: Any, types: tuple[str, ...], max_rows: int) -> _Rows:
        max_bytes = self._limits.max_result_bytes
        out = _Rows(rows=[])
        size = 2  # "[]"
        batch = min(FIRST_BATCH, max_rows + 1)
        while True:
            records = await cursor.fetch(batch)
            out.fetched += len(records)
            for record in records:
                if len(out.rows) >= max_rows:
                    out.truncated_reason = f"more than max_rows ({max_rows}) rows; only those are shown"
                    return out
                row = row_to_json(record, self._options, types)
                row_size = len(_ENCODER.encode(row)) + 1
                if size + row_size > max_bytes:
                    out.truncated_reason = (
                        f"result larger than max_result_bytes ({max_bytes}); "
                        f"the first {len(out.rows)} rows are shown"
                    )
                    return out
                out.rows.append(row)
                size += row_size
            if len(records) < batch:
                return out
            left = max_rows + 1 - out.fetched
            per_row = max(1, (size - 2) // max(1, len(out.rows)))
            batch = max(1, min(left, MAX_BATCH, (max_bytes - size) // per_row + 1))
