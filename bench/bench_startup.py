"""Startup time of `pgmcp serve`: from starting the process to its first answered request.

Sets up the sample shop once (a throwaway PostgreSQL, as `pgmcp demo` does) and a config file
serving it under the demo policy, then, several times: starts `pgmcp serve --config FILE`
through the MCP SDK's stdio client, and times (a) the initialize handshake answered and (b) the
first `execute_sql` answered (imports, config and policy loading, pool open, schema
introspection, MCP handshake, one checked query). Reports the median, min and max.

Then, turn about with the MCP SDK's bare "hello" server (one MCPServer tool, the floor for a
Python server; the same as bench_peers.py's), it times both from spawn to the answer of the
first tool call over a plain JSON-RPC pipe, and reads the server's own CPU time (its process
tree, from /proc) at that moment: on a shared machine the CPU time moves much less with the
load than the wall time, and the ratio of the two servers is what issue 15 sets a goal on.

    .venv/bin/python bench/bench_startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_peers import HELLO_SERVER, _tree, cpu_seconds  # the same floor server and /proc readings
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


def cpu_ms(pid: int) -> float:
    """User + system CPU time of `pid` and its live descendants."""
    return cpu_seconds(_tree(pid)) * 1000


def raw_start(argv: list[str], sql: str) -> tuple[float, float]:
    """(wall ms, server CPU ms) from spawning `argv` to the answer of its first `execute_sql`."""
    def send(message: dict[str, object]) -> None:
        assert proc.stdin is not None
        proc.stdin.write((json.dumps(message) + "\n").encode())
        proc.stdin.flush()

    def answer(request_id: int) -> dict[str, object]:
        assert proc.stdout is not None
        while line := proc.stdout.readline():
            message: dict[str, object] = json.loads(line)
            if message.get("id") == request_id:
                return message
        raise SystemExit(f"{argv[0]} exited before answering")

    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}})
        answer(1)
        send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        send({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
              "params": {"name": "execute_sql", "arguments": {"sql": sql}}})
        result = answer(2)
        wall, cpu = (time.perf_counter() - start) * 1000, cpu_ms(proc.pid)
        if "error" in result or result.get("result", {}).get("isError"):  # type: ignore[union-attr]
            raise SystemExit(f"unexpected answer: {result}")
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        proc.wait(30)
    return wall, cpu


def against_hello(config_path: Path, runs: int) -> dict[str, float]:
    """pgmcp and the bare SDK server, turn about (who goes first alternates), wall and CPU."""
    hello = config_path.parent / "hello_server.py"
    hello.write_text(HELLO_SERVER)
    servers = {"pgmcp": [*pgmcp_argv("serve", "pgmcp.cli.serve"), "--config", str(config_path)],
               "hello": [sys.executable, str(hello)]}
    got: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
    for run in range(runs + 1):  # the first round warms the OS file cache and is not counted
        for name in (list(servers) if run % 2 else list(servers)[::-1]):
            result = raw_start(servers[name], SQL)
            if run:
                got[name].append(result)
    out: dict[str, float] = {}
    for name, results in got.items():
        out[f"{name}_wall_median_ms"] = statistics.median(w for w, _ in results)
        out[f"{name}_cpu_median_ms"] = statistics.median(c for _, c in results)
    out["cpu_ratio"] = out["pgmcp_cpu_median_ms"] / out["hello_cpu_median_ms"]
    out["wall_ratio"] = out["pgmcp_wall_median_ms"] / out["hello_wall_median_ms"]
    return out


def measure(runs: int) -> dict[str, float]:
    env = DemoEnvironment()
    try:
        config = env.start(LLMConfig())
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "pgmcp.yaml"
            write_config(config, path)
            asyncio.run(one_start(path))  # warm the OS file cache once
            results = [asyncio.run(one_start(path)) for _ in range(runs)]
            versus = against_hello(path, runs)
    finally:
        env.cleanup()
    inits, firsts = [r[0] for r in results], [r[1] for r in results]
    return {
        "runs": runs,
        "initialize_median_ms": statistics.median(inits),
        "first_answer_median_ms": statistics.median(firsts),
        "first_answer_min_ms": min(firsts),
        "first_answer_max_ms": max(firsts),
        **versus,
        "loadavg": os.getloadavg()[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args()
    # Bytecode as an install has it: with PYTHONDONTWRITEBYTECODE set (as on this machine), an
    # editable checkout would otherwise compile every changed module from source at each start.
    compileall.compile_dir(str(ROOT / "pgmcp"), quiet=1)
    result = measure(args.runs)
    if args.json:
        print(json.dumps(result))
        return
    print(f"pgmcp serve over stdio, {args.runs} starts (sample shop, demo policy)")
    print(f"initialize answered: median {result['initialize_median_ms']:.0f} ms")
    print(f"first execute_sql answered: median {result['first_answer_median_ms']:.0f} ms "
          f"(min {result['first_answer_min_ms']:.0f}, max {result['first_answer_max_ms']:.0f})")
    print(f"turn about with the bare SDK server (plain JSON-RPC pipe, load {result['loadavg']:.1f}): "
          f"pgmcp {result['pgmcp_wall_median_ms']:.0f} ms wall, {result['pgmcp_cpu_median_ms']:.0f} ms CPU; "
          f"hello {result['hello_wall_median_ms']:.0f} ms wall, {result['hello_cpu_median_ms']:.0f} ms CPU "
          f"(CPU {result['cpu_ratio']:.2f}x, wall {result['wall_ratio']:.2f}x)")


if __name__ == "__main__":
    main()
