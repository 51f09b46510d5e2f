"""CPU-bound work off the event loop: policy checks in worker processes, encoding in threads.

The event loop serves every client, so nothing that can take long may run on it. Two kinds of
work can:

- the policy check: sqlglot parses and walks the statement, and a hostile statement (a 400 kB
  `IN` list) keeps it busy for seconds. Pure-Python work in a thread still holds the GIL for
  long stretches (measured: a 400 kB IN list held it for 1.5 s at a time), and a thread cannot
  be stopped. So checks run in worker processes (`CheckWorkers`); a check past its deadline has
  its process killed, which abandons the work and frees its memory at once, and a fresh
  process takes its place.
- encoding result rows to JSON-safe values: bounded by the caps enforced while reading
  (`max_rows`, `max_result_bytes`, `max_value_bytes`), so a thread is enough (`Encoders`).

The common case is small, and a process round trip (or a thread hop) costs more than the work
itself, so small work stays on the event loop (`InlineBudget`): a statement of at most
`INLINE_CHECK_BYTES` is checked inline (the checker is linear-time; its worst shapes measured
about 25 us per byte on a loaded 2-vCPU machine, so 4 KiB take about 0.1 s at worst, a tenth of
issue 13's 1 s liveness bound), as is one longer than the policy's `limits.max_sql_bytes`
(refused by its length, before parsing); results of at most `INLINE_ENCODE_BYTES` (as PostgreSQL
sizes them) are encoded inline. So that many small calls at once cannot add up to a stall, inline
work stops once it has taken `INLINE_BUDGET` seconds of the last `INLINE_WINDOW`; the work then
goes off the loop as any other. Checker processes start on the first statement that needs one.

Both pools are sized by `limits.max_concurrent_queries`. A worker keeps the policy and schema snapshot
of each database it has seen and is sent a new one only when it changed, so a check costs one
pipe round trip of the SQL text and the verdict.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import pickle
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from loguru import logger

from pgmcp.errors import QueryTimeout
from pgmcp.policy.compiler import CompiledPolicy
from pgmcp.policy.rules import PGM003, violation
from pgmcp.policy.verdict import Verdict
from pgmcp.schema.snapshot import SchemaSnapshot

T = TypeVar("T")
_PRELOAD = ["pgmcp.db.checkworker"]  # imported once in the fork server, shared by workers


INLINE_CHECK_BYTES = 4096  # statements up to this size are checked on the event loop
INLINE_ENCODE_BYTES = 64 * 1024  # results up to this size (PostgreSQL's sizes) are encoded on it
INLINE_BUDGET = 0.2  # seconds of inline work allowed per INLINE_WINDOW ...
INLINE_WINDOW = 1.0  # ... so that a burst of small calls cannot stall the loop either


class InlineBudget:
    """How much CPU-bound work the event loop took lately: a leaky bucket that drains at
    INLINE_BUDGET / INLINE_WINDOW seconds per second (see the module docstring)."""

    def __init__(
        self, budget: float = INLINE_BUDGET, window: float = INLINE_WINDOW, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._budget, self._rate, self._clock = budget, budget / window, clock
        self._level, self._at = 0.0, clock()

    def allows(self) -> bool:
        now = self._clock()
        self._level = max(0.0, self._level - (now - self._at) * self._rate)
        self._at = now
        return self._level < self._budget

    def spent(self, seconds: float) -> None:
        self._level += seconds


@dataclass
class Deadline:
    """One call's time limit: the check, the execution and the encoding all count against it."""

    seconds: float
    started: float = field(default_factory=time.monotonic)

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.started)

    def expired(self, what: str) -> QueryTimeout:
        return QueryTimeout(
            f"the call did not finish within its time limit ({self.seconds:g} s, the statement timeout) "
            f"while {what}; its work was abandoned",
            hint="make the query smaller or cheaper (fewer literals, filter earlier, ask for less data)",
        )


def _context() -> Any:
    """forkserver where the platform has it (fast, small workers), else spawn."""
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods and sys.platform.startswith("linux"):
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


class _Worker:
    """One checker process and the pipe to it; `known` says which objects it holds."""

    def __init__(self, ctx: Any) -> None:
        from pgmcp.db.checkworker import serve

        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=serve, args=(child,), daemon=True, name="pgmcp-check")
        self.proc.start()
        child.close()
        self.known: dict[str, tuple[int, int]] = {}  # database -> (policy token, snapshot token)

    def roundtrip(self, message: bytes) -> Any:
        """Blocking: send one request and wait for the answer (run in a thread)."""
        conn: Connection = self.conn
        conn.send_bytes(message)
        return pickle.loads(conn.recv_bytes())

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.proc.kill()
        with contextlib.suppress(Exception):
            self.conn.close()
        with contextlib.suppress(Exception):
            self.proc.join(timeout=5)


class CheckWorkers:
    """At most `size` checker processes, started as needed and reused (see the module docstring)."""

    def __init__(self, size: int) -> None:
        self.size = max(1, size)
        self._ctx = _context()
        self._idle: list[_Worker] = []
        self._count = 0
        self._free = asyncio.Condition()
        self._threads = ThreadPoolExecutor(self.size, thread_name_prefix="pgmcp-check-io")
        self._tokens: dict[str, tuple[Any, int, Any, int]] = {}  # database -> policy, token, snapshot, token
        self._counter = itertools.count(1)
        self._closed = False

    async def start(self) -> None:
        """Start one worker ahead of the first call (the fork server imports the checker once)."""
        async with self._free:
            if self._count >= self.size:
                return
            self._count += 1
        try:
            worker = await asyncio.get_running_loop().run_in_executor(self._threads, _Worker, self._ctx)
        except BaseException:
            await self._lost()
            raise
        await self._give_back(worker)

    @property
    def processes(self) -> int:
        """Checker processes running or starting now."""
        return self._count

    def _token(self, database: str, policy: CompiledPolicy, snapshot: SchemaSnapshot | None) -> tuple[int, int]:
        old = self._tokens.get(database)
        ptok = old[1] if old is not None and old[0] is policy else next(self._counter)
        stok = old[3] if old is not None and old[2] is snapshot else next(self._counter)
        self._tokens[database] = (policy, ptok, snapshot, stok)
        return ptok, stok

    async def _take(self, deadline: Deadline) -> _Worker:
        """An idle worker, else a new one while under `size` (starting it does not count
        against the call's deadline: it is pgmcp's own cost), else wait for one to be free."""
        async with self._free:
            if not self._idle and self._count >= self.size:
                try:
                    async with asyncio.timeout(max(0.0, deadline.left())):
                        while not self._idle and self._count >= self.size:
                            await self._free.wait()
                except TimeoutError:
                    raise deadline.expired("waiting for a free policy checker") from None
            if self._idle:
                return self._idle.pop()
            self._count += 1
        started = time.monotonic()
        try:
            return await asyncio.get_running_loop().run_in_executor(self._threads, _Worker, self._ctx)
        except BaseException:
            await self._lost()
            raise
        finally:
            deadline.started += time.monotonic() - started

    async def _give_back(self, worker: _Worker) -> None:
        async with self._free:
            if self._closed:
                worker.kill()
                self._count -= 1
            else:
                self._idle.append(worker)
            self._free.notify()

    async def _lost(self) -> None:
        async with self._free:
            self._count -= 1
            self._free.notify()

    async def check(
        self, database: str, policy: CompiledPolicy, snapshot: SchemaSnapshot | None, sql: str,
        deadline: Deadline,
    ) -> Verdict:
        """The verdict on `sql`, or QueryTimeout once `deadline` passes (the worker is killed)."""
        ptok, stok = self._token(database, policy, snapshot)
        worker = await self._take(deadline)
        have = worker.known.get(database, (0, 0))
        message = pickle.dumps((
            database, ptok, policy if have[0] != ptok else None, stok, snapshot if have[1] != stok else None, sql,
        ))
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._threads, worker.roundtrip, message)
        try:
            async with asyncio.timeout(max(0.0, deadline.left())):
                status, value = await asyncio.shield(future)
        except BaseException as exc:
            # Killing abandons the work and frees its memory; the blocked read ends with it.
            worker.proc.kill()
            with contextlib.suppress(BaseException):
                await future
            await loop.run_in_executor(None, worker.kill)  # reaps the process (a blocking join)
            await self._lost()
            if isinstance(exc, TimeoutError):
                logger.warning("database {}: policy check abandoned at the call's deadline", database)
                raise deadline.expired("checking the SQL against the policy") from None
            if isinstance(exc, EOFError | OSError):
                return _unanalysable(sql, "the checker process ended unexpectedly")
            raise
        worker.known[database] = (ptok, stok)
        await self._give_back(worker)
        if status == "ok" and isinstance(value, Verdict):
            return value
        logger.warning("database {}: the policy check failed: {}", database, value)
        return _unanalysable(sql, str(value))

    async def close(self) -> None:
        async with self._free:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
        for worker in idle:
            worker.kill()
        self._threads.shutdown(wait=False, cancel_futures=True)


def _unanalysable(sql: str, why: str) -> Verdict:
    """A check that cannot decide refuses (PGM003, as the checker does for shapes it cannot read)."""
    message = f"the query could not be analysed ({why}); simplify it"
    return Verdict(sql, False, (violation(PGM003, message),))


class Encoders:
    """Threads for encoding fetched rows (bounded work, see the module docstring)."""

    def __init__(self, size: int) -> None:
        self._threads = ThreadPoolExecutor(max(1, size), thread_name_prefix="pgmcp-encode")

    async def run(self, fn: Callable[[], T], deadline: Deadline, what: str) -> T:
        future = asyncio.get_running_loop().run_in_executor(self._threads, fn)
        try:
            async with asyncio.timeout(max(0.0, deadline.left())):
                return await future
        except TimeoutError:
            future.cancel()
            raise deadline.expired(what) from None

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
