"""pgmcp's execution overhead: `Executor.execute` vs a bare asyncpg `fetch` of the same query.

Starts its own throwaway PostgreSQL. For 1 row and 10,000 rows it times N runs of each and
prints the medians and the ratio. `execute` includes the policy check (the real checker with
policies/baseline.yaml, raised to a 10,000-row cap), the read-only transaction with its
SET LOCALs, cursor batching, byte accounting and JSON-safe serialization.

    .venv/bin/python bench/bench_executor.py [--runs 50]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg

from pgmcp.config.model import DatabaseConfig, LimitsConfig, PoolConfig
from pgmcp.db.executor import Executor
from pgmcp.db.pools import PoolSet
from pgmcp.demo.tempserver import TemporaryPostgres
from pgmcp.policy.checker import check
from pgmcp.policy.compiler import compile_policy
from pgmcp.policy.document import load_policy_spec
from pgmcp.policy.verdict import Verdict

ROOT = Path(__file__).resolve().parent.parent
QUERIES = {
    "1 row": "SELECT id, name, price, created FROM items WHERE id = 42",
    "10,000 rows": "SELECT id, name, price, created FROM items ORDER BY id",
}


async def median_ms(fn: Callable[[], Awaitable[Any]], runs: int) -> float:
    await fn()  # warm up (statement cache, codecs, checker caches)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        await fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def main(runs: int) -> None:
    with TemporaryPostgres() as pg:
        pg.run_sql("CREATE DATABASE bench")
        pg.run_sql(
            "CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(10,2), created timestamptz);"
            "INSERT INTO items SELECT g, 'item ' || g, g * 1.25, now() - g * interval '1 minute' "
            "FROM generate_series(1, 10000) g; ANALYZE items;",
            "bench",
        )
        spec = load_policy_spec([], ROOT)
        policy = compile_policy(replace(spec, max_rows=10_000))

        def checker(sql: str) -> Verdict:
            return check(sql, policy)

        limits = LimitsConfig(max_rows=10_000, max_result_bytes=50_000_000)
        cfg = DatabaseConfig(name="bench", dsn=pg.dsn("bench"), pool=PoolConfig(min_size=1, max_size=1))
        pools = PoolSet([cfg], limits)
        await pools.open()
        executor = Executor(pools, {"bench": checker}, limits)
        bare = await asyncpg.connect(pg.dsn("bench"))
        try:
            print(f"policy cap: {policy.max_rows} rows; {runs} runs each; medians", file=sys.stderr)
            print(f"{'query':<12} {'asyncpg fetch':>14} {'pgmcp execute':>14} {'ratio':>7}")
            for label, sql in QUERIES.items():
                result = await executor.execute("bench", sql)
                rows = len(await bare.fetch(sql))
                assert result.row_count == rows, (label, result.row_count, rows, result.sql)
                base = await median_ms(lambda sql=sql: bare.fetch(sql), runs)  # type: ignore[misc]
                ours = await median_ms(lambda sql=sql: executor.execute("bench", sql), runs)  # type: ignore[misc]
                print(f"{label:<12} {base:>11.3f} ms {ours:>11.3f} ms {ours / base:>6.1f}x")
        finally:
            await bare.close()
            await pools.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    asyncio.run(main(parser.parse_args().runs))
