"""Where the time of a large answer goes: the server's part, and the MCP Python SDK client's.

`bench_peers.py` times whole calls through the SDK's stdio `Client`. This script splits such a
call in two, for pgmcp and the peers that send rows (REF and DBHub by default):

1. **server**: the server is spawned with raw pipes, the legacy `initialize` handshake done by
   hand, and `tools/call` of the 10,000-row query (and with `--big` the 100,000-row one) timed
   until the whole answer line is read by a linear reader (`os.read`, 1 MiB at a time).
2. **client**: the saved answer line replayed, in this process, through the steps the SDK's
   client takes with it: its stdio read loop (64 KiB reads joined as
   `lines = (buffer + chunk).split("\\n")`, as in mcp/client/stdio.py, so an answer of n bytes
   copies about n^2 / 128 KiB), its JSON-RPC parse (`jsonrpc_message_adapter.validate_json`,
   `_parse_line`), the result's check against the protocol (`validate_server_result`) and model
   (`CallToolResult`), and the output-schema check with the tool's listed schema (compiled
   once, as the SDK caches it).

The sum of the two is about what `bench_peers.py` measures; the client's part depends only on
the answer's bytes and shape, which is the floor a server sending that answer cannot go below.
Timings are CPU-bound, so the medians of interleaved runs are reported.

    .venv/bin/python bench/bench_wire.py                 # pgmcp, REF, DBHub; 10,000 rows, 5 runs
    .venv/bin/python bench/bench_wire.py --big --runs 3  # and 100,000 rows
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_peers as bp

from pgmcp.demo.tempserver import TemporaryPostgres

READ = 1 << 20
SDK_READ = 65536  # anyio's default receive size, which the SDK's stdio client reads with


class RawServer:
    """A server on raw pipes: requests written as JSON lines, answers read whole."""

    def __init__(self, server: bp.Server) -> None:
        params = server.params()
        self.tool = server.tool
        self.proc = subprocess.Popen([params.command, *params.args], env=params.env, cwd=params.cwd,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._buffer = bytearray()
        self._id = 0
        self.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "bench-wire", "version": "0"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        self.output_schema = next(
            (t.get("outputSchema") for t in json.loads(self.request("tools/list", {}))["result"]["tools"]
             if t["name"] == self.tool), None)

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()

    def request(self, method: str, params: dict[str, Any]) -> bytes:
        return self.timed_request(method, params)[1]

    def timed_request(self, method: str, params: dict[str, Any]) -> tuple[float, bytes]:
        """Seconds from writing the request to reading the answer's last byte, and the answer."""
        self._id += 1
        started = time.perf_counter()
        self.send({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        while True:
            line = self._line()
            elapsed = time.perf_counter() - started  # before parsing it, which is no server's time
            if json.loads(line).get("id") == self._id:
                return elapsed, line

    def _line(self) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        start = 0
        while (end := self._buffer.find(b"\n", start)) < 0:
            start = len(self._buffer)
            chunk = os.read(fd, READ)
            if not chunk:
                raise RuntimeError("the server closed its stdout")
            self._buffer += chunk
        line = bytes(self._buffer[:end + 1])
        del self._buffer[:end + 1]
        return line

    def call(self, sql: str) -> tuple[float, bytes]:
        return self.timed_request("tools/call", {"name": self.tool, "arguments": {"sql": sql}})

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def client_steps(line: bytes, output_schema: dict[str, Any] | None) -> dict[str, float]:
    """Seconds the SDK's client spends on `line`, step by step (see the module docstring)."""
    import mcp_types as types
    from jsonschema import exceptions
    from jsonschema.validators import validator_for
    from mcp_types import methods
    from referencing import Registry

    text = line.decode()
    steps: dict[str, float] = {}
    started = time.perf_counter()
    buffer, lines = "", []
    for at in range(0, len(text), SDK_READ):
        lines = (buffer + text[at:at + SDK_READ]).split("\n")
        buffer = lines.pop()
    steps["read loop"] = time.perf_counter() - started
    started = time.perf_counter()
    message = types.jsonrpc_message_adapter.validate_json(text, by_name=False)
    steps["JSON-RPC parse"] = time.perf_counter() - started
    raw = message.result  # type: ignore[union-attr]
    started = time.perf_counter()
    methods.validate_server_result("tools/call", "2025-06-18", raw)
    result = types.CallToolResult.model_validate(raw, by_name=False)
    steps["result checks"] = time.perf_counter() - started
    if output_schema is not None:
        validator = validator_for(output_schema)(output_schema, registry=Registry())
        started = time.perf_counter()
        error = exceptions.best_match(validator.iter_errors(result.structured_content))
        steps["output schema"] = time.perf_counter() - started
        assert error is None, error
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path(os.path.expanduser("~/.cache/pgmcp-bench")))
    parser.add_argument("--only", default="pgmcp,REF,DBHub", help="comma-separated servers that send rows")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--big", action="store_true", help="also the 100,000-row answer")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    parser.add_argument("--json", action="store_true", help="print one JSON line (the figures) at the end")
    args = parser.parse_args()
    queries = [("10,000 rows", bp.TEN_K), *([("100,000 rows", bp.HUNDRED_K)] if args.big else [])]
    load_before = os.getloadavg()[0]
    with TemporaryPostgres() as pg:
        pg.run_sql(f"CREATE DATABASE {bp.DBNAME}")
        pg.run_sql(bp.SETUP_SQL, bp.DBNAME)
        servers, failed = bp.build_servers(args.cache, pg, set(args.only.split(",")))
        servers = [s for s in servers if s.rows]
        raw = {s.name: RawServer(s) for s in servers}
        try:
            figures: dict[str, dict[str, dict[str, float]]] = {}
            for label, sql in queries:
                server_s: dict[str, list[float]] = {s.name: [] for s in servers}
                client_s: dict[str, list[dict[str, float]]] = {s.name: [] for s in servers}
                size: dict[str, int] = {}
                for name in raw:  # warm up
                    raw[name].call(sql)
                for run in range(args.runs):
                    for server in bp.rotate(servers, run):
                        elapsed, line = raw[server.name].call(sql)
                        server_s[server.name].append(elapsed)
                        size[server.name] = len(line)
                        client_s[server.name].append(client_steps(line, raw[server.name].output_schema))
                        del line
                figures[label] = {}
                for name in raw:
                    steps = {k: statistics.median(r[k] for r in client_s[name]) * 1000 for k in client_s[name][0]}
                    figures[label][name] = {
                        "bytes": size[name], "server_ms": statistics.median(server_s[name]) * 1000,
                        **{f"client {k} ms": v for k, v in steps.items()},
                        "client_ms": sum(steps.values()),
                    }
        finally:
            for server in raw.values():
                server.close()
    print(f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}; medians of {args.runs} runs", file=sys.stderr)
    for name, why in failed.items():
        print(f"{name} was not measured: {why}", file=sys.stderr)
    for label, per_server in figures.items():
        names = list(per_server)
        steps = list(dict.fromkeys(k for n in names for k in per_server[n] if k.startswith("client ")))
        keys = ["server_ms", *steps, "client_ms"]
        print(f"\n{label}\n\n| | " + " | ".join(names) + " |\n" + "|---" * (len(names) + 1) + "|")
        print("| answer line | " + " | ".join(f"{per_server[n]['bytes'] / 1e6:.2f} MB" for n in names) + " |")
        for key in keys:
            cells = [f"{per_server[n][key]:.1f} ms" if key in per_server[n] else "-" for n in names]
            print(f"| {key.replace('_ms', '').replace(' ms', '')} | " + " | ".join(cells) + " |")
        totals = [per_server[n]["server_ms"] + per_server[n]["client_ms"] for n in names]
        print("| server + client | " + " | ".join(f"{t:.1f} ms" for t in totals) + " |")
    if args.out:
        args.out.write_text(json.dumps({"load_before": load_before, "runs": args.runs, "figures": figures}, indent=1))
    if args.json:
        print(json.dumps(figures))


if __name__ == "__main__":
    main()
