"""Policy-checked, read-only execution: `Executor.execute(database, sql) -> QueryResult`.

Each call has one deadline (the statement timeout) covering the check, the execution and the
encoding; past it the call fails with `QueryTimeout` and its work is abandoned
(`pgmcp.db.offload`). The SQL is checked first: a small statement on the event loop, a
large one in a checker process (a refusal raises PolicyDenied carrying the verdict; nothing
runs). What runs is exactly `verdict.executable_sql`, through the extended protocol only (Parse
rejects multi-statement text), inside `BEGIN READ ONLY` with the hardening re-applied by `SET
LOCAL`; a SELECT is wrapped by pgmcp's own value-size cap (`pgmcp.db.valuecap`). Rows are read
through a cursor in batches, so no more than `max_rows + 1` rows ever leave the server, and
reading stops once their size (as PostgreSQL measures it) passes twice `max_result_bytes`. Then
the transaction is rolled back (which also undoes any session-level `set_config` the statement
made), and the rows are encoded (a small result inline, a larger one in a thread), where the
exact JSON size cut is made (`pgmcp.db.encode`): pgmcp's own work never keeps a transaction
open.

Round trips per statement: `BEGIN READ ONLY` and the `SET LOCAL`s are one simple-protocol
execute of pgmcp's own text (never the user's SQL); then Parse/Describe of the statement (its
columns, always as they are now); the capped form is kept on the connection, so it is parsed
only the first time (`pgmcp.db.portal`); Bind with the first Execute, one Execute per further
batch. `ROLLBACK` and the pool's reset travel as one message after the answer is on its way
(`PoolSet.acquire(..., end_transaction=True)`): the connection goes back to the pool, reset,
before anyone else can take it, but the caller does not wait for that. A repeated one-row
query: three round trips before the answer, one after.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pgmcp.config.model import LimitsConfig
from pgmcp.db.concurrency import Limiter
from pgmcp.db.encode import encode_batches
from pgmcp.db.offload import (
    INLINE_CHECK_BYTES,
    INLINE_ENCODE_BYTES,
    CheckWorkers,
    Deadline,
    Encoders,
    InlineBudget,
)
from pgmcp.db.pgerrors import is_connection_lost, translate
from pgmcp.db.pools import PoolSet
from pgmcp.db.portal import forget, is_stale_statement, prepare
from pgmcp.db.result import Column, QueryResult, RowsJson
from pgmcp.db.serialize import RowEncoder, SerializeOptions, type_key
from pgmcp.db.valuecap import AS_TEXT, NUMERIC_TYPES, CappedQuery, approx_size, split_batch, wrap
from pgmcp.db.verdicts import VerdictCache
from pgmcp.errors import DatabaseNotFound, PolicyDenied
from pgmcp.policy.checker import check
from pgmcp.policy.compiler import CompiledPolicy
from pgmcp.policy.verdict import Verdict
from pgmcp.schema.snapshot import SchemaSnapshot

_T = TypeVar("_T")
Checker = Callable[[str], Verdict]
VerdictHook = Callable[[str, str, Verdict, float], None]  # database, sql, verdict, milliseconds
CLIENT_GRACE = 2.0  # seconds past the deadline before the client gives up on the server
FIRST_BATCH = 10  # rows in the first cursor fetch; later batches are sized from the bytes left
MAX_BATCH = 5000
READ_FACTOR = 2  # reading stops at this many times max_result_bytes (PostgreSQL's sizes)


VerdictFollowUp = Callable[[Verdict], None]  # run on the verdict in the caller; may raise


@dataclass(frozen=True)
class PolicyCheck:
    """A database's policy check that can run in a checker process. `policy()` gives the policy
    in force for the current call (it may depend on who calls) and an optional follow-up run
    on its verdict; `snapshot()` the current schema snapshot. Calling it checks in this process
    (tests, the CLI)."""

    policy: Callable[[], tuple[CompiledPolicy, VerdictFollowUp | None]]
    snapshot: Callable[[], SchemaSnapshot | None] = lambda: None

    @classmethod
    def fixed(cls, policy: CompiledPolicy, snapshot: SchemaSnapshot | None = None) -> PolicyCheck:
        return cls(lambda: (policy, None), lambda: snapshot)

    def __call__(self, sql: str) -> Verdict:
        policy, follow_up = self.policy()
        verdict = check(sql, policy, self.snapshot())
        if follow_up is not None:
            follow_up(verdict)
        return verdict


@dataclass
class _Fetched:
    columns: tuple[Column, ...]
    batches: list[list[Sequence[Any]]] = field(default_factory=list)  # the user's values, as fetched
    rows: int = 0  # rows kept in `batches`
    fetched: int = 0
    truncated_reason: str | None = None
    omitted: dict[str, None] = field(default_factory=dict)  # columns with values left out, in order
    types: tuple[str, ...] = ()  # the encoder's names of the column types (serialize.type_key)
    size: int = 0  # the rows' size as PostgreSQL measures it (valuecap.approx_size)


class Executor:
    """Checks and runs SQL against the databases of a PoolSet (see the module docstring).

    `checkers` maps each database to its policy check (a `PolicyCheck` runs in a checker
    process, any other callable in a thread); `timeouts` optionally gives a per-database
    statement timeout in seconds (the policy's); `max_rows` a per-database row cap (the
    policy's). Where the policy and the config both set a timeout or cap, the smaller wins.
    `on_verdict` is told of every verdict (the audit log and metrics).
    """

    def __init__(
        self,
        pools: PoolSet,
        checkers: Mapping[str, Checker],
        limits: LimitsConfig,
        timeouts: Mapping[str, float] | None = None,
        *,
        max_rows: Mapping[str, int] | None = None,
        on_verdict: VerdictHook | None = None,
    ) -> None:
        self._pools = pools
        self._checkers = dict(checkers)
        self._limits = limits
        self._timeouts = dict(timeouts or {})
        self._max_rows = dict(max_rows or {})
        self._on_verdict = on_verdict
        self._options = SerializeOptions.from_limits(limits)
        self._limiter = Limiter.for_queries(limits)  # every query, from every tool and database
        self._workers = CheckWorkers(limits.max_concurrent_queries)
        self._encoders = Encoders(limits.max_concurrent_queries)
        self._inline = InlineBudget()
        self._verdicts = VerdictCache()  # recent verdicts of small statements (pgmcp.db.verdicts)
        # Types read as PostgreSQL's text in the capped form (valuecap.AS_TEXT): numeric only
        # while it is sent as a string.
        self._as_text = frozenset(AS_TEXT) - (NUMERIC_TYPES if limits.decimal_as_float else frozenset())

    async def start(self) -> None:
        """Nothing to start ahead: checker processes start on the first statement too large to
        be checked inline (`pgmcp.db.offload`), so they cost nothing at startup."""

    @property
    def checker_processes(self) -> int:
        """Policy-checker processes started so far and still running (none until a statement
        too large to be checked inline comes)."""
        return self._workers.processes

    async def close(self) -> None:
        await self._workers.close()
        self._encoders.close()

    def statement_timeout(self, database: str) -> float:
        configured = self._pools.statement_timeout(database)
        policy = self._timeouts.get(database)
        return min(configured, policy) if policy else configured

    def row_cap(self, database: str) -> int:
        policy = self._max_rows.get(database)
        return min(self._limits.max_rows, policy) if policy else self._limits.max_rows

    async def check(self, database: str, sql: str, deadline: Deadline | None = None) -> Verdict:
        """The verdict of `database`'s policy on `sql` within `deadline` (default: the statement
        timeout): a small statement on the event loop, remembered for the same policy and
        snapshot (`pgmcp.db.verdicts`), a large one in a checker process. DatabaseNotFound for
        unknown names."""
        if database not in self._pools.names() or database not in self._checkers:
            valid = ", ".join(n for n in self._pools.names() if n in self._checkers) or "(none)"
            raise DatabaseNotFound(
                f"unknown database '{database}'; configured databases: {valid}", hint=f"use one of: {valid}"
            )
        deadline = deadline or Deadline(self.statement_timeout(database))
        checker = self._checkers[database]
        started = time.perf_counter()
        follow_up: VerdictFollowUp | None = None
        if isinstance(checker, PolicyCheck):
            policy, follow_up = checker.policy()
            snapshot = checker.snapshot()
            cached = self._verdicts.get(database, policy, snapshot, sql)
            if cached is not None:
                verdict = cached
            elif self._check_inline(sql, policy):
                verdict = self._timed(lambda: check(sql, policy, snapshot))
                if len(sql) <= INLINE_CHECK_BYTES:
                    self._verdicts.put(database, policy, snapshot, sql, verdict)
            else:
                verdict = await self._workers.check(database, policy, snapshot, sql, deadline)
        else:
            verdict = await self._encoders.run(
                lambda: checker(sql), deadline, "checking the SQL against the policy"
            )
        if self._on_verdict is not None:
            self._on_verdict(database, sql, verdict, (time.perf_counter() - started) * 1000)
        if follow_up is not None:
            follow_up(verdict)
        return verdict

    def _check_inline(self, sql: str, policy: CompiledPolicy) -> bool:
        """Small statements, and those refused by their length before parsing, are checked on the
        event loop while its inline budget lasts (`pgmcp.db.offload`)."""
        if len(sql) > INLINE_CHECK_BYTES:  # characters: never more than the UTF-8 bytes
            return len(sql) > policy.spec.max_sql_bytes
        return len(sql.encode("utf-8")) <= INLINE_CHECK_BYTES and self._inline.allows()

    def _timed(self, work: Callable[[], _T]) -> _T:
        started = time.perf_counter()
        try:
            return work()
        finally:
            self._inline.spent(time.perf_counter() - started)

    async def execute(self, database: str, sql: str) -> QueryResult:
        """Check `sql`, then run exactly the checked text read-only; see the module docstring."""
        deadline = Deadline(self.statement_timeout(database)) if database in self._checkers else None
        verdict = await self.check(database, sql, deadline)
        assert deadline is not None  # check() raised DatabaseNotFound otherwise
        if not verdict.allowed:
            raise PolicyDenied(
                f"refused by policy: {verdict.reason()}", hint="change the query as the violations say",
                verdict=verdict,
            )
        text = verdict.executable_sql
        ctx = self._pools.error_context(database, text, deadline.seconds)
        async with contextlib.AsyncExitStack() as stack:
            try:
                async with asyncio.timeout(max(0.0, deadline.left())):
                    await stack.enter_async_context(self._limiter.slot())
            except TimeoutError:
                raise deadline.expired("waiting for a free query slot") from None
            started = time.perf_counter()
            for attempt in (1, 2):
                try:
                    # The transaction ends (ROLLBACK, with the pool's reset) as the connection goes
                    # back, without the call waiting for it; see PoolSet.acquire.
                    async with self._pools.acquire(database, end_transaction=True) as conn:
                        got = await self._run(conn, database, text, verdict, deadline)
                    break
                except Exception as exc:
                    # A read-only statement is safe to run again when the connection (not the
                    # query) failed, e.g. the server restarted since the connection was opened,
                    # or when a cached statement went stale under a schema change (portal.py).
                    if attempt == 1 and (is_connection_lost(exc) or is_stale_statement(exc)):
                        continue
                    raise translate(exc, ctx) from exc
            if got.size <= INLINE_ENCODE_BYTES and self._inline.allows():
                rows_json, count, reason = self._timed(lambda: self._encode(got))
            else:
                rows_json, count, reason = await self._encoders.run(
                    lambda: self._encode(got), deadline, "encoding the result"
                )
        if reason is None:
            reason = self._policy_cap_reached(database, verdict, count)
        return QueryResult(
            database=database, sql=text, columns=got.columns, rows_json=rows_json, row_count=count,
            truncated=reason is not None, truncated_reason=reason, verdict=verdict,
            elapsed_ms=(time.perf_counter() - started) * 1000, rows_fetched=got.fetched,
        )

    def _policy_cap_reached(self, database: str, verdict: Verdict, rows: int) -> str | None:
        """Say so when the policy's own LIMIT rewrite (PGM501) may have cut the result."""
        cap = verdict.row_cap
        if cap is not None and rows >= cap:
            return f"the policy's row cap (LIMIT {cap}) was reached; there may be more rows"
        return None

    async def _run(self, conn: Any, database: str, sql: str, verdict: Verdict, deadline: Deadline) -> _Fetched:
        """Fetch the rows inside `BEGIN READ ONLY`; the transaction is left open for the pool to
        end (`PoolSet.acquire(..., end_transaction=True)`), except after an error."""
        left = deadline.left()
        if left <= 0:
            raise deadline.expired("waiting for a database connection")
        # The server's own timeout is what is left of the call's deadline, in whole 100 ms.
        server_timeout = min(deadline.seconds, math.ceil(left * 10) / 10)
        try:
            async with asyncio.timeout(left + CLIENT_GRACE):
                await conn.execute("BEGIN READ ONLY;\n" + self._pools.local_settings_sql(database, server_timeout))
                # The statement's columns as they are now: always described afresh (its capped
                # form below is written from them).
                stmt = await prepare(conn, sql)
                attrs = stmt.attributes()
                columns = tuple(Column(a.name, a.type.name) for a in attrs)
                capped = None
                if verdict.statement_kind != "explain":
                    capped = wrap(sql, [a.type.oid for a in attrs], self._limits.max_value_bytes, self._as_text)
                if capped is not None:
                    # The same text means the same statement: kept on the connection (portal.py).
                    stmt = await prepare(conn, capped.sql, cached=not self._pools.config(database).pgbouncer)
                max_rows = self.row_cap(database)
                cursor, records = await stmt.open_cursor(min(FIRST_BATCH, max_rows + 1))
                types = tuple(type_key(a.type) for a in attrs)
                return await self._fetch(cursor, records, _Fetched(columns, types=types), capped, max_rows)
        except BaseException as exc:
            server_side = isinstance(exc, Exception) and not isinstance(exc, TimeoutError)
            if server_side and not is_connection_lost(exc):
                await conn.execute("ROLLBACK")  # the server reported an error; the connection is fine
                if is_stale_statement(exc):
                    forget(conn)  # a cached capped statement whose columns changed: run again
            else:
                # Cancelled, timed out or broken: do not reuse this connection. A concurrent call
                # that found the server gone may have terminated the whole pool already, and then
                # this proxy refuses (InterfaceError); the original error is what the caller needs.
                with contextlib.suppress(Exception):
                    conn.terminate()
            raise

    async def _fetch(
        self, cursor: Any, records: list[Any], out: _Fetched, capped: CappedQuery | None, max_rows: int
    ) -> _Fetched:
        """Read at most `max_rows + 1` rows, stopping once their size passes READ_FACTOR times
        max_result_bytes; values over max_value_bytes stay in PostgreSQL (markers here)."""
        budget = READ_FACTOR * self._limits.max_result_bytes
        names = [c.name for c in out.columns]
        batch = min(FIRST_BATCH, max_rows + 1)
        while True:
            out.fetched += len(records)
            room = max_rows - out.rows
            over_rows = len(records) > room
            taken = records[:room] if over_rows else records
            if capped is None:
                values: list[Sequence[Any]] = list(map(tuple, taken))
                sizes = [approx_size(v) for v in values]
            else:
                values, sizes, omitted = split_batch(taken, capped, names)
                out.omitted.update(dict.fromkeys(omitted))
            total = sum(sizes)
            if out.size + total > budget:  # the byte budget runs out in this batch: find the row
                for index, size in enumerate(sizes):
                    out.size += size
                    if out.size > budget:
                        out.batches.append(values[:index + 1])
                        out.rows += index + 1
                        out.truncated_reason = self._bytes_reason(out.rows)
                        return out
            out.size += total
            out.batches.append(values)
            out.rows += len(values)
            if over_rows:
                out.truncated_reason = f"more than max_rows ({max_rows}) rows; only those are shown"
                return out
            if len(records) < batch:
                return out
            left = max_rows + 1 - out.fetched
            per_row = max(1, out.size // max(1, out.rows))
            batch = max(1, min(left, MAX_BATCH, (budget - out.size) // per_row + 1))
            records = await cursor.fetch(batch)

    def _bytes_reason(self, rows: int) -> str:
        return f"result larger than max_result_bytes ({self._limits.max_result_bytes}); the first {rows} rows are shown"

    def _encode(self, got: _Fetched) -> tuple[RowsJson, int, str | None]:
        """The rows' JSON, cut exactly at max_result_bytes (`pgmcp.db.encode`); runs after the
        transaction, inline or in a thread. Each batch's values are dropped once written."""
        encoder = RowEncoder(got.types, self._options)
        rows_json, count, cut = encode_batches(got.batches, encoder, self._limits.max_result_bytes)
        reason = self._bytes_reason(count) if cut else got.truncated_reason
        if got.omitted:
            shown = ", ".join(repr(c) for c in got.omitted)
            note = (
                f"values larger than max_value_bytes ({self._limits.max_value_bytes}) in column(s) {shown} "
                "were left out (each is shown as a marker)"
            )
            reason = f"{reason}; {note}" if reason else note
        return rows_json, count, reason
