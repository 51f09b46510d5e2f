"""Startup time of `pgmcp serve`: from starting the process to its first answered request.

Sets up the sample shop once (a throwaway PostgreSQL, as `pgmcp demo` does) and a config file
serving it under the demo policy, then, several times: starts `pgmcp serve --config FILE`
through the MCP SDK's stdio client, and times (a) the initialize handshake answered and (b) the
first `execute_sql` answered (imports, config and policy loading, pool open, schema
introspection, MCP handshake, one checked query). Reports the median, min and max.

    .venv/bin/python bench/bench_startup.py [--runs 7]
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

from pgmcp.config.model import Config, LLMConfig
from pgmcp.demo.environment import DemoEnvironment

ROOT = Path(__file__).resolve().parent.parent
SQL = "SELECT count(*) FROM orders"


def pgmcp_argv(subcommand: str, module: str) -> list[str]:
    """The installed `pgmcp` script when its CLI entry exists, else the subcommand's module."""
    script = Path(sys.executable).parent / "pgmcp"
    if (ROOT / "pgmcp" / "cli" / "main.py").exists() and script.exists():
        return [str(script), subcommand]
    return [sys.executable, "-m", module]


def write_config(config: Config, path: Path) -> None:
    db = config.databases[0]
    path.write_text(
        "databases:\n"
        f"  {db.name}:\n"
        f"    dsn: {db.dsn}\n"
        f"    password: {db.password.value}\n"
        "    policies: [demo]\n"
        "logging:\n"
        "  level: WARNING\n"
    )


async def one_start(config_path: Path) -> tuple[float, float]:
    argv = pgmcp_argv("serve", "pgmcp.cli.serve")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
    params = StdioServerParameters(command=argv[0], args=[*argv[1:], "--config", str(config_path)], env=env)
    with tempfile.TemporaryFile("w+") as errlog:
        start = time.perf_counter()
        async with Client(stdio_client(params, errlog=errlog), mode="legacy") as client:
            initialized = time.perf_counter() - start
            result = await client.call_tool("execute_sql", {"sql": SQL})
            answered = time.perf_counter() - start
            if result.is_error:
                raise SystemExit(f"unexpected result: {result}")
    return initialized * 1000, answered * 1000


def measure(runs: int) -> dict[str, float]:
    env = DemoEnvironment()
    try:
        config = env.start(LLMConfig())
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "pgmcp.yaml"
            write_config(config, path)
            asyncio.run(one_start(path))  # warm the OS file cache once
            results = [asyncio.run(one_start(path)) for _ in range(runs)]
    finally:
        env.cleanup()
    inits, firsts = [r[0] for r in results], [r[1] for r in results]
    return {
        "runs": runs,
        "initialize_median_ms": statistics.median(inits),
        "first_answer_median_ms": statistics.median(firsts),
        "first_answer_min_ms": min(firsts),
        "first_answer_max_ms": max(firsts),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args()
    result = measure(args.runs)
    if args.json:
        print(json.dumps(result))
        return
    print(f"pgmcp serve over stdio, {args.runs} starts (sample shop, demo policy)")
    print(f"initialize answered: median {result['initialize_median_ms']:.0f} ms")
    print(f"first execute_sql answered: median {result['first_answer_median_ms']:.0f} ms "
          f"(min {result['first_answer_min_ms']:.0f}, max {result['first_answer_max_ms']:.0f})")


if __name__ == "__main__":
    main()
