"""Per-principal rate limits: one token bucket per principal (`auth.rate_limit`, `auth.rate_limits`).

A bucket holds up to `calls` tokens and refills at `calls / per` tokens a second; a call
takes one. An empty bucket refuses the call with `[rate_limited]` and the seconds until a
token is back. Buckets are per principal, never shared, so one busy principal does not slow
another. Principals without a limit (none configured, or the local stdio user) are never
limited. Buckets of principals idle for a day are forgotten (bounded memory).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from cachetools import TTLCache

from pgmcp.config.model import AuthConfig, RateLimit
from pgmcp.errors import RateLimited

MAX_BUCKETS = 100_000
IDLE_SECONDS = 86_400.0


@dataclass
class _Bucket:
    limit: RateLimit
    tokens: float
    updated: float


class RateLimiter:
    def __init__(self, config: AuthConfig | None, clock: Callable[[], float] = time.monotonic) -> None:
        self._default = config.rate_limit if config is not None else None
        self._overrides = dict(config.rate_limits) if config is not None else {}
        self._clock = clock
        self._buckets: TTLCache[str, _Bucket] = TTLCache(MAX_BUCKETS, IDLE_SECONDS, timer=clock)

    def limit_for(self, principal: str) -> RateLimit | None:
        return self._overrides.get(principal, self._default)

    def take(self, principal: str) -> None:
        """Take one call from `principal`'s bucket, or raise `RateLimited`."""
        limit = self.limit_for(principal)
        if limit is None:
            return
        now = self._clock()
        bucket = self._buckets.get(principal)
        if bucket is None or bucket.limit != limit:
            bucket = _Bucket(limit, float(limit.calls), now)
        rate = limit.calls / limit.per
        bucket.tokens = min(float(limit.calls), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        self._buckets[principal] = bucket
        if bucket.tokens < 1.0:
            wait = math.ceil((1.0 - bucket.tokens) / rate * 10) / 10
            raise RateLimited(
                f"principal {principal} is over its rate limit of {limit}; try again in {wait:g} seconds",
                retry_after=wait, hint=f"wait {wait:g} seconds before the next call",
            )
        bucket.tokens -= 1.0
