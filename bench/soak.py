"""Soak and load: many concurrent MCP clients over streamable HTTP, every kind of outcome.

Starts `pgmcp serve --transport http` (the installed script) in front of a small shop
database (its own throwaway PostgreSQL, or a database created on `--admin-dsn`), read by a
least-privilege role under a policy; then `--clients` MCP SDK clients each make their share
of `--calls` `execute_sql` calls, cycling through five kinds:

- ok: a small aggregate;            - refused: a hidden column (PGM301, `policy_denied`);
- timed_out: a cross join on a database with a 100 ms timeout (`query_timeout`);
- failing: a division by zero (`query_failed`);
- large: 20,000 rows of 1 kB, cut by the row and byte caps (ok, truncated).

It reports calls/s, p50/p99 latency per kind, outcomes by code, the server's RSS (with its
checker processes) after the warm-up and at the end, and the database connections of the role
at the end (and how many are idle in a transaction). Goals, checked (exit 1 when one fails):
no unexpected outcome, RSS growth after warm-up under 10%, no connection idle in a transaction,
no more connections than the pools allow.

    .venv/bin/python bench/soak.py [--calls 20000] [--clients 8] [--admin-dsn DSN] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from mcp.client.client import Client

from pgmcp.demo.tempserver import TemporaryPostgres, run_psql

SCHEMA = """
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text);
CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customers(id), amount numeric(10,2));
INSERT INTO customers SELECT g, 'customer ' || g, 'c' || g || '@example.com' FROM generate_series(1, 100) g;
INSERT INTO orders SELECT g, 1 + g % 100, g * 1.25 FROM generate_series(1, 1000) g;
"""
POLICY = """\
name: soak
extends: [baseline]
tables:
  "public.*": allow
columns:
  deny: ["public.customers.email"]
"""
# kind -> (database, SQL, the expected outcome: "ok" or an error code)
KINDS: dict[str, tuple[str, str, str]] = {
    "ok": ("shop", "SELECT count(*) AS n, sum(amount) AS total FROM orders WHERE customer_id < 50", "ok"),
    "refused": ("shop", "SELECT email FROM customers", "policy_denied"),
    "timed_out": ("shop_fast",
                  "SELECT count(*) FROM generate_series(1, 100000) a CROSS JOIN generate_series(1, 100000) b",
                  "query_timeout"),
    "failing": ("shop", "SELECT 1 / (count(*) - count(*)) FROM orders", "query_failed"),
    "large": ("shop", "SELECT repeat('x', 1000) AS filler FROM generate_series(1, 20000)", "ok"),
}
POOL_MAX = 4  # per configured database


@dataclass
class Report:
    calls: int
    clients: int
    seconds: float
    calls_per_second: float
    latency_ms: dict[str, dict[str, float]]
    outcomes: dict[str, int]
    unexpected: dict[str, int]
    rss_after_warmup_kb: int
    rss_end_kb: int
    rss_growth: float
    connections_end: int
    idle_in_transaction_end: int
    goals: dict[str, bool] = field(default_factory=dict)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kb(pid: int) -> int:
    """Resident memory of `pid` and its children (the checker processes), from /proc."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    for one in pids:
        for line in Path(f"/proc/{one}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def with_path(dsn: str, dbname: str, user: str | None = None) -> str:
    parts = urlsplit(dsn)
    netloc = parts.netloc
    if user is not None:
        netloc = f"{user}@{netloc.rpartition('@')[2]}"
    return urlunsplit(parts._replace(path="/" + dbname, netloc=netloc))


@contextmanager
def database(admin_dsn: str | None) -> Iterator[tuple[str, str, str]]:
    """(admin DSN of the database, reader DSN, reader role) of a fresh shop database."""
    with contextlib_nullcluster(admin_dsn) as admin:
        name = f"soak_{uuid.uuid4().hex[:8]}"
        role = f"soak_ro_{uuid.uuid4().hex[:8]}"
        run_psql(admin, f'CREATE DATABASE "{name}"')
        db_admin = with_path(admin, name)
        try:
            run_psql(db_admin, SCHEMA + f"""
                CREATE ROLE {role} LOGIN; GRANT CONNECT ON DATABASE "{name}" TO {role};
                GRANT USAGE ON SCHEMA public TO {role}; GRANT SELECT ON customers, orders TO {role};""")
            yield db_admin, with_path(admin, name, role), role
        finally:
            run_psql(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            run_psql(admin, f"DROP ROLE IF EXISTS {role}")


@contextmanager
def contextlib_nullcluster(admin_dsn: str | None) -> Iterator[str]:
    if admin_dsn:
        yield admin_dsn
        return
    with TemporaryPostgres() as pg:
        yield pg.dsn()


def write_config(folder: Path, dsn: str) -> Path:
    (folder / "soak.yaml").write_text(POLICY)
    common = {"dsn": dsn, "policies": ["soak.yaml"], "pool": {"min_size": 1, "max_size": POOL_MAX}}
    config = {
        "databases": {
            "shop": {**common, "statement_timeout": "5s"},
            "shop_fast": {**common, "statement_timeout": "100ms"},
        },
        "llm": {"provider": "client"},
        "limits": {"max_rows": 1000, "max_result_bytes": 200000},
        "logging": {"level": "WARNING"},
    }
    path = folder / "pgmcp.yaml"
    path.write_text(json.dumps(config))
    return path


@contextmanager
def server(config: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    script = Path(sys.executable).parent / "pgmcp"
    log = (config.parent / "serve.log").open("wb")
    proc = subprocess.Popen([str(script), "serve", "--config", str(config), "--transport", "http", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, cwd=config.parent)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"pgmcp serve did not start: {(config.parent / 'serve.log').read_text()}")
            try:
                urllib.request.urlopen(base + "/livez", timeout=5).read()
                break
            except OSError:
                time.sleep(0.1)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def outcome_of(result: Any) -> str:
    if not result.is_error:
        return "ok"
    text = "".join(getattr(c, "text", "") for c in result.content)
    return text[1:text.index("]")] if text.startswith("[") and "]" in text else "unparsed: " + text[:80]


async def client_run(base: str, order: list[str], latencies: dict[str, list[float]], outcomes: Counter[str],
                     unexpected: Counter[str]) -> None:
    async with Client(base + "/mcp") as client:
        for kind in order:
            database, sql, expected = KINDS[kind]
            started = time.perf_counter()
            result = await client.call_tool("execute_sql", {"sql": sql, "database": database})
            latencies[kind].append((time.perf_counter() - started) * 1000)
            got = outcome_of(result)
            outcomes[got] += 1
            if got != expected:
                unexpected[f"{kind}: {got}"] += 1


async def phase(base: str, calls: int, clients: int, latencies: dict[str, list[float]], outcomes: Counter[str],
                unexpected: Counter[str]) -> None:
    kinds = list(KINDS)
    plans = [[kinds[(i * clients + c) % len(kinds)] for i in range(calls // clients + (c < calls % clients))]
             for c in range(clients)]
    await asyncio.gather(*(client_run(base, plan, latencies, outcomes, unexpected) for plan in plans))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))] if ordered else 0.0


def connections(db_admin: str, role: str) -> tuple[int, int]:
    out = run_psql(db_admin, f"SELECT count(*), count(*) FILTER (WHERE state = 'idle in transaction') "
                             f"FROM pg_stat_activity WHERE usename = '{role}'")
    total, idle = out.strip().split("|")
    return int(total), int(idle)


async def soak(calls: int, clients: int, admin_dsn: str | None = None, warmup: int | None = None) -> Report:
    """Run `warmup` calls (default: each client every kind 4 times, at least a tenth of `calls`),
    then `calls` measured ones."""
    if warmup is None:
        warmup = max(clients * len(KINDS) * 4, calls // 10)
    with (
        database(admin_dsn) as (db_admin, reader_dsn, role),
        tempfile.TemporaryDirectory() as tmp,
        server(write_config(Path(tmp), reader_dsn)) as (base, proc),
    ):
        latencies: dict[str, list[float]] = {k: [] for k in KINDS}
        outcomes: Counter[str] = Counter()
        unexpected: Counter[str] = Counter()
        await phase(base, warmup, clients, {k: [] for k in KINDS}, Counter(), unexpected)
        rss_warm = rss_kb(proc.pid)
        started = time.perf_counter()
        await phase(base, calls, clients, latencies, outcomes, unexpected)
        seconds = time.perf_counter() - started
        rss_end = rss_kb(proc.pid)
        await asyncio.sleep(0.5)  # let released connections settle
        total, idle = connections(db_admin, role)
    growth = (rss_end - rss_warm) / rss_warm
    report = Report(
        calls=calls, clients=clients, seconds=round(seconds, 2), calls_per_second=round(calls / seconds, 1),
        latency_ms={k: {"p50": round(percentile(v, 0.5), 2), "p99": round(percentile(v, 0.99), 2)}
                    for k, v in latencies.items()},
        outcomes=dict(outcomes), unexpected=dict(unexpected), rss_after_warmup_kb=rss_warm, rss_end_kb=rss_end,
        rss_growth=round(growth, 4), connections_end=total, idle_in_transaction_end=idle,
    )
    report.goals = {
        "no unexpected outcome": not unexpected,
        "RSS growth after warm-up under 10%": growth < 0.10,
        "no connection idle in transaction": idle == 0,
        "connections within the pools": total <= 2 * POOL_MAX,
    }
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--admin-dsn", help="an existing PostgreSQL superuser DSN (default: a throwaway cluster)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()
    report = asyncio.run(soak(args.calls, args.clients, args.admin_dsn or os.environ.get("PGMCP_SOAK_DSN")))
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    else:
        print(f"{report.calls} calls, {report.clients} clients: {report.seconds} s, {report.calls_per_second} calls/s")
        for kind, lat in report.latency_ms.items():
            print(f"  {kind:10} p50 {lat['p50']:8.2f} ms  p99 {lat['p99']:8.2f} ms")
        print(f"  outcomes: {report.outcomes}")
        print(f"  unexpected: {report.unexpected or 'none'}")
        print(f"  RSS after warm-up {report.rss_after_warmup_kb} kB, at the end {report.rss_end_kb} kB "
              f"({report.rss_growth:+.1%})")
        print(f"  connections at the end: {report.connections_end} "
              f"({report.idle_in_transaction_end} idle in transaction)")
        for goal, met in report.goals.items():
            print(f"  {'ok  ' if met else 'FAIL'} {goal}")
    return 0 if all(report.goals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
