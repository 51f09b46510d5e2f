"""End-to-end MCP `execute_sql` round trip over stdio, as an MCP host sees it.

Starts `pgmcp demo` as a subprocess through the MCP SDK's stdio client (exactly what Claude
Desktop does with the demo's snippet: its own throwaway PostgreSQL, the sample shop, the demo
policy, the least-privilege role), then times N sequential `execute_sql` calls of a one-row
query from the client's side: JSON-RPC framing both ways, the policy check, the read-only
transaction, serialization. Reports the median, p90, p99 and max.

    .venv/bin/python bench/bench_mcp_roundtrip.py [--calls 1000] [--warmup 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

ROOT = Path(__file__).resolve().parent.parent
SQL = "SELECT id, sku, name, category, price FROM products WHERE id = 42"


def pgmcp_argv(subcommand: str, module: str) -> list[str]:
    """The installed `pgmcp` script when its CLI entry exists, else the subcommand's module."""
    script = Path(sys.executable).parent / "pgmcp"
    if (ROOT / "pgmcp" / "cli" / "main.py").exists() and script.exists():
        return [str(script), subcommand]
    return [sys.executable, "-m", module]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def measure(calls: int, warmup: int) -> dict[str, float]:
    argv = pgmcp_argv("demo", "pgmcp.demo.cli")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
    params = StdioServerParameters(command=argv[0], args=argv[1:], env=env)
    with tempfile.TemporaryFile("w+") as errlog:
        async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
            for _ in range(warmup):
                await client.call_tool("execute_sql", {"sql": SQL})
            times = []
            for _ in range(calls):
                start = time.perf_counter()
                result = await client.call_tool("execute_sql", {"sql": SQL})
                times.append((time.perf_counter() - start) * 1000)
                if result.is_error or result.structured_content["row_count"] != 1:
                    raise SystemExit(f"unexpected result: {result}")
    return {
        "calls": calls,
        "median_ms": statistics.median(times),
        "p90_ms": percentile(times, 0.90),
        "p99_ms": percentile(times, 0.99),
        "max_ms": max(times),
        "calls_per_s": calls / (sum(times) / 1000),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args()
    result = asyncio.run(measure(args.calls, args.warmup))
    if args.json:
        print(json.dumps(result))
        return
    print(f"execute_sql over stdio against pgmcp demo, {args.calls} sequential calls ({SQL!r})")
    print(f"median {result['median_ms']:.2f} ms, p90 {result['p90_ms']:.2f} ms, "
          f"p99 {result['p99_ms']:.2f} ms, max {result['max_ms']:.2f} ms; "
          f"{result['calls_per_s']:.0f} calls/s")


if __name__ == "__main__":
    main()
