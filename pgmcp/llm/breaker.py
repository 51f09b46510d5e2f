"""A circuit breaker per provider: stop calling a model that keeps failing.

closed --N consecutive failures--> open --recovery seconds--> half-open (one trial call)
--success--> closed, --failure--> open again. While open (and while the half-open trial is
in flight) calls are refused at once with `LLMUnavailable`, saying when the next try is due,
instead of every request waiting out its own timeout.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

from pgmcp.errors import GenerationFailed, LLMUnavailable

BreakerState = Literal["closed", "open", "half_open"]
T = TypeVar("T")


class CircuitBreaker:
    def __init__(
        self,
        failures: int,
        recovery: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        name: str = "the LLM provider",
    ) -> None:
        if failures < 1:
            raise ValueError("failures must be >= 1")
        self._threshold = failures
        self._recovery = recovery
        self._clock = clock
        self._name = name
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self._recovery:
            return "half_open"
        return "open"

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def before_call(self) -> None:
        """Admit a call or raise `LLMUnavailable`; in half-open state admits exactly one trial."""
        state = self.state
        if state == "closed":
            return
        if state == "half_open" and not self._trial_running:
            self._trial_running = True
            return
        assert self._opened_at is not None
        wait = max(0.0, self._opened_at + self._recovery - self._clock())
        when = f"in {wait:.0f}s" if state == "open" else "after the trial call in flight finishes"
        raise LLMUnavailable(
            f"{self._name} failed {self._failures} times in a row; not calling it for now "
            f"(circuit open, next try {when})",
            hint="check the provider's status, network and configuration, or wait and retry",
        )

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial_running = False

    def record_failure(self) -> None:
        self._failures += 1
        self._trial_running = False
        if self._opened_at is not None or self._failures >= self._threshold:
            # A failed half-open trial re-opens for a full recovery period.
            self._opened_at = self._clock()

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run `fn` under the breaker. Only `LLMUnavailable` counts as a failure: an unusable
        answer (`GenerationFailed`) still proves the provider is up."""
        self.before_call()
        try:
            result = await fn()
        except LLMUnavailable:
            self.record_failure()
            raise
        except GenerationFailed:
            self.record_success()
            raise
        except BaseException:
            # Cancelled or a bug of ours: says nothing about the provider; let another trial run.
            self._trial_running = False
            raise
        self.record_success()
        return result
