"""A concurrency limit with a bounded queue, for LLM calls and database queries.

At most `max_concurrency` holders run at once and at most `queue_size` more wait for a turn;
anyone past that is refused at once with `Overloaded`, so a burst of requests fails fast
with a clear error instead of piling up behind a slow model or a busy database.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from pgmcp.config.model import LimitsConfig, LLMConfig
from pgmcp.errors import Overloaded


class Limiter:
    """`async with limiter.slot():` runs the block once a slot is free (see the module docstring)."""

    def __init__(self, name: str, max_concurrency: int, queue_size: int) -> None:
        if max_concurrency < 1 or queue_size < 0:
            raise ValueError("max_concurrency must be >= 1 and queue_size >= 0")
        self.name = name
        self.max_concurrency = max_concurrency
        self.queue_size = queue_size
        self._slots = asyncio.Semaphore(max_concurrency)
        self._running = 0
        self._waiting = 0

    @classmethod
    def for_llm(cls, config: LLMConfig) -> Limiter:
        return cls("LLM calls", config.max_concurrency, config.queue_size)

    @classmethod
    def for_queries(cls, limits: LimitsConfig) -> Limiter:
        return cls("database queries", limits.max_concurrent_queries, limits.queue_size)

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return self._waiting

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the block; raises `Overloaded` when every slot and queue place is taken."""
        if self._running >= self.max_concurrency and self._waiting >= self.queue_size:
            raise Overloaded(
                f"too many {self.name} at once ({self._running} running, {self._waiting} waiting; "
                f"limit {self.max_concurrency} + queue {self.queue_size})",
                hint="try again in a moment",
            )
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        self._running += 1
        try:
            yield
        finally:
            self._running -= 1
            self._slots.release()
