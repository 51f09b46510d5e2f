"""pgmcp side by side with its peers: the same client, database, role and queries, interleaved.

Peers: the reference server (npm `@modelcontextprotocol/server-postgres`, "REF"), DBHub (npm
`@bytebase/dbhub`, execute_sql with `readonly = true`) and Postgres MCP Pro (PyPI
`postgres-mcp`, `--access-mode=restricted`, in its own venv: it needs Python >= 3.12), plus a
bare MCPServer "hello" tool from the same SDK as pgmcp: the floor for a Python server. They are
installed under a cache folder (default ~/.cache/pgmcp-bench); a peer that fails to install is
left out and named in the output.

One throwaway PostgreSQL (`pgmcp.demo.tempserver`), one table `wide` of 100,000 rows x 8 mixed
columns (int, bigint, numeric, text, timestamptz, boolean, uuid, jsonb; a third of the bigints
beyond 2^53), one least-privilege role with SELECT on it. Every server is driven through the
MCP Python SDK's `Client` over stdio (legacy initialize), timed on the client side:

1. startup: process spawn to the answer of `SELECT 1` (fresh process each run);
2. one row of `wide`: p50 of N sequential calls (one session per server, calls round-robin);
3. 10,000 rows: median of N calls, with the client's output-schema validation on (what the
   SDK's clients do) and off (the client's cached output schema dropped; only pgmcp declares one);
4. 100,000 rows, every row cap raised: time, and peak RSS (VmHWM) of the server's process tree
   (a fresh process each run).

Servers take turns within every round, in a rotating order, so load on the shared machine hits
all alike. Prints a table and writes JSON (--out).

    .venv/bin/python bench/bench_peers.py [--quick] [--only pgmcp,REF] [--out peers.json]
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import contextlib
import glob
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from mcp.client.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from pgmcp.demo.tempserver import TemporaryPostgres

ROOT = Path(__file__).resolve().parent.parent
REF_PKG, REF_VERSION = "@modelcontextprotocol/server-postgres", "0.6.2"
DBHUB_PKG, DBHUB_VERSION = "@bytebase/dbhub", "1.4.0"
PRO_PKG, PRO_VERSION = "postgres-mcp", "0.3.0"
ROLE, PASSWORD, DBNAME = "bench_ro", "bench-ro-password", "bench"
ROWS = 100_000

SETUP_SQL = f"""
CREATE TABLE wide (
    id int PRIMARY KEY, big bigint, amount numeric(14,4), note text, at timestamptz,
    flag boolean, uid uuid, doc jsonb
);
INSERT INTO wide
SELECT g,
       CASE WHEN g % 3 = 0 THEN g::bigint * 92233720368547 ELSE g::bigint * 1000 END,
       g * 1.2345,
       'note ' || md5(g::text),
       timestamptz '2024-01-01 00:00:00+00' + g * interval '1.234567 second',
       g % 2 = 0,
       md5(g::text)::uuid,
       jsonb_build_object('n', g, 'tags', jsonb_build_array('a', 'b'), 'ok', g % 5 = 0)
FROM generate_series(1, {ROWS}) g;
ANALYZE wide;
CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}';
GRANT CONNECT ON DATABASE {DBNAME} TO {ROLE};
GRANT USAGE ON SCHEMA public TO {ROLE};
GRANT SELECT ON wide TO {ROLE};
"""
SELECT_1 = "SELECT 1"
T = TypeVar("T")
ONE_ROW_SQL = "SELECT * FROM wide WHERE id = {}"
ONE_ROW = ONE_ROW_SQL.format(42)
TEN_K = "SELECT * FROM wide WHERE id <= 10000 ORDER BY id"
HUNDRED_K = "SELECT * FROM wide ORDER BY id"


def uid_of(n: int) -> str:
    """The uuid column of row n (md5 of its id), which every server must return."""
    return str(uuid.UUID(hashlib.md5(str(n).encode()).hexdigest()))


HELLO_SERVER = '''
from mcp.server.mcpserver import MCPServer

server = MCPServer("hello", log_level="WARNING")


@server.tool()
def execute_sql(sql: str) -> str:
    """Answer hello, whatever the SQL."""
    return "hello"


server.run()
'''

PGMCP_POLICY = f"""
name: bench
extends: [baseline]
tables:
  "public.*": allow
limits:
  max_rows: {ROWS}
  statement_timeout: 120s
"""


@dataclass
class Server:
    name: str
    command: str
    args: list[str]
    tool: str
    env: dict[str, str] = field(default_factory=dict)
    version: str = ""
    note: str = ""
    rows: bool = True  # False for the hello floor: it answers every call with "hello"
    cwd: str | None = None

    def params(self) -> StdioServerParameters:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_"))}
        return StdioServerParameters(command=self.command, args=self.args, env={**env, **self.env}, cwd=self.cwd)


# -- installing the peers -------------------------------------------------------------------


def _run(argv: list[str], cwd: Path, timeout: float = 900) -> None:
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{' '.join(argv[:3])} ... failed (exit {proc.returncode}): {' | '.join(tail)}")


def install_npm(cache: Path) -> Path:
    """REF and DBHub under cache/npm (npm install, once)."""
    folder = cache / "npm"
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {REF_PKG: REF_VERSION, DBHUB_PKG: DBHUB_VERSION}
    missing = [
        f"{pkg}@{version}" for pkg, version in wanted.items()
        if _npm_version(folder, pkg) != version
    ]
    if missing:
        if shutil.which("npm") is None:
            raise RuntimeError("npm is not installed")
        if not (folder / "package.json").exists():
            (folder / "package.json").write_text('{"private": true}\n')
        _run(["npm", "install", "--no-audit", "--no-fund", "--silent", *missing], folder)
    return folder / "node_modules"


def _npm_version(folder: Path, pkg: str) -> str | None:
    meta = folder / "node_modules" / pkg / "package.json"
    if not meta.exists():
        return None
    return str(json.loads(meta.read_text()).get("version"))


def find_python312() -> str:
    """A Python >= 3.12 for Postgres MCP Pro (PATH, then pyenv's versions)."""
    candidates = [shutil.which(f"python3.{minor}") for minor in (14, 13, 12)]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[2-9]*/bin/python3")), reverse=True)
    for cand in candidates:
        if cand and os.access(cand, os.X_OK):
            return cand
    raise RuntimeError("Postgres MCP Pro needs Python >= 3.12; none found on PATH or under ~/.pyenv")


def install_pro(cache: Path) -> Path:
    """Postgres MCP Pro in its own venv under cache/pro-venv (pip, once).

    Its 0.3.0 wheel pins pglast==7.2.0, which the registry here does not carry, and accepts any
    mcp>=1.5 although it is written against mcp 1.x; when the plain install fails, the wheel is
    installed without dependencies and those are installed as ranges (pglast 7.x, mcp 1.x).
    """
    venv = cache / "pro-venv"
    exe = venv / "bin" / "postgres-mcp"
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    if exe.exists() and _pip_version(venv, PRO_PKG) == PRO_VERSION:
        return exe
    if not venv.exists():
        _run([find_python312(), "-m", "venv", str(venv)], cache)
    try:
        _run([*pip, f"{PRO_PKG}=={PRO_VERSION}"], cache)
    except RuntimeError:
        _run([*pip, "--no-deps", f"{PRO_PKG}=={PRO_VERSION}"], cache)
        _run([*pip, "attrs>=25.3", "humanize>=4.8", "instructor>=1.7.9", "mcp[cli]>=1.5,<2", "pglast>=7,<8",
              "psycopg-pool>=3.2.6", "psycopg[binary]>=3.2.6"], cache)
    return exe


def _pip_version(venv: Path, pkg: str) -> str | None:
    found = glob.glob(str(venv / "lib" / "python3*" / "site-packages" / f"{pkg.replace('-', '_')}-*.dist-info"))
    return found[0].removesuffix(".dist-info").rsplit("-", 1)[-1] if found else None


def _other_pgmcp(pgmcp: Server, spec: str) -> Server:
    """pgmcp from another checkout (NAME=DIR), run as `python -m pgmcp` in DIR with DIR first on
    the path. (`-m` puts the working directory before PYTHONPATH: run from this checkout, it
    would run this checkout's pgmcp.)"""
    name, _, tree = spec.partition("=")
    return Server(name, sys.executable, ["-m", "pgmcp", *pgmcp.args], pgmcp.tool, env={"PYTHONPATH": tree},
                  version=f"{tree}", note=f"pgmcp from {tree}", cwd=tree)


def build_servers(cache: Path, pg: TemporaryPostgres, only: set[str] | None) -> tuple[list[Server], dict[str, str]]:
    """The servers to measure, and {name: why it is missing} for peers that failed to install."""
    dsn = f"postgresql://{ROLE}:{PASSWORD}@127.0.0.1:{pg.port}/{DBNAME}"
    failed: dict[str, str] = {}
    servers: list[Server] = []
    work = cache / "run"
    work.mkdir(parents=True, exist_ok=True)

    def wanted(name: str) -> bool:
        return only is None or name in only

    (work / "pgmcp-policy.yaml").write_text(PGMCP_POLICY)
    (work / "pgmcp.yaml").write_text(
        "databases:\n"
        f"  {DBNAME}:\n"
        f"    dsn: postgresql://{ROLE}@127.0.0.1:{pg.port}/{DBNAME}\n"
        f"    password: {PASSWORD}\n"
        "    policies: [pgmcp-policy.yaml]\n"
        f"limits:\n  max_rows: {ROWS}\n  max_result_bytes: 1000000000\n  statement_timeout: 120s\n"
    )
    script = Path(sys.executable).parent / "pgmcp"
    if wanted("pgmcp"):
        servers.append(Server("pgmcp", str(script), ["serve", "--config", str(work / "pgmcp.yaml")], "execute_sql",
                              version=_pgmcp_version(), note="baseline policy + public.*, default logging (INFO)"))
    if only is not None and "pgmcp-nodb" in only:  # an instrument, not a peer: only when asked for
        servers.append(Server("pgmcp-nodb", sys.executable,
                              [str(Path(__file__).with_name("pgmcp_nodb.py")), "serve", "--config",
                               str(work / "pgmcp.yaml")], "execute_sql", version=_pgmcp_version(),
                              note="pgmcp with repeated statements answered without check or database"))
    if wanted("hello"):
        (work / "hello_server.py").write_text(HELLO_SERVER)
        servers.append(Server("hello", sys.executable, [str(work / "hello_server.py")], "execute_sql",
                              note="bare MCPServer tool, same SDK as pgmcp", rows=False))
    if wanted("REF") or wanted("DBHub"):
        try:
            modules = install_npm(cache)
            node = shutil.which("node") or "node"
            if wanted("REF"):
                servers.append(Server("REF", node, [str(modules / REF_PKG / "dist" / "index.js"), dsn], "query",
                                      version=REF_VERSION))
            if wanted("DBHub"):
                toml = work / "dbhub.toml"
                toml.write_text(
                    f'[[sources]]\nid = "bench"\ndsn = "{dsn}?sslmode=disable"\n\n'
                    '[[tools]]\nname = "execute_sql"\nsource = "bench"\nreadonly = true\n'
                )
                servers.append(Server("DBHub", node, [str(modules / DBHUB_PKG / "dist" / "index.js"),
                                                      "--transport", "stdio", "--config", str(toml)],
                                      "execute_sql", version=DBHUB_VERSION, note="readonly = true, no max_rows"))
        except Exception as exc:
            for name in ("REF", "DBHub"):
                if wanted(name):
                    failed[name] = str(exc)
    if wanted("Pro"):
        try:
            exe = install_pro(cache)
            servers.append(Server("Pro", str(exe), ["--access-mode=restricted", dsn], "execute_sql",
                                  version=PRO_VERSION, note="--access-mode=restricted"))
        except Exception as exc:
            failed["Pro"] = str(exc)
    return servers, failed


def _pgmcp_version() -> str:
    from pgmcp import __version__

    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                         check=False).stdout.strip()
    return f"{__version__} ({rev})" if rev else __version__


# -- one session ------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for path in glob.glob(f"/proc/{pid}/task/*/children"):
        with contextlib.suppress(OSError):
            out += [int(p) for p in Path(path).read_text().split()]
    return out


def _tree(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo += _children(p)
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of `pids` so far (/proc/PID/stat, proc(5))."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return ticks / os.sysconf("SC_CLK_TCK")


def _status_kb(pid: int, key: str) -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


class Session:
    """One server process and its connected client."""

    def __init__(self, server: Server, client: Client, pids: list[int]) -> None:
        self.server, self.client, self.pids = server, client, pids

    async def call(self, sql: str) -> tuple[float, Any]:
        start = time.perf_counter()
        result = await self.client.call_tool(self.server.tool, {"sql": sql}, read_timeout_seconds=600)
        elapsed = time.perf_counter() - start
        if result.is_error:
            raise RuntimeError(f"{self.server.name}: error result for {sql!r}: {_text(result)[:300]}")
        return elapsed, result

    def validation(self, on: bool) -> None:
        """Switch the client's output-schema check for this tool (the SDK caches the schema per tool)."""
        schemas = self.client.session._tool_output_schemas
        if on:
            schemas.pop(self.server.tool, None)  # the next call lists the tools again
        else:
            schemas[self.server.tool] = None

    def peak_rss_mb(self) -> float:
        return sum(_status_kb(p, "VmHWM") for p in self.pids) / 1024

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pids)


def _text(result: Any) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def wire_bytes(result: Any) -> int:
    """About what the response carried: its text blocks plus its structured content as JSON."""
    size = len(_text(result).encode())
    if result.structured_content is not None:
        size += len(json.dumps(result.structured_content, separators=(",", ":")).encode())
    return size


def check_rows(server: Server, result: Any, last_id: int) -> None:
    """The answer holds the last row: its uuid appears (in the text or the structured content)."""
    if not server.rows:
        return
    wanted = uid_of(last_id)
    if wanted in _text(result):
        return
    if result.structured_content is not None and wanted in json.dumps(result.structured_content):
        return
    raise RuntimeError(f"{server.name}: the answer does not hold row {last_id} ({wanted})")


@contextlib.asynccontextmanager
async def session(server: Server, errlog: Any) -> AsyncIterator[Session]:
    before = set(_children(os.getpid()))
    async with Client(stdio_client(server.params(), errlog=errlog), mode="legacy",
                      read_timeout_seconds=600) as client:
        new = [p for p in _children(os.getpid()) if p not in before]
        pids = [q for p in new for q in _tree(p)]
        await client.list_tools()
        yield Session(server, client, pids)


# -- the four measurements ----------------------------------------------------------------------


def rotate(items: list[T], k: int) -> list[T]:
    k %= len(items)
    return items[k:] + items[:k]


async def measure_startup(servers: list[Server], runs: int, errlog: Any) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {s.name: [] for s in servers}
    for run in range(runs + 1):  # the first round warms the OS file cache and is not counted
        for server in rotate(servers, run):
            start = time.perf_counter()
            async with Client(stdio_client(server.params(), errlog=errlog), mode="legacy",
                              read_timeout_seconds=120) as client:
                result = await client.call_tool(server.tool, {"sql": SELECT_1})
                elapsed = time.perf_counter() - start
            if result.is_error:
                raise RuntimeError(f"{server.name}: SELECT 1 failed: {_text(result)[:300]}")
            if run:
                out[server.name].append(elapsed * 1000)
    return out


async def take_turns(sessions: list[Session], calls: int, row_id: Callable[[int], int]) -> dict[str, list[float]]:
    """Latencies of `calls` one-row calls per server, the servers taking turns; call i asks for
    row `row_id(i)`."""
    out: dict[str, list[float]] = {s.server.name: [] for s in sessions}
    for i in range(calls):
        for s in rotate(sessions, i):
            elapsed, result = await s.call(ONE_ROW_SQL.format(row_id(i)))
            if i == 0:
                check_rows(s.server, result, row_id(i))
            out[s.server.name].append(elapsed * 1000)
    return out


async def measure_one_row(sessions: list[Session], calls: int) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Latencies of each server's one-row calls, and the CPU its process tree spent per call."""
    for s in sessions:  # warm up: statement caches, lazy imports, schema snapshots
        for _ in range(20):
            await s.call(ONE_ROW)
    cpu_before = {s.server.name: s.cpu_seconds() for s in sessions}
    out = await take_turns(sessions, calls, lambda i: 42)
    cpu = {s.server.name: (s.cpu_seconds() - cpu_before[s.server.name]) * 1000 / max(calls, 1) for s in sessions}
    return out, cpu


async def measure_new_statements(sessions: list[Session], calls: int) -> dict[str, list[float]]:
    """One-row calls whose SQL text is new each time (as a model's statements mostly are): what
    a server spends on a statement it has not seen, e.g. pgmcp's check (no remembered verdict)
    and a fresh prepare of its capped form."""
    return await take_turns(sessions, calls, lambda i: 1000 + i)


async def measure_ten_k(sessions: list[Session], runs: int) -> dict[str, dict[str, Any]]:
    rowful = [s for s in sessions if s.server.rows]
    times: dict[str, dict[str, list[float]]] = {s.server.name: {"on": [], "off": []} for s in rowful}
    sizes: dict[str, int] = {}
    for s in rowful:  # warm up once, and check the answer
        _, result = await s.call(TEN_K)
        check_rows(s.server, result, 10_000)
        sizes[s.server.name] = wire_bytes(result)
    for run in range(runs):
        for s in rotate(rowful, run):
            for mode in (("on", "off") if run % 2 == 0 else ("off", "on")):
                s.validation(mode == "on")
                if mode == "on":
                    await s.client.list_tools()
                elapsed, _ = await s.call(TEN_K)
                times[s.server.name][mode].append(elapsed * 1000)
            s.validation(True)
    return {name: {**t, "response_bytes": sizes[name]} for name, t in times.items()}


async def measure_hundred_k(servers: list[Server], runs: int, errlog: Any) -> dict[str, dict[str, list[float]]]:
    rowful = [s for s in servers if s.rows]
    out: dict[str, dict[str, list[float]]] = {s.name: {"ms": [], "peak_rss_mb": []} for s in rowful}
    for run in range(runs):
        for server in rotate(rowful, run):
            async with session(server, errlog) as s:
                await s.call(ONE_ROW)
                elapsed, result = await s.call(HUNDRED_K)
                check_rows(server, result, ROWS)
                del result
                out[server.name]["ms"].append(elapsed * 1000)
                out[server.name]["peak_rss_mb"].append(s.peak_rss_mb())
    return out


# -- driver --------------------------------------------------------------------------------------


def p50(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


async def run_all(servers: list[Server], args: argparse.Namespace, errlog: Any) -> dict[str, Any]:
    results: dict[str, Any] = {}
    print(f"startup: {args.starts} runs per server ...", file=sys.stderr)
    results["startup_ms"] = await measure_startup(servers, args.starts, errlog)
    async with contextlib.AsyncExitStack() as stack:
        sessions = [await stack.enter_async_context(session(s, errlog)) for s in servers]
        print(f"one row: {args.calls} calls per server ...", file=sys.stderr)
        results["one_row_ms"], results["one_row_cpu_ms"] = await measure_one_row(sessions, args.calls)
        print(f"one row, a new statement each call: {args.calls} calls per server ...", file=sys.stderr)
        results["new_statement_ms"] = await measure_new_statements(sessions, args.calls)
        print(f"10,000 rows: {args.runs} runs per server and mode ...", file=sys.stderr)
        results["ten_k"] = await measure_ten_k(sessions, args.runs)
    print(f"100,000 rows: {args.big_runs} runs per server ...", file=sys.stderr)
    results["hundred_k"] = await measure_hundred_k(servers, args.big_runs, errlog)
    return results


def summary(servers: list[Server], results: dict[str, Any]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for s in servers:
        row = {
            "startup_ms": p50(results["startup_ms"][s.name]),
            "one_row_p50_ms": p50(results["one_row_ms"][s.name]),
            "one_row_cpu_ms": results["one_row_cpu_ms"][s.name],
            "new_statement_p50_ms": p50(results["new_statement_ms"][s.name]),
        }
        if s.rows:
            ten, big = results["ten_k"][s.name], results["hundred_k"][s.name]
            if ten["on"]:
                row |= {
                    "ten_k_validated_ms": p50(ten["on"]), "ten_k_unvalidated_ms": p50(ten["off"]),
                    "ten_k_response_bytes": ten["response_bytes"],
                }
            if big["ms"]:  # --big-runs 0 leaves the 100,000-row lines out
                row |= {"hundred_k_ms": p50(big["ms"]), "hundred_k_peak_rss_mb": max(big["peak_rss_mb"])}
        out[s.name] = row
    return out


def print_table(servers: list[Server], table: dict[str, dict[str, float]], failed: dict[str, str]) -> None:
    names = [s.name for s in servers]
    lines = [
        ("spawn to first answer of `SELECT 1`, median", "startup_ms", "{:.0f} ms"),
        ("1-row call, p50", "one_row_p50_ms", "{:.2f} ms"),
        ("1-row call: server CPU per call", "one_row_cpu_ms", "{:.2f} ms"),
        ("1-row call, a new statement each call, p50", "new_statement_p50_ms", "{:.2f} ms"),
        ("10,000 rows x 8 columns, median, output schema validated", "ten_k_validated_ms", "{:.0f} ms"),
        ("10,000 rows x 8 columns, median, not validated", "ten_k_unvalidated_ms", "{:.0f} ms"),
        ("10,000 rows: response size", "ten_k_response_bytes", "{:,.0f} B"),
        ("100,000 rows, median", "hundred_k_ms", "{:.0f} ms"),
        ("100,000 rows: peak RSS of the server", "hundred_k_peak_rss_mb", "{:.0f} MB"),
    ]
    print("| | " + " | ".join(names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for label, key, fmt in lines:
        cells = [fmt.format(table[n][key]) if key in table[n] else "-" for n in names]
        print(f"| {label} | " + " | ".join(cells) + " |")
    for name, why in failed.items():
        print(f"\n{name} was not measured: it failed to install ({why})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path(os.path.expanduser("~/.cache/pgmcp-bench")))
    parser.add_argument("--only", help="comma-separated servers: pgmcp,hello,REF,DBHub,Pro; and pgmcp-nodb "
                        "(bench/pgmcp_nodb.py: repeated statements answered without check or database)")
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--big-runs", type=int, default=3)
    parser.add_argument("--pgmcp-tree", action="append", default=[], metavar="NAME=DIR",
                        help="also run the pgmcp of another checkout DIR (e.g. `git archive` of main) as NAME, "
                             "with this venv's dependencies: before/after in one run")
    parser.add_argument("--quick", action="store_true", help="few runs: a smoke test, not numbers to publish")
    parser.add_argument("--out", type=Path, help="write the raw timings and the summary as JSON here")
    parser.add_argument("--json", action="store_true", help="print one JSON line (the summary) at the end")
    args = parser.parse_args()
    if args.quick:
        args.starts, args.calls, args.runs, args.big_runs = 1, 20, 1, 1
    only = set(args.only.split(",")) if args.only else None
    args.cache.mkdir(parents=True, exist_ok=True)
    # Bytecode as an install has it: with PYTHONDONTWRITEBYTECODE set (as on this machine), an
    # editable checkout would otherwise compile every changed module from source at each start.
    for tree in [ROOT, *(Path(spec.partition("=")[2]) for spec in args.pgmcp_tree)]:
        compileall.compile_dir(str(tree / "pgmcp"), quiet=1)
    load_before = os.getloadavg()
    with TemporaryPostgres() as pg:
        pg.run_sql(f"CREATE DATABASE {DBNAME}")
        pg.run_sql(SETUP_SQL, DBNAME)
        servers, failed = build_servers(args.cache, pg, only)
        servers[1:1] = [_other_pgmcp(servers[0], spec) for spec in args.pgmcp_tree if servers]
        with tempfile.TemporaryFile("w+") as errlog:
            try:
                results = asyncio.run(run_all(servers, args, errlog))
            except BaseException:
                errlog.seek(0)
                sys.stderr.write(errlog.read()[-4000:])
                raise
    table = summary(servers, results)
    report = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {"python": platform.python_version(), "nproc": os.cpu_count(),
                    "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "servers": {s.name: {"version": s.version, "note": s.note, "tool": s.tool} for s in servers},
        "not_installed": failed,
        "settings": {"starts": args.starts, "calls": args.calls, "runs": args.runs, "big_runs": args.big_runs},
        "summary": table,
        "raw": results,
    }
    print(f"load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f} "
          f"({os.cpu_count()} CPUs)", file=sys.stderr)
    print_table(servers, table, failed)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
        print(f"\nwrote {args.out}")
    if args.json:
        print(json.dumps(table))


if __name__ == "__main__":
    main()
